"""The Grafana dashboards, scrape config and alert rules of ``dashboards/``.

Fast tests read the files only: the dashboards are importable Grafana JSON, every panel
goes through the ``datasource`` variable, and every PromQL expression names only series
that ``reference_impl/telemetry.py`` exports (its names converted to Prometheus form by
:func:`prometheus_name`). The alert rules hold one rule per seed target.

Slow tests use the real thing: ``promtool`` checks the config and rules and runs the rule
unit tests; the OpenTelemetry Prometheus exporter is scraped to confirm the name
conversion; and a real ``prometheus`` (127.0.0.1, free port, temporary config and
storage) scrapes a fed :class:`Telemetry` and answers every dashboard and alert
expression. Without the binaries these tests fail when ``CI`` is set and skip otherwise.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import math
import operator
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from reference_impl.cache import LRUCache
from reference_impl.pool import OrderedPool
from reference_impl.telemetry import (
    COUNTERS,
    DURATION_BUCKETS_S,
    GAUGES,
    HISTOGRAMS,
    Exporter,
    Reading,
    Telemetry,
    TelemetryConfig,
    cache_source,
    pool_source,
)

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
DASHBOARD_FILES = ("kernel.json", "prp.json")
ALERTS = DASHBOARDS / "alerts.yml"
ALERTS_TEST = DASHBOARDS / "alerts_test.yml"
PROMETHEUS_CONFIG = DASHBOARDS / "prometheus.yml"

DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
GRAFANA_BUILTIN_REF = {"type": "grafana", "uid": "-- Grafana --"}
# Grafana variables an expression may use: the dashboards' own and Grafana's globals.
DASHBOARD_VARIABLES = {"job", "instance"}
GRAFANA_GLOBALS = {"__rate_interval", "__range", "__interval"}

# The seed targets (DESIGN.md, "Targets") that have a live alert: alert label `target`.
SEED_TARGETS = {
    "scheduler_tool_p95_latency": "scheduler/tool p95 latency <= 250 ms",
    "hook_latency": "MCP hook latency p95 <= 50 ms",
    "proof_import_overhead": "proof import overhead p95 <= 10 ms",
    "approval_wait": "approval wait p95 <= 30 s",
    "gate_throughput": "gate throughput >= 30 gates/hour",
}

# Series every Prometheus exporter of the OpenTelemetry SDK adds (resource attributes).
EXPORTER_EXTRA_SERIES = {"target_info"}

# How the OpenTelemetry Prometheus exporter turns a unit into a name suffix (the units
# telemetry.py uses; `{annotation}` units are dropped).
UNIT_SUFFIXES = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "1": "ratio"}


# --- names ----------------------------------------------------------------------------


def prometheus_name(otel_name: str, unit: str, kind: str) -> str:
    """The Prometheus family name the OpenTelemetry exporter gives an instrument.

    Characters outside ``[a-zA-Z0-9_:]`` become ``_``; a unit made only of ``{...}``
    annotations adds nothing, a known unit adds its suffix (``s`` -> ``_seconds``);
    counters end in ``_total``. Histogram families have ``_bucket``, ``_sum`` and
    ``_count`` series (see :func:`series_of`).
    """
    name = re.sub(r"[^a-zA-Z0-9_:]", "_", otel_name)
    unit = re.sub(r"\{[^}]*\}", "", unit).strip()
    if unit:
        suffix = UNIT_SUFFIXES.get(unit, re.sub(r"[^a-zA-Z0-9_:]", "_", unit))
        if not name.endswith("_" + suffix):
            name = f"{name}_{suffix}"
    if kind == "counter" and not name.endswith("_total"):
        name += "_total"
    return name


def families() -> dict[str, str]:
    """Every family telemetry.py exports: Prometheus name -> type."""
    result = {prometheus_name(name, "s", "histogram"): "histogram" for name in HISTOGRAMS}
    result.update(
        {prometheus_name(name, unit, "counter"): "counter" for name, (unit, _) in COUNTERS.items()}
    )
    result.update(
        {prometheus_name(name, unit, "gauge"): "gauge" for name, (unit, _) in GAUGES.items()}
    )
    return result


def series_of(family: str, kind: str) -> set[str]:
    """The series names of one family."""
    if kind == "histogram":
        return {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
    return {family}


def known_series() -> set[str]:
    """Every series name a dashboard or rule may query."""
    names = set(EXPORTER_EXTRA_SERIES)
    for family, kind in families().items():
        names |= series_of(family, kind)
    return names


def histogram_series(otel_name: str, suffix: str = "_bucket") -> str:
    return prometheus_name(otel_name, "s", "histogram") + suffix


# --- PromQL ---------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
      (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<matcher>\{[^}]*\})
    | (?P<range>\[[^\]]*\])
    | (?P<number>\d[\w.]*)
    | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<space>\s+)
    | (?P<punct>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan", "atan2"}


@dataclass(frozen=True)
class Selector:
    """A metric name in an expression, with its label matchers (``{...}``) if any."""

    name: str
    matchers: str | None


def selectors(expr: str) -> list[Selector]:
    """The metric selectors of a PromQL expression (functions, keywords, labels left out).

    Raises ValueError for a selector without a metric name (``{__name__=~"..."}``): the
    names a dashboard queries must be checkable.
    """
    tokens = [
        (m.lastgroup or "", m.group()) for m in _TOKEN.finditer(expr) if m.lastgroup != "space"
    ]
    found: list[Selector] = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ("", "")
        if kind == "matcher":
            raise ValueError(f"selector without a metric name: {text} in {expr!r}")
        if kind == "ident" and text in _LABEL_LIST_KEYWORDS:
            if following[1] == "(":  # skip the label list
                while i < len(tokens) and tokens[i][1] != ")":
                    i += 1
        elif (
            kind == "ident"
            and text.lower() not in _KEYWORDS
            and following[1] != "("  # a function call
            and following[1] not in ("by", "without")  # an aggregation: sum by (...) (...)
        ):
            if following[0] == "matcher":
                found.append(Selector(text, following[1]))
                i += 1
            else:
                found.append(Selector(text, None))
        i += 1
    return found


def grafana_variables(expr: str) -> set[str]:
    """The Grafana variables an expression uses (``$name`` and ``${name}``)."""
    return set(re.findall(r"\$\{?(\w+)", expr))


def render(expr: str, rate_window: str = "5m", range_window: str = "5m") -> str:
    """An expression as Grafana would send it with every job and instance selected."""
    text = (
        expr.replace("$__rate_interval", rate_window)
        .replace("$__range", range_window)
        .replace("$__interval", "15s")
        .replace("$job", ".*")
        .replace("$instance", ".*")
    )
    assert "$" not in text, f"unrendered variable in {text!r}"
    return text


# --- dashboards -----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    dashboard: str
    panel: str
    ref_id: str
    expr: str


def load_dashboard(name: str) -> dict[str, Any]:
    data = json.loads((DASHBOARDS / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def targets(name: str) -> list[Target]:
    return [
        Target(name, panel["title"], target["refId"], target["expr"])
        for panel in panels(load_dashboard(name))
        for target in panel.get("targets", [])
    ]


def all_targets() -> list[Target]:
    return [target for name in DASHBOARD_FILES for target in targets(name)]


def datasource_refs(node: Any) -> Iterator[Any]:
    """Every value of a ``datasource`` key anywhere in a dashboard."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasource_refs(item)


# --- alert rules ----------------------------------------------------------------------


@dataclass
class AlertRule:
    name: str
    expr: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    duration: str = ""


def alert_rules(text: str) -> list[AlertRule]:
    """The alerting rules of alerts.yml, read line by line (the project has no YAML parser).

    Reads the subset alerts.yml uses: ``- alert:``, a block scalar ``expr: |``, ``for:``
    and a ``labels:`` mapping. promtool and Prometheus parse the file for real in the slow
    tests, and the end-to-end test checks the two readings agree.
    """
    rules: list[AlertRule] = []
    lines = text.splitlines()
    i = 0
    section = ""
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("#") or not stripped:
            i += 1
            continue
        if match := re.match(r"- alert:\s*(\S+)$", stripped):
            rules.append(AlertRule(match.group(1)))
            section = ""
        elif rules and (match := re.match(r"expr:\s*\|-?$", stripped)):
            block: list[str] = []
            while i + 1 < len(lines) and (
                not lines[i + 1].strip() or len(lines[i + 1]) - len(lines[i + 1].lstrip()) > indent
            ):
                i += 1
                block.append(lines[i].strip())
            rules[-1].expr = "\n".join(block).strip()
        elif rules and (match := re.match(r"for:\s*(\S+)$", stripped)):
            rules[-1].duration = match.group(1)
        elif rules and stripped in ("labels:", "annotations:"):
            section = stripped[:-1]
        elif rules and section == "labels" and (match := re.match(r"(\w+):\s*(.+)$", stripped)):
            rules[-1].labels[match.group(1)] = match.group(2).strip().strip("\"'")
        i += 1
    return rules


# --- fast tests -----------------------------------------------------------------------


def test_prometheus_name_conversion() -> None:
    assert prometheus_name("kernel.pool.commit_wait", "s", "histogram") == (
        "kernel_pool_commit_wait_seconds"
    )
    assert prometheus_name("runtime.cache.hits", "{lookup}", "counter") == (
        "runtime_cache_hits_total"
    )
    assert prometheus_name("prp.approval.queue_depth", "{approval}", "gauge") == (
        "prp_approval_queue_depth"
    )
    assert prometheus_name("a.b_seconds", "s", "histogram") == "a_b_seconds"
    assert "kernel_mcp_hook_duration_seconds_bucket" in known_series()


def test_selectors_extracts_metric_names_only() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (instance, le) (rate(x_seconds_bucket{job=~"$job"}'
        "[$__rate_interval]))) > 0.25 and on (job) (sum by (job) (y offset 1h) > 0) "
        'or label_replace(z, "dst", "v", "", "")'
    )
    assert [s.name for s in selectors(expr)] == ["x_seconds_bucket", "y", "z"]
    assert selectors(expr)[0].matchers == '{job=~"$job"}'
    with pytest.raises(ValueError, match="without a metric name"):
        selectors('{__name__=~"kernel_.*"}')


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_dashboard_is_importable_grafana_json(name: str) -> None:
    dashboard = load_dashboard(name)
    assert "__inputs" not in dashboard, "provisioning and UI import need no __inputs"
    assert "__requires" not in dashboard
    assert dashboard["id"] is None
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert dashboard["title"]
    variables = {var["name"]: var for var in dashboard["templating"]["list"]}
    datasource = variables.get("datasource")
    assert datasource is not None, "a `datasource` template variable is required"
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"
    for var_name in DASHBOARD_VARIABLES:
        var = variables[var_name]
        assert var["type"] == "query"
        assert var["datasource"] == DATASOURCE_REF
        assert var["includeAll"] is True and var["allValue"] == ".*"
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dashboard):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24 and pos["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE_REF, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE_REF, panel["title"]
            assert target["expr"].strip(), panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
    for ref in datasource_refs(dashboard):
        assert ref in (DATASOURCE_REF, GRAFANA_BUILTIN_REF), f"hard-wired datasource {ref}"


@pytest.mark.parametrize(
    "target", all_targets(), ids=lambda t: f"{t.dashboard}:{t.panel}:{t.ref_id}"
)
def test_panel_expression_names_exported_series(target: Target) -> None:
    known = known_series()
    found = selectors(target.expr)
    assert found, f"no metric in {target.expr!r}"
    for selector in found:
        assert selector.name in known, (
            f"{selector.name!r} is not a series telemetry.py exports; known: {sorted(known)}"
        )
        assert selector.matchers is not None, f"{selector.name} is not filtered by $job/$instance"
        assert 'job=~"$job"' in selector.matchers, selector
        assert 'instance=~"$instance"' in selector.matchers, selector
    assert grafana_variables(target.expr) <= DASHBOARD_VARIABLES | GRAFANA_GLOBALS
    if "histogram_quantile" in target.expr:
        assert all(s.name.endswith("_bucket") for s in found), target.expr
        assert re.search(r"by \([^)]*\ble\b[^)]*\)", target.expr), "quantiles need `by (le)`"
        assert "rate(" in target.expr


def test_dashboards_cover_the_issue() -> None:
    def used(name: str) -> set[str]:
        return {s.name for t in targets(name) for s in selectors(t.expr)}

    kernel = used("kernel.json")
    assert {
        histogram_series("kernel.scheduler.task_duration"),
        histogram_series("kernel.mcp.tool_call.duration"),
        histogram_series("kernel.mcp.hook.duration"),
        histogram_series("kernel.proof.load_duration"),
        histogram_series("kernel.pool.commit_wait"),
        "kernel_scheduler_tasks_committed_total",
        "runtime_cache_hits_total",
        "runtime_cache_misses_total",
        "kernel_pool_active",
        "kernel_pool_queued",
        "kernel_tools_denials_total",
    } <= kernel
    prp = used("prp.json")
    assert {
        histogram_series("prp.gate.duration"),
        histogram_series("prp.approval.wait"),
        "prp_gates_completed_total",
        "prp_gates_failed_total",
        "prp_gates_skipped_total",
        "prp_spool_concurrency",
        "prp_approval_queue_depth",
    } <= prp
    exprs = {t.expr for name in DASHBOARD_FILES for t in targets(name)}
    for quantile in ("0.5", "0.95", "0.99"):
        assert any(f"histogram_quantile({quantile}," in e for e in exprs)
    assert any("by (cache)" in e and "runtime_cache_hits_total" in e for e in exprs)
    assert any("by (rule)" in e and "kernel_tools_denials_total" in e for e in exprs)


def test_alerts_have_one_rule_per_seed_target() -> None:
    rules = alert_rules(ALERTS.read_text(encoding="utf-8"))
    by_target = [rule.labels.get("target") for rule in rules]
    assert sorted(t for t in by_target if t) == sorted(SEED_TARGETS), by_target
    assert len(rules) == len(SEED_TARGETS)
    known = known_series()
    for rule in rules:
        assert rule.expr, rule.name
        assert rule.labels.get("severity"), rule.name
        assert rule.duration, f"{rule.name} has no `for:`"
        for selector in selectors(rule.expr):
            assert selector.name in known, f"{rule.name}: {selector.name} is not exported"
        if "histogram_quantile" in rule.expr:
            # Thresholds on bucket boundaries make "p95 above the bound" exact.
            for threshold in re.findall(r">\s*([\d.]+)", rule.expr):
                assert float(threshold) in DURATION_BUCKETS_S, (rule.name, threshold)


def test_scrape_config_points_at_the_default_endpoint() -> None:
    text = PROMETHEUS_CONFIG.read_text(encoding="utf-8")
    assert '"127.0.0.1:9464"' in text
    assert re.search(r"rule_files:\s*\n\s*- alerts\.yml", text)
    assert re.search(r"(?m)^rule_files:\s*\n\s*- alerts\.yml$", ALERTS_TEST.read_text("utf-8"))


# --- slow tests: helpers --------------------------------------------------------------


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_binary(name: str) -> str:
    """The path of a Prometheus binary; fail in CI, skip elsewhere, when it is missing."""
    path = shutil.which(name)
    if path is None:
        message = (
            f"`{name}` is not on PATH: install Debian's prometheus package "
            "(apt-get install --no-install-recommends prometheus; .ci/run does it in CI)"
        )
        if _in_ci():
            pytest.fail(f"CI is set and {message}")
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool")
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )


def http_get(url: str, timeout_s: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status), response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code), error.read().decode("utf-8")


@dataclass
class PrometheusServer:
    """A real Prometheus started by a test, and the one deadline of everything it waits for."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    deadline: float

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def api(self, path: str, **params: str) -> dict[str, Any]:
        query = urllib.parse.urlencode(params)
        status, body = http_get(f"{self.base_url}{path}?{query}")
        try:
            data = json.loads(body)
        except json.JSONDecodeError:
            data = {"status": "error", "error": f"HTTP {status}: {body[:200]}"}
        assert isinstance(data, dict)
        return data

    def query(self, expr: str) -> dict[str, Any]:
        return self.api("/api/v1/query", query=expr)

    def wait_for(self, what: str, probe: Callable[[], T | None], interval_s: float = 0.2) -> T:
        """Poll ``probe`` until it returns a value; fail clearly at the deadline."""
        last: object = None
        while True:
            if self.process.poll() is not None:
                pytest.fail(
                    f"prometheus exited (status {self.process.returncode}) while waiting for "
                    f"{what}; its log:\n{self.log_tail()}"
                )
            try:
                result = probe()
            except (OSError, urllib.error.URLError) as error:
                result, last = None, error
            if result is not None:
                return result
            if time.monotonic() > self.deadline:
                pytest.fail(
                    f"gave up waiting for {what}: the test's 60 s budget is spent; last "
                    f"answer: {last!r}; prometheus log:\n{self.log_tail()}"
                )
            time.sleep(interval_s)

    def wait_for_value(self, expr: str, expected: float) -> None:
        """Wait until the instant query ``expr`` has one series equal to ``expected``."""

        def probe() -> bool | None:
            result = self.query(expr).get("data", {}).get("result", [])
            values = [float(series["value"][1]) for series in result]
            return True if values == [expected] else None

        self.wait_for(f"{expr} == {expected}", probe)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


@pytest.fixture
def exporter() -> Iterator[tuple[Telemetry, int]]:
    """A Telemetry serving the Prometheus pull endpoint on 127.0.0.1:<free port>."""
    port = free_port()
    telemetry = Telemetry(
        TelemetryConfig(
            exporter=Exporter.PROMETHEUS, prometheus_host="127.0.0.1", prometheus_port=port
        )
    )
    try:
        yield telemetry, port
    finally:
        telemetry.shutdown()


@pytest.fixture
def prometheus(exporter: tuple[Telemetry, int], tmp_path: Path) -> Iterator[PrometheusServer]:
    """The real prometheus, scraping ``exporter`` every second, with alerts.yml loaded."""
    binary = require_binary("prometheus")
    _, target_port = exporter
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": "agentbench",
                "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
            }
        ],
    }
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")  # JSON is YAML
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    server = PrometheusServer(
        process, f"http://127.0.0.1:{port}", log_path, deadline=time.monotonic() + 60
    )
    try:
        server.wait_for(
            "prometheus to be ready",
            lambda: True if http_get(f"{server.base_url}/-/ready")[0] == 200 else None,
        )
        yield server
    finally:
        server.stop()


# --- slow tests -----------------------------------------------------------------------


@pytest.mark.slow
def test_promtool_check_config() -> None:
    result = run_promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_promtool_check_rules() -> None:
    result = run_promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(SEED_TARGETS)} rules found" in result.stdout


@pytest.mark.slow
def test_promtool_test_rules() -> None:
    result = run_promtool("test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _exposition_families(text: str) -> dict[str, str]:
    return dict(re.findall(r"(?m)^# TYPE (\S+) (\S+)$", text))


@pytest.mark.slow
def test_exporter_names_match_the_conversion(exporter: tuple[Telemetry, int]) -> None:
    """The real OpenTelemetry Prometheus exporter serves exactly the names we derive."""
    telemetry, port = exporter
    telemetry.add_source(
        lambda: [Reading(name, 1.0, {"cache": "c"}) for name in [*COUNTERS, *GAUGES]]
    )
    for name in HISTOGRAMS:
        telemetry.record_samples(name, [0.003])
    status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    served = _exposition_families(text)
    expected = {name: kind for name, kind in families().items()}
    expected["target_info"] = "gauge"
    assert served == expected
    sample_names = set(re.findall(r"(?m)^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text))
    assert sample_names == known_series()
    assert 'le="0.005"' in text, "explicit second-scale buckets from DURATION_BUCKETS_S"


def bucket_quantile(q: float, upper_bounds: Sequence[float], cumulative: Sequence[float]) -> float:
    """``histogram_quantile`` by hand: Prometheus's ``bucketQuantile`` (promql/quantile.go).

    ``cumulative`` has one count per bound and a last one for ``+Inf``. The rank ``q * n``
    falls in the first bucket whose cumulative count reaches it; the answer interpolates
    linearly inside that bucket (from 0 for the first); in ``+Inf`` it is the highest bound.
    """
    rank = q * cumulative[-1]
    b = next((i for i in range(len(cumulative) - 1) if cumulative[i] >= rank), len(upper_bounds))
    if b == len(upper_bounds):
        return upper_bounds[-1]
    start, below = (upper_bounds[b - 1], cumulative[b - 1]) if b > 0 else (0.0, 0.0)
    return start + (upper_bounds[b] - start) * ((rank - below) / (cumulative[b] - below))


@pytest.mark.slow
def test_histogram_quantile_answers_from_the_exact_buckets(
    exporter: tuple[Telemetry, int], prometheus: PrometheusServer
) -> None:
    """Every value recorded is in the scraped buckets, and Prometheus's quantiles follow.

    Three thousand values (more than one batch's old 1024-value sample) spread over 1 ms to
    9 s: the stored ``_bucket`` series equal a hand count of the values, ``_count`` and
    ``_sum`` are exact, and ``histogram_quantile`` equals the hand interpolation.
    """
    telemetry, _ = exporter
    name = "kernel.scheduler.task_duration"
    values = [0.001 * 1.37 ** (i % 30) for i in range(3000)]
    assert telemetry.record_samples(name, values, MODE) == len(values)
    prometheus.wait_for_value(histogram_series(name, "_count"), float(len(values)))
    per_bucket = [0] * (len(DURATION_BUCKETS_S) + 1)
    for value in values:
        per_bucket[sum(1 for bound in DURATION_BUCKETS_S if bound < value)] += 1
    cumulative = [float(c) for c in itertools.accumulate(per_bucket)]
    buckets = histogram_series(name)
    stored = {
        series["metric"]["le"]: float(series["value"][1])
        for series in prometheus.query(buckets)["data"]["result"]
    }
    upper_bounds = [f"{bound}" for bound in DURATION_BUCKETS_S] + ["+Inf"]
    assert stored == dict(zip(upper_bounds, cumulative, strict=True))
    (total,) = prometheus.query(histogram_series(name, "_sum"))["data"]["result"]
    assert float(total["value"][1]) == pytest.approx(
        functools.reduce(operator.add, values, 0.0), rel=1e-15
    )
    for q in (0.25, 0.5, 0.6, 0.9, 0.95, 0.99):
        (answer,) = prometheus.query(f"histogram_quantile({q}, sum by (le) ({buckets}))")["data"][
            "result"
        ]
        expected = bucket_quantile(q, DURATION_BUCKETS_S, cumulative)
        assert float(answer["value"][1]) == pytest.approx(expected, rel=1e-12), q


# What the end-to-end test feeds (phase 2, after a baseline scrape).
HITS, MISSES = 30, 10
POOL_JOBS, POOL_CONCURRENCY = 5, 2
PHASE2_SAMPLES_S = {
    "kernel.scheduler.task_duration": 0.3,  # bucket (0.25, 0.5]
    "kernel.mcp.tool_call.duration": 0.3,
    "kernel.mcp.hook.duration": 0.07,  # (0.05, 0.1]
    "kernel.proof.load_duration": 0.02,  # (0.01, 0.025]
    "kernel.pool.queue_wait": 0.004,
    "kernel.pool.run_time": 0.02,
    "kernel.pool.commit_wait": 0.004,
    "prp.gate.duration": 180.0,  # (120, 300]
    "prp.approval.wait": 45.0,  # (30, 60]
    "prp.run.duration": 420.0,
}
PHASE2_COUNT = 20
MODE = {"mode": "pooled"}  # the attribute the workloads record with


def _quantile_in_bucket(q: float, value: float) -> float:
    """histogram_quantile's answer when every sample of the window is ``value``."""
    upper = min(b for b in DURATION_BUCKETS_S if b >= value)
    lower = max(b for b in DURATION_BUCKETS_S if b < value)
    return lower + (upper - lower) * q


# Panels whose value is knowable from the feed: (dashboard, title, refId) -> labels, value.
# Exact (up to float rounding): every series of a ratio or quantile shares its scrape
# timestamps and rate()'s extrapolation factor.
EXPECTED_VALUES: dict[tuple[str, str, str], tuple[dict[str, str], float]] = {
    ("kernel.json", "Scheduler task latency p50 / p95 / p99", "A"): (
        {},
        _quantile_in_bucket(0.5, 0.3),
    ),
    ("kernel.json", "Scheduler task latency p50 / p95 / p99", "B"): (
        {},
        _quantile_in_bucket(0.95, 0.3),
    ),
    ("kernel.json", "MCP hook latency p95 (pre + post per tool call)", "A"): (
        {},
        _quantile_in_bucket(0.95, 0.07),
    ),
    ("kernel.json", "Proof load p95 (import overhead per invocation)", "A"): (
        {},
        _quantile_in_bucket(0.95, 0.02),
    ),
    ("kernel.json", "Cache hit ratio by cache", "A"): (
        {"cache": "hooks"},
        HITS / (HITS + MISSES),
    ),
    ("kernel.json", "Task failure ratio", "A"): ({}, 0.0),
    ("prp.json", "Gate duration p50 / p95 / p99", "B"): ({}, _quantile_in_bucket(0.95, 180.0)),
    ("prp.json", "Approval wait p50 / p95 / p99", "B"): ({}, _quantile_in_bucket(0.95, 45.0)),
    ("prp.json", "Spool concurrency", "A"): ({}, 2.0),
    ("prp.json", "Approval queue depth", "A"): ({}, 4.0),
}
# Approximate: rate() extrapolates a counter towards zero by an amount that depends on its
# first value, which differs between the two sums of this ratio (baseline samples).
EXPECTED_APPROX: dict[tuple[str, str, str], tuple[dict[str, str], float]] = {
    ("kernel.json", "Head-of-line share: commit wait / run time", "A"): ({}, 0.004 / 0.02),
}
# Alerts the feed must trigger (pending: their `for:` is longer than the test) and not.
EXPECTED_ACTIVE_ALERTS = {
    "SchedulerToolLatencyP95High",
    "MCPHookLatencyP95High",
    "ProofLoadP95High",
    "ApprovalWaitP95High",
}
# Quiet by design: the spool was not running an hour ago (the rule judges full hours).
EXPECTED_QUIET_ALERTS = {"GateThroughputLow"}


@dataclass
class RuntimeState:
    """The counters and levels a PRP runner and scheduler would report."""

    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)

    def set(self, name: str, value: float, **attributes: str) -> None:
        self.values[(name, tuple(sorted(attributes.items())))] = value

    def readings(self) -> list[Reading]:
        return [
            Reading(name, value, dict(attributes))
            for (name, attributes), value in list(self.values.items())
        ]


def _series_matching(result: list[dict[str, Any]], labels: Mapping[str, str]) -> list[float]:
    return [
        float(series["value"][1])
        for series in result
        if all(series["metric"].get(k) == v for k, v in labels.items())
    ]


@pytest.mark.slow
def test_dashboards_and_alerts_on_a_real_prometheus(
    exporter: tuple[Telemetry, int], prometheus: PrometheusServer
) -> None:
    telemetry, _ = exporter
    # Phase 0, baseline: every series exists before Prometheus first scrapes it, so the
    # rates below see only what phase 1 and 2 add.
    pool: OrderedPool[int] = OrderedPool(POOL_CONCURRENCY)
    cache: LRUCache[str, int] = LRUCache(8, name="hooks")
    state = RuntimeState()
    for name in ("prp.gates.completed", "prp.gates.failed", "prp.gates.skipped"):
        state.set(name, 0)
    state.set("prp.executor.retries", 0)
    state.set("kernel.tools.denials", 0, rule="fs.outside_root")
    state.set("kernel.scheduler.tasks.failed", 0)
    state.set("kernel.mcp.contexts.live", 1)
    state.set("runtime.history.length", 7, component="scheduler")
    state.set("prp.spool.concurrency", 2)
    state.set("prp.approval.queue_depth", 0)
    telemetry.add_source(pool_source(pool, **MODE))
    telemetry.add_source(cache_source(cache))
    telemetry.add_source(state.readings)
    telemetry.add_source(
        lambda: [Reading("kernel.scheduler.tasks.committed", pool.statistics().committed, MODE)]
    )
    for name in HISTOGRAMS:
        telemetry.record_samples(name, [0.0001], MODE)
    prometheus.wait_for_value('up{job="agentbench"}', 1.0)
    prometheus.wait_for_value("kernel_scheduler_task_duration_seconds_count", 1.0)

    # Phase 1: a pool run caught in flight; the levels are read at collection time.
    async def pool_run() -> None:
        release = asyncio.Event()

        async def job() -> int:
            await release.wait()
            return 1

        run = asyncio.create_task(pool.run([job] * POOL_JOBS))
        await asyncio.to_thread(
            prometheus.wait_for_value, 'kernel_pool_active{mode="pooled"}', POOL_CONCURRENCY
        )
        await asyncio.to_thread(
            prometheus.wait_for_value,
            'kernel_pool_queued{mode="pooled"}',
            POOL_JOBS - POOL_CONCURRENCY,
        )
        release.set()
        await run

    asyncio.run(pool_run())

    # Phase 2: known work.
    for i in range(HITS + MISSES):
        cache_key = "warm" if i < HITS else f"cold-{i}"
        if i == 0:
            cache.put("warm", 1)
        cache.get(cache_key)
    for name, value in PHASE2_SAMPLES_S.items():
        assert telemetry.record_samples(name, [value] * PHASE2_COUNT, MODE) == PHASE2_COUNT
    state.set("prp.gates.completed", 6)
    state.set("prp.gates.failed", 1)
    state.set("prp.gates.skipped", 2)
    state.set("prp.executor.retries", 3)
    state.set("kernel.tools.denials", 3, rule="fs.outside_root")
    state.set("kernel.tools.denials", 1, rule="shell.not_allowlisted")
    state.set("prp.approval.queue_depth", 4)
    # Values only grow to these: once all are scraped, the last sample holds everything.
    for expr, final in (
        ('runtime_cache_hits_total{cache="hooks"}', HITS),
        ('runtime_cache_misses_total{cache="hooks"}', MISSES),
        ("kernel_scheduler_tasks_committed_total", POOL_JOBS),
        *((f"{histogram_series(name, '_count')}", 1 + PHASE2_COUNT) for name in PHASE2_SAMPLES_S),
        ('kernel_tools_denials_total{rule="shell.not_allowlisted"}', 1),
        ("prp_approval_queue_depth", 4),
    ):
        prometheus.wait_for_value(expr, float(final))

    # Prometheus stores exactly the series names the dashboards were checked against
    # (besides its own: up, scrape_*, and ALERTS* written by the rule evaluation).
    answer = prometheus.api("/api/v1/label/__name__/values", **{"match[]": '{job="agentbench"}'})
    stored = {
        name
        for name in answer["data"]
        if name not in ("up", "ALERTS", "ALERTS_FOR_STATE") and not name.startswith("scrape_")
    }
    assert stored == known_series()

    # The dashboards' template variables find this run.
    jobs = prometheus.api("/api/v1/label/job/values", **{"match[]": "target_info"})["data"]
    assert "agentbench" in jobs

    # Every panel expression runs and has finite data; the knowable values are right.
    failures: list[str] = []
    seen_expected: set[tuple[str, str, str]] = set()
    for target in all_targets():
        answer = prometheus.query(render(target.expr))
        where = f"{target.dashboard} / {target.panel} / {target.ref_id}: {target.expr}"
        if answer.get("status") != "success":
            failures.append(f"{where}: {answer.get('error')}")
            continue
        result = answer["data"]["result"]
        values = [float(series["value"][1]) for series in result]
        if not values or not all(math.isfinite(v) for v in values):
            failures.append(f"{where}: no finite data: {result}")
            continue
        panel_key = (target.dashboard, target.panel, target.ref_id)
        for table, rel in ((EXPECTED_VALUES, 1e-9), (EXPECTED_APPROX, 0.02)):
            if panel_key in table:
                seen_expected.add(panel_key)
                labels, want = table[panel_key]
                matching = _series_matching(result, labels)
                if matching != pytest.approx([want], rel=rel, abs=1e-12):
                    failures.append(f"{where}: expected {labels} = {want}, got {result}")
    assert not failures, "\n".join(failures)
    missing = set(EXPECTED_VALUES) | set(EXPECTED_APPROX)
    assert seen_expected == missing, f"no such panel: {missing - seen_expected}"

    # The rules Prometheus loaded are the ones read from alerts.yml; each query runs.
    groups = prometheus.api("/api/v1/rules", type="alert")["data"]["groups"]
    loaded = {rule["name"]: rule["query"] for group in groups for rule in group["rules"]}
    assert set(loaded) == {rule.name for rule in alert_rules(ALERTS.read_text("utf-8"))}
    assert set(loaded) == EXPECTED_ACTIVE_ALERTS | EXPECTED_QUIET_ALERTS
    for name, query in loaded.items():
        answer = prometheus.query(query)
        assert answer.get("status") == "success", (name, answer)
        has_data = bool(answer["data"]["result"])
        assert has_data == (name in EXPECTED_ACTIVE_ALERTS), (name, answer["data"]["result"])

    # Prometheus's own rule evaluation agrees: the four latency alerts are active.
    def active_alerts() -> set[str] | None:
        alerts = prometheus.api("/api/v1/alerts")["data"]["alerts"]
        names = {a["labels"]["alertname"] for a in alerts if a["state"] in ("pending", "firing")}
        return names if names >= EXPECTED_ACTIVE_ALERTS else None

    assert prometheus.wait_for("the latency alerts to be pending", active_alerts).isdisjoint(
        EXPECTED_QUIET_ALERTS
    )
    histograms = {
        a["labels"].get("histogram")
        for a in prometheus.api("/api/v1/alerts")["data"]["alerts"]
        if a["labels"]["alertname"] == "SchedulerToolLatencyP95High"
    }
    assert histograms == {"kernel.scheduler.task_duration", "kernel.mcp.tool_call.duration"}
