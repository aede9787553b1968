"""The sections of the HTML report, built from one bundle (and the history store).

Each builder reads only files (the bundle, ``history.sqlite``), never re-runs a
workload, and returns a frozen record of display-ready text and inline SVG that
the template lays out; numbers stay in SI units until formatted here.

Guarantees:

* Every figure says its clock: *wall* (real time on this machine) or *trace*
  (the runtime's virtual clock, as recorded in the trace).
* A distribution says where its percentiles come from: samples recorded inside
  the workload (one value per operation) or pyperf's own values (one per
  measured round).
* Trends read the last N runs of the bundle's git branch that started no later
  than the bundle; the bundle itself is always the last point, stored or not.
* A missing or unusable history store, or peers that were not run, are stated
  in the section, never an error.

Why one module: it is one contract read by one caller, :mod:`harness.report.html`, which
reads every section through this one namespace; and the sections share the formatting of
every figure (:func:`quantity`, :func:`quantity_range`) and the private grouping of samples by
workload and metric (``_values_by_metric``, ``_percentile``, ``_many``). A module per section
would import those private helpers.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.bundle.files import Bundle, Manifest
from harness.bundle.verdicts import (
    Unit,
    Verdict,
    format_quantity,
)
from harness.errors import EnvironmentRefused
from harness.report import charts
from harness.store.db import HistoryStore
from harness.store.location import Location
from harness.store.queries import trend_series
from workloads import registry
from workloads.samples import MetricSamples

__all__ = [
    "CLOCK_TEXT",
    "PEER_INSTALL",
    "PEER_WORKLOADS",
    "DeterminismSection",
    "Distribution",
    "PairGroup",
    "PeerSection",
    "PercentileSource",
    "TargetRow",
    "TrendSection",
    "determinism_section",
    "distributions",
    "environment_rows",
    "pair_groups",
    "peer_section",
    "percentile_sources",
    "quantity",
    "quantity_range",
    "target_rows",
    "trend_section",
]

CLOCK_TEXT = {
    "wall": "wall: real time on this machine",
    "trace": "trace: the runtime's virtual clock (durations recorded in the trace)",
}
PEER_WORKLOADS = ("graph_vs_langgraph", "fanout_vs_langgraph")
PEER_PACKAGE = "langgraph"
PEER_INSTALL = "pip install 'agentbench[peers]'"
# A metric with at least this many values in a run gets a distribution chart.
MANY_VALUES = 50


def quantity(value: float | None, unit: str) -> str:
    """``value`` for display in ``unit`` (s, ratio, per_hour, or anything else as is)."""
    try:
        known = Unit(unit)
    except ValueError:
        return "-" if value is None else f"{value:.4g} {unit}".rstrip()
    return format_quantity(value, known)


def quantity_range(low: float, high: float, unit: str) -> str:
    """``low – high`` in ``unit``, the unit written once when both sides share it."""
    first, second = quantity(low, unit), quantity(high, unit)
    head, _, suffix = first.rpartition(" ")
    if head and second.endswith(f" {suffix}"):
        return f"{head} – {second}"
    return f"{first} – {second}"


def _values_by_metric(
    samples: Iterable[MetricSamples],
) -> dict[str, dict[str, tuple[str, str, list[float], set[str]]]]:
    """workload → metric → (unit, clock, every value, the rounds they came in)."""
    grouped: dict[str, dict[str, tuple[str, str, list[float], set[str]]]] = defaultdict(dict)
    for sample in samples:
        entry = grouped[sample.workload].setdefault(
            sample.metric, (sample.unit, sample.clock, [], set())
        )
        entry[2].extend(v for v in sample.values if math.isfinite(v))
        entry[3].add(sample.round)
    return grouped


def _percentile(values: Sequence[float], percent: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), percent))


# -- targets -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetRow:
    """One target's verdict, formatted: the targets table's row."""

    name: str
    description: str
    workload: str
    metric: str
    statistic: str
    value: str
    interval: str
    spread_method: str
    bound: str
    margin: str
    outcome: str
    passed: bool
    clock: str
    n: int
    rounds: int


def target_rows(verdicts: Sequence[Verdict]) -> tuple[TargetRow, ...]:
    """The targets table: every verdict in the order of the targets file."""
    rows = []
    for verdict in verdicts:
        target = verdict.target
        unit = target.unit.value
        interval = (
            "-"
            if verdict.spread is None
            else quantity_range(verdict.spread[0], verdict.spread[1], unit)
        )
        rows.append(
            TargetRow(
                name=target.name,
                description=target.description,
                workload=target.workload,
                metric=target.metric,
                statistic=target.statistic.value,
                value=quantity(verdict.value, unit),
                interval=interval,
                spread_method=verdict.spread_method.value,
                bound=("≤ " if target.direction.value == "max" else "≥ ")
                + quantity(target.bound, unit),
                margin="-" if verdict.margin is None else f"{verdict.margin:+.1%}",
                outcome=verdict.outcome.value.upper(),
                passed=verdict.passed,
                clock=target.clock.value,
                n=verdict.n,
                rounds=verdict.rounds,
            )
        )
    return tuple(rows)


# -- legacy versus pooled ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PairRow:
    """One legacy/improved pair of a workload's metrics."""

    quantity: str
    legacy_metric: str
    pooled_metric: str
    legacy_median: str
    pooled_median: str
    legacy_p95: str
    pooled_p95: str
    change: str
    change_note: str
    better: bool | None


@dataclass(frozen=True, slots=True)
class PairGroup:
    """A workload's legacy-versus-pooled figures, a headline figure and a chart."""

    workload: str
    description: str
    clock: str
    rows: tuple[PairRow, ...]
    highlights: tuple[str, ...]
    svg: str


def _times(factor: float) -> str:
    return f"{factor:,.0f}×" if factor >= 100 else f"{factor:.3g}×"


def _change(legacy: float, pooled: float, unit: str) -> tuple[str, str, bool | None]:
    """How the improved side's median compares: relative change, a note, better or not."""
    if legacy == 0.0 or not math.isfinite(legacy) or not math.isfinite(pooled):
        return "-", "", None
    relative = pooled / legacy - 1.0
    if unit == "per_hour":
        return f"{relative:+.1%}", f"{_times(pooled / legacy)} the rate", relative > 0
    if unit == "s":
        if pooled > 0 and legacy > pooled:
            return f"{relative:+.1%}", f"{_times(legacy / pooled)} faster", True
        return f"{relative:+.1%}", "", relative < 0 if relative else None
    return f"{relative:+.1%}", "", None


def _legacy_pairs(workload: str) -> list[tuple[str, str, str]]:
    """``(pair, legacy metric, improved metric)`` of each legacy/improved pair the registry
    describes for ``workload`` (:class:`workloads.registry.Role`), in the registry's order."""
    info = registry.WORKLOADS.get(workload)
    if info is None:
        return []
    sides: dict[str, dict[registry.Role, str]] = {}
    for metric in info.metrics:
        if metric.role in (registry.Role.LEGACY, registry.Role.IMPROVED):
            sides.setdefault(metric.pair, {})[metric.role] = metric.name
    return [
        (pair, found[registry.Role.LEGACY], found[registry.Role.IMPROVED])
        for pair, found in sorted(sides.items())
        if len(found) == 2
    ]


def _gains(workload: str) -> set[str]:
    """The metrics of ``workload`` that are gains: ratio - 1, higher is better."""
    info = registry.WORKLOADS.get(workload)
    return {
        metric.name
        for metric in (info.metrics if info else ())
        if metric.kind is registry.Kind.OVERHEAD and metric.better is registry.Better.HIGHER
    }


def pair_groups(bundle: Bundle) -> tuple[PairGroup, ...]:
    """Per workload, every legacy/improved pair of its metrics (the registry's pairs)."""
    grouped = _values_by_metric(bundle.samples)
    groups = []
    for run in bundle.manifest.workloads:
        metrics = grouped.get(run.name, {})
        rows: list[PairRow] = []
        bars: list[charts.PairBar] = []
        units: list[str] = []
        for base, metric, partner in _legacy_pairs(run.name):
            if metric not in metrics or partner not in metrics:
                continue
            unit, _, legacy_values, _ = metrics[metric]
            partner_unit, _, pooled_values, _ = metrics[partner]
            if partner_unit != unit or not legacy_values or not pooled_values:
                continue
            legacy = (_percentile(legacy_values, 50), _percentile(legacy_values, 95))
            pooled = (_percentile(pooled_values, 50), _percentile(pooled_values, 95))
            change, note, better = _change(legacy[0], pooled[0], unit)
            side = partner.removeprefix(f"{base}_")
            rows.append(
                PairRow(
                    quantity=base.replace("_", " "),
                    legacy_metric=metric,
                    pooled_metric=partner,
                    legacy_median=quantity(legacy[0], unit),
                    pooled_median=quantity(pooled[0], unit),
                    legacy_p95=quantity(legacy[1], unit),
                    pooled_p95=quantity(pooled[1], unit),
                    change=change,
                    change_note=note,
                    better=better,
                )
            )
            bars.append(charts.PairBar(base, legacy[0], pooled[0], legacy[1], pooled[1], side))
            units.append(unit)
        if not rows:
            continue
        highlights = tuple(
            f"{metric.replace('_', ' ')} (median of {len(rounds)} rounds): "
            f"{_percentile(values, 50):+.1%}"
            if unit == "ratio"
            else f"{metric.replace('_', ' ')} (median): {quantity(_percentile(values, 50), unit)}"
            for metric, (unit, _, values, rounds) in sorted(metrics.items())
            if metric in _gains(run.name) and values
        )
        svg = ""
        if len(set(units)) == 1:
            svg = charts.pair_chart(
                f"pairs-{run.name}",
                bars,
                unit=units[0],
                title=f"{run.name}: legacy vs {bars[0].pooled_label} ({run.clock} clock)",
            )
        info = registry.WORKLOADS.get(run.name)
        groups.append(
            PairGroup(
                workload=run.name,
                description=info.description if info else "",
                clock=run.clock,
                rows=tuple(rows),
                highlights=highlights,
                svg=svg,
            )
        )
    return tuple(groups)


# -- distributions -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PercentileSource:
    """Where a workload's percentiles come from, and what they are."""

    workload: str
    clock: str
    source: str
    metric: str
    n: int
    rounds: int
    p50: str
    p95: str
    p99: str


@dataclass(frozen=True, slots=True)
class Distribution:
    """One sample metric with many values: its percentiles and its histogram."""

    workload: str
    metric: str
    clock: str
    n: int
    rounds: int
    p50: str
    p95: str
    p99: str
    largest: str
    svg: str


def _many(metrics: Mapping[str, tuple[str, str, list[float], set[str]]]) -> list[str]:
    return [m for m, (_, _, values, _) in sorted(metrics.items()) if len(values) >= MANY_VALUES]


def percentile_sources(bundle: Bundle) -> tuple[PercentileSource, ...]:
    """For each workload: samples recorded inside it (when many), else its pyperf values."""
    grouped = _values_by_metric(bundle.samples)
    pyperf = _values_by_metric(bundle.pyperf_samples())
    rows = []
    for run in bundle.manifest.workloads:
        metrics = grouped.get(run.name, {})
        many = _many(metrics)
        if many:
            chosen = [(metric, metrics[metric]) for metric in many]
            source = "samples recorded inside the workload (one value per operation)"
        else:
            chosen = list(pyperf.get(run.name, {}).items())
            source = "pyperf values (one value per measured round)"
        for metric, (unit, clock, values, rounds) in chosen:
            if not values:
                continue
            rows.append(
                PercentileSource(
                    workload=run.name,
                    clock=clock,
                    source=source,
                    metric=metric,
                    n=len(values),
                    rounds=len(rounds),
                    p50=quantity(_percentile(values, 50), unit),
                    p95=quantity(_percentile(values, 95), unit),
                    p99=quantity(_percentile(values, 99), unit),
                )
            )
    return tuple(rows)


def distributions(bundle: Bundle) -> tuple[Distribution, ...]:
    """A histogram, p50/p95/p99 marked, of every sample metric with many values."""
    grouped = _values_by_metric(bundle.samples)
    result = []
    for run in bundle.manifest.workloads:
        metrics = grouped.get(run.name, {})
        for metric in _many(metrics):
            unit, clock, values, rounds = metrics[metric]
            result.append(
                Distribution(
                    workload=run.name,
                    metric=metric,
                    clock=clock,
                    n=len(values),
                    rounds=len(rounds),
                    p50=quantity(_percentile(values, 50), unit),
                    p95=quantity(_percentile(values, 95), unit),
                    p99=quantity(_percentile(values, 99), unit),
                    largest=quantity(max(values), unit),
                    svg=charts.distribution_chart(
                        f"dist-{run.name}-{metric}",
                        values,
                        unit=unit,
                        title=f"{run.name} · {metric} ({clock} clock, {len(values)} values)",
                        quantity=metric.replace("_", " "),
                    ),
                )
            )
    return tuple(result)


# -- trends --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrendChart:
    """One target over the recent runs of the branch."""

    target: str
    statistic: str
    clock: str
    runs: int
    svg: str


@dataclass(frozen=True, slots=True)
class TrendSection:
    """The trends: a sentence on what was read, and one chart per target."""

    message: str
    charts: tuple[TrendChart, ...]


def _optional(value: Any) -> float | None:
    return (
        None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    )


def trend_section(bundle: Bundle, history: Location, limit: int) -> TrendSection:
    """Each of the bundle's targets over the last ``limit`` runs of its branch."""
    manifest = bundle.manifest
    branch = manifest.environment.git.branch
    try:
        store = HistoryStore(history)
        frame = trend_series(
            store,
            branch=branch,
            started_utc=manifest.started_utc,
            run_id=manifest.run_id,
            limit=limit,
        )
    except EnvironmentRefused as exc:
        return TrendSection(f"No history to draw trends from ({exc}).", ())
    records: list[dict[str, Any]] = [
        {str(key): value for key, value in record.items()}
        for record in frame.to_dict(orient="records")
    ]
    run_ids = list(dict.fromkeys(str(record["run_id"]) for record in records))
    stored = manifest.run_id in run_ids
    if not stored:
        run_ids = [*run_ids[-(limit - 1) :], manifest.run_id] if limit > 1 else [manifest.run_id]
    labels = {str(r["run_id"]): str(r["sha"] or r["run_id"])[:8] for r in records}
    labels[manifest.run_id] = manifest.environment.git.short_sha + "*"
    points: dict[str, dict[str, charts.TrendPoint]] = defaultdict(dict)
    for record in records:
        run_id = str(record["run_id"])
        value = _optional(record["value"])
        if run_id in run_ids and value is not None:
            points[str(record["target"])][run_id] = charts.TrendPoint(
                labels[run_id],
                value,
                _optional(record["spread_low"]),
                _optional(record["spread_high"]),
            )
    for verdict in manifest.verdicts:
        if verdict.value is not None:
            low, high = verdict.spread if verdict.spread else (None, None)
            points[verdict.target.name][manifest.run_id] = charts.TrendPoint(
                labels[manifest.run_id], verdict.value, low, high, current=True
            )
    trend_charts = []
    for verdict in manifest.verdicts:
        target = verdict.target
        series = [points[target.name][r] for r in run_ids if r in points[target.name]]
        if not series:
            continue
        trend_charts.append(
            TrendChart(
                target=target.name,
                statistic=target.statistic.value,
                clock=target.clock.value,
                runs=len(series),
                svg=charts.trend_chart(
                    f"trend-{target.name}",
                    series,
                    bound=target.bound,
                    direction=target.direction.value,
                    unit=target.unit.value,
                    title=target.name,
                ),
            )
        )
    where = f"branch {branch}" if branch else "runs outside a git branch"
    message = (
        f"The last {len(run_ids)} run(s) of {where} in {store.where}, oldest first; "
        "* marks this run" + ("" if stored else " (not stored in the history)") + "."
    )
    if len(run_ids) == 1:
        message += " Only this run so far: the trend grows with every stored run."
    return TrendSection(message, tuple(trend_charts))


# -- peers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerRow:
    """One ``ratio_*`` metric of a peer workload."""

    workload: str
    metric: str
    rounds: int
    median: str
    quartiles: str
    extremes: str


@dataclass(frozen=True, slots=True)
class PeerSection:
    """The peers: whether they ran, the peer's version, the ratios and their chart."""

    ran: bool
    message: str
    version: str | None
    rows: tuple[PeerRow, ...]
    descriptions: tuple[tuple[str, str], ...]
    svg: str


def peer_section(bundle: Bundle) -> PeerSection:
    """Every ours-over-peer ratio of the peer workloads (registry: a ratio in no pair),
    or how to run them."""
    grouped = _values_by_metric(bundle.samples)
    version = bundle.manifest.environment.dependencies.get(PEER_PACKAGE)
    rows: list[PeerRow] = []
    bars: list[charts.Bar] = []
    for workload in PEER_WORKLOADS:
        info = registry.WORKLOADS.get(workload)
        # Our figure over the peer's: the ratios of the workload that belong to no pair.
        metrics = info.metrics if info else ()
        peer_ratios = {m.name for m in metrics if m.kind is registry.Kind.RATIO and not m.pair}
        for metric, (unit, _, values, rounds) in sorted(grouped.get(workload, {}).items()):
            if metric not in peer_ratios or not values:
                continue
            q1, median, q3 = (_percentile(values, p) for p in (25, 50, 75))
            rows.append(
                PeerRow(
                    workload=workload,
                    metric=metric,
                    rounds=len(rounds),
                    median=quantity(median, unit),
                    quartiles=quantity_range(q1, q3, unit),
                    extremes=quantity_range(min(values), max(values), unit),
                )
            )
            bars.append(charts.Bar(f"{metric}\n({workload})", median, q1, q3))
    descriptions = tuple(
        (name, registry.WORKLOADS[name].description)
        for name in PEER_WORKLOADS
        if name in registry.WORKLOADS
    )
    if not rows:
        return PeerSection(
            False,
            "The peers were not run in this bundle (no ratio_* samples from "
            + " or ".join(PEER_WORKLOADS)
            + "). Install them with `"
            + PEER_INSTALL
            + "`, then run `harness run` again.",
            version,
            (),
            descriptions,
            "",
        )
    svg = charts.bar_chart(
        "peers",
        bars,
        xlabel="ratio: median of the rounds (whisker: interquartile range)",
        title=f"Against LangGraph {version or '(version not recorded)'}",
        reference=1.0,
    )
    message = (
        f"Peer: LangGraph {version}."
        if version
        else "Peer version not recorded in the manifest's dependency versions."
    )
    return PeerSection(True, message, version, tuple(rows), descriptions, svg)


# -- determinism ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplayRow:
    """One replay setting's verdict."""

    trace: str
    mode: str
    concurrency: str
    jitter: str
    seed: str
    events: str
    makespan: str
    deterministic: bool


@dataclass(frozen=True, slots=True)
class DivergenceView:
    """A replay's first diverging event, in full."""

    trace: str
    setting: str
    index: str
    field: str
    expected: str
    actual: str


@dataclass(frozen=True, slots=True)
class DeterminismSection:
    """The replay verdict, one row per setting, and every first divergence."""

    status: str
    reason: str
    rows: tuple[ReplayRow, ...]
    divergences: tuple[DivergenceView, ...]


def _text(value: Any, default: str = "-") -> str:
    return default if value is None else str(value)


def _event(value: Any) -> str:
    if value is None:
        return "(no event)"
    return json.dumps(value, sort_keys=True, indent=2, default=str)


def determinism_section(manifest: Manifest) -> DeterminismSection:
    """The determinism replay results of ``manifest``."""
    rows = []
    divergences = []
    for result in manifest.determinism.results:
        trace = Path(str(result.get("trace", "?"))).name
        makespan = result.get("makespan_s")
        rows.append(
            ReplayRow(
                trace=trace,
                mode=_text(result.get("mode")),
                concurrency=_text(result.get("concurrency")),
                jitter=_text(result.get("jitter")),
                seed=_text(result.get("seed")),
                events=_text(result.get("events")),
                makespan="-" if makespan is None else quantity(float(makespan), "s"),
                deterministic=bool(result.get("deterministic")),
            )
        )
        divergence = result.get("divergence")
        if isinstance(divergence, dict):
            divergences.append(
                DivergenceView(
                    trace=trace,
                    setting=f"--mode {_text(result.get('mode'))} --concurrency "
                    f"{_text(result.get('concurrency'))} --jitter {_text(result.get('jitter'))} "
                    f"--seed {_text(result.get('seed'))}",
                    index=_text(divergence.get("index")),
                    field=_text(divergence.get("field")),
                    expected=_event(divergence.get("expected")),
                    actual=_event(divergence.get("actual")),
                )
            )
    return DeterminismSection(
        manifest.determinism.status.value,
        manifest.determinism.reason,
        tuple(rows),
        tuple(divergences),
    )


# -- environment ---------------------------------------------------------------------------


def environment_rows(manifest: Manifest) -> tuple[tuple[str, str], ...]:
    """The manifest's facts of the run, the code and the machine, as label/value rows."""
    env = manifest.environment
    git = env.git
    profile = manifest.profile
    dirty = {True: "yes (uncommitted changes)", False: "no", None: "-"}[git.dirty]
    rows = [
        ("run id", manifest.run_id),
        ("started / finished (UTC)", f"{manifest.started_utc} / {manifest.finished_utc}"),
        (
            "pyperf profile",
            f"{profile.name}: {profile.processes} processes × {profile.values} values, "
            f"{profile.warmups} warmup(s), min time {profile.min_time_s:g} s",
        ),
        ("git sha", _text(git.sha)),
        ("git branch", _text(git.branch)),
        ("dirty work tree", dirty),
        ("machine", f"{env.machine} ({env.hostname})"),
        ("CPU", f"{env.cpu_model}, {env.cpu_count} CPUs ({env.cpu_affinity} usable)"),
        ("OS", f"{env.os} {env.kernel}"),
        ("Python", f"{env.python_implementation} {env.python_version} ({env.python_executable})"),
        ("fingerprint", env.fingerprint_digest),
        ("targets file", f"{manifest.targets_file} (sha256 {manifest.targets_sha256[:16]}…)"),
    ]
    rows.extend((f"trace {name}", digest[:16] + "…") for name, digest in manifest.traces.items())
    if manifest.otlp_endpoint:
        rows.append(("OTLP endpoint", manifest.otlp_endpoint))
    return tuple(rows)
