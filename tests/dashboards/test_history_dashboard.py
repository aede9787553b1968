"""The Grafana dashboard over the history store: ``dashboards/history.json``.

Fast tests read the file: importable Grafana JSON, every query through the
``datasource`` variable (a PostgreSQL data source), every template variable used in
SQL is defined and quoted by Grafana (``${name:sqlstring}``), and Grafana's macros
are the ones its PostgreSQL data source knows.

The slow test runs every SQL query of the dashboard (panels, template variables,
annotations) on the real PostgreSQL server (tests/_postgres.py) against a store fed
through :class:`~harness.store.db.HistoryStore`: each is interpolated as Grafana
does (variables first, then the macros, with the regular expression of Grafana's
PostgreSQL macro engine), and each returns rows; the value panel returns the stored
values, the annotation exactly the nights where a target's outcome flipped, and a
time range without runs returns none.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from harness.bundle.files import Bundle, load_bundle
from harness.bundle.verdicts import TargetOutcome
from harness.store.db import HistoryStore
from tests.harness._bundles import make_environment
from tests.harness.test_store_size import synthetic_bundle

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "history.json"
DATASOURCE_REF = {"type": "grafana-postgresql-datasource", "uid": "${datasource}"}
VARIABLES = ("branch", "fingerprint", "profile", "target", "workload")
# Grafana's PostgreSQL macro engine (pkg/tsdb/grafana-postgresql-datasource/macros.go):
# `\$` identifier `(` arguments without `)` `)`, arguments split on commas.
MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")
VARIABLE = re.compile(r"\$\{([a-z_]+):sqlstring\}")
KNOWN_MACROS = {"__timeFilter", "__timeFrom", "__timeTo", "__time"}

WORKLOADS = ("scheduler_latency", "approval_wait")
NIGHTS = 6
FAILING_NIGHT = 4  # night 4 misses the first target: flips on nights 4 and 5
OTHER_FINGERPRINT = "f" * 64
RFC3339 = "%Y-%m-%dT%H:%M:%SZ"  # what Grafana's macros write (UTC)


@dataclass(frozen=True, slots=True)
class Query:
    """One SQL query of the dashboard: where it is (for messages) and its text."""

    where: str
    sql: str
    repeat: str = ""  # the variable a repeated panel is repeated over


def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def panels(board: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(board: Mapping[str, Any]) -> list[Query]:
    """Every SQL query: panels' targets, template variables, annotations."""
    found = [
        Query(f"panel {panel['title']!r}", target["rawSql"], panel.get("repeat", ""))
        for panel in panels(board)
        for target in panel.get("targets", [])
    ]
    found += [
        Query(f"variable {variable['name']}", variable["query"])
        for variable in board["templating"]["list"]
        if variable["type"] == "query"
    ]
    found += [
        Query(f"annotation {annotation['name']!r}", annotation["target"]["rawSql"])
        for annotation in board["annotations"]["list"]
        if "target" in annotation
    ]
    return found


# --------------------------------------------------------------------------- the file


def test_the_dashboard_is_grafana_json_over_one_postgresql_datasource() -> None:
    board = dashboard()
    assert board["uid"] == "agentbench-history"
    assert board["schemaVersion"] >= 39
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "grafana-postgresql-datasource"
    assert set(variables) == {"datasource", *VARIABLES}
    for name in VARIABLES:
        assert variables[name]["datasource"] == DATASOURCE_REF, name
    drawn = [panel for panel in panels(board) if panel["type"] != "row"]
    assert drawn
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))
    for panel in drawn:
        assert panel["datasource"] == DATASOURCE_REF, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE_REF
            assert target["rawQuery"] is True and target["format"] in ("table", "time_series")
    annotation = [a for a in board["annotations"]["list"] if "target" in a]
    assert [a["datasource"] for a in annotation] == [DATASOURCE_REF]


def test_every_query_uses_known_variables_quoted_and_known_macros() -> None:
    board = dashboard()
    for query in queries(board):
        used = set(VARIABLE.findall(query.sql))
        assert used <= set(VARIABLES), (query.where, used)
        macros = {name for name, _ in MACRO.findall(query.sql)}
        assert macros <= KNOWN_MACROS, (query.where, macros)
        # Nothing else starts with `$`: no unquoted $var, no unknown macro.
        rest = MACRO.sub("", VARIABLE.sub("", query.sql))
        assert "$" not in rest, (query.where, rest)
        if query.where.startswith("panel") or query.where.startswith("annotation"):
            assert "$__timeFilter(" in query.sql, query.where
    repeated = {panel.get("repeat") for panel in panels(board)} - {None}
    assert repeated == {"target", "workload"}
    multi = {v["name"] for v in board["templating"]["list"] if v.get("multi")}
    assert repeated <= multi


# --------------------------------------------------------------------------- on the server


def sqlstring(values: Sequence[str]) -> str:
    """Grafana's ``sqlstring`` format: each value quoted, quotes doubled, comma-joined."""
    return ",".join("'" + value.replace("'", "''") + "'" for value in values)


def interpolate(
    sql: str, values: Mapping[str, Sequence[str]], start: datetime, end: datetime
) -> str:
    """``sql`` as Grafana sends it: template variables, then the macros."""
    sql = VARIABLE.sub(lambda m: sqlstring(values[m.group(1)]), sql)
    stamp = {"from": start.strftime(RFC3339), "to": end.strftime(RFC3339)}

    def macro(match: re.Match[str]) -> str:
        name, args = match.group(1), [arg.strip() for arg in match.group(2).split(",")]
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN '{stamp['from']}' AND '{stamp['to']}'"
        if name == "__timeFrom":
            return f"'{stamp['from']}'"
        if name == "__timeTo":
            return f"'{stamp['to']}'"
        if name == "__time":
            return f'{args[0]} AS "time"'
        raise AssertionError(f"unknown macro {name}")

    return MACRO.sub(macro, sql)


def night(bundle: Bundle, index: int, *, branch: str = "main", fingerprint: str = "") -> Bundle:
    """``bundle`` as night ``index`` (1-based) of ``branch`` on a machine."""
    manifest = bundle.manifest
    environment = manifest.environment
    git = msgspec.structs.replace(environment.git, branch=branch)
    environment = msgspec.structs.replace(environment, git=git)
    if fingerprint:
        environment = msgspec.structs.replace(
            environment, fingerprint_digest=fingerprint, cpu_model="Other CPU"
        )
    verdicts = list(manifest.verdicts)
    if index == FAILING_NIGHT and branch == "main" and not fingerprint:
        verdicts[0] = dataclasses.replace(verdicts[0], outcome=TargetOutcome.FAIL, passed=False)
    tag = f"{branch[:4]}{fingerprint[:2]}".ljust(6, "x")
    manifest = msgspec.structs.replace(
        manifest,
        run_id=f"2024010{index}T020000Z-0123456-{tag}",
        started_utc=f"2024-01-0{index}T02:00:00+00:00",
        environment=environment,
        verdicts=verdicts,
    )
    return dataclasses.replace(bundle, manifest=manifest)


@pytest.fixture
def fed_store(tmp_path: Path, postgres_url: str) -> tuple[str, Bundle]:
    """A server store of six nights of main on this machine (night 4 misses the first
    target), one night of a feature branch and one of main on another machine."""
    bundle = load_bundle(synthetic_bundle(tmp_path, "fast", workloads=WORKLOADS))
    store = HistoryStore(postgres_url)
    for index in range(1, NIGHTS + 1):
        assert store.append_run(night(bundle, index))
    assert store.append_run(night(bundle, 2, branch="feature"))
    assert store.append_run(night(bundle, 3, fingerprint=OTHER_FINGERPRINT))
    return postgres_url, bundle


def run(url: str, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The column names and rows of ``sql`` on a read-only connection."""
    import psycopg

    with psycopg.connect(url, connect_timeout=10, autocommit=True) as connection:
        connection.execute("SET default_transaction_read_only = on")
        cursor = connection.execute(sql)  # no parameters: sent as it is
        names = [column.name for column in cursor.description or []]
        return names, list(cursor.fetchall())


@pytest.mark.slow
def test_every_dashboard_query_returns_rows_on_a_fed_store(fed_store: tuple[str, Bundle]) -> None:
    url, bundle = fed_store
    targets = sorted(v.target.name for v in bundle.manifest.verdicts)
    first = bundle.manifest.verdicts[0]
    values: dict[str, Sequence[str]] = {
        "branch": ["main"],
        "fingerprint": [make_environment().fingerprint_digest],
        "profile": ["fast"],
        "target": targets,  # "All"
        "workload": list(WORKLOADS),
    }
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 31, tzinfo=UTC)
    # A repeated panel has one copy per value of its variable: the copy checked here.
    copy = {"target": [first.target.name], "workload": [WORKLOADS[0]]}
    answers: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
    for query in queries(dashboard()):
        scoped = {**values, **({query.repeat: copy[query.repeat]} if query.repeat else {})}
        names, rows = run(url, interpolate(query.sql, scoped, start, end))
        assert rows, f"{query.where} returned no rows"
        answers[query.where] = (names, rows)

    # The variables offer what was stored.
    assert sorted(r[0] for r in answers["variable branch"][1]) == ["feature", "main"]
    names, rows = answers["variable fingerprint"]
    assert names == ["__value", "__text"]  # newest machine first, labelled by its CPU
    assert [r[0] for r in rows] == [make_environment().fingerprint_digest, OTHER_FINGERPRINT]
    assert rows[1][1] == f"{OTHER_FINGERPRINT[:12]} · Other CPU · Python 3.11.7"
    assert sorted(r[0] for r in answers["variable target"][1]) == targets
    assert sorted(r[0] for r in answers["variable workload"][1]) == sorted(WORKLOADS)

    # The value panel: one point a night of main on this machine, the stored values.
    names, rows = answers["panel '$target: value and interval per night'"]
    assert names == ["time", "value", "interval low", "interval high", "bound"]
    assert [row[0].day for row in rows] == list(range(1, NIGHTS + 1))
    assert {row[1:] for row in rows} == {(first.value, *(first.spread or ()), first.bound)}

    # The annotation: exactly the two flips of the first target (night 4, back on night 5).
    names, rows = answers["annotation 'Outcome flips'"]
    assert names == ["time", "text", "tags"]
    assert [(row[0].day, row[2]) for row in rows] == [
        (FAILING_NIGHT, first.target.name),
        (FAILING_NIGHT + 1, first.target.name),
    ]
    assert rows[0][1].startswith(f"{first.target.name}: pass -> fail at ")
    assert rows[1][1].startswith(f"{first.target.name}: fail -> pass at ")

    # A time range before any run: the time-filtered queries return nothing.
    early = datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 2, 1, tzinfo=UTC)
    for query in queries(dashboard()):
        if "$__timeFilter(" in query.sql:
            scoped = {**values, **({query.repeat: copy[query.repeat]} if query.repeat else {})}
            assert run(url, interpolate(query.sql, scoped, *early))[1] == [], query.where
