"""The history store's behaviour, the same on both backends: a SQLite file and PostgreSQL.

Every test takes ``store_location`` (tests/conftest.py): a SQLite path, then the URL
of a new database on the session's real PostgreSQL cluster (``slow``). What the
store promises (one transaction a run, a run stored once, the run rebuilt whole,
calibrations, the queries, newer schemas refused unchanged, concurrent writers, a
writer killed mid-transaction) is checked on each.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import msgspec
import pytest

from harness.bundle.files import Bundle, Determinism, DeterminismStatus, load_bundle
from harness.errors import EnvironmentRefused, TargetsError
from harness.judge.rounds import metric_rounds
from harness.store import queries
from harness.store.db import SCHEMA_VERSION, CalibrationRow, HistoryStore
from harness.store.location import Location

from ._bundles import build_bundle, make_environment
from ._store_writers import (
    APPENDS_PER_WRITER,
    KILLED_RUN,
    SHARED_RUN,
    STORED_SHARED,
    append_many,
    die_mid_append,
    renamed,
)
from .test_store_size import synthetic_bundle

RUN_ID = "20240101T000000Z-0123456-abcdef"
WRITERS = 4
TABLES = (
    "runs",
    "workload_stats",
    "verdicts",
    "run_manifests",
    "sample_series",
    "pyperf_series",
)
DEADLINE_S = 120.0


def raw(location: Location, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """``sql`` run directly by the backend's driver (not through the store), committed.

    ``?`` placeholders; rows for a query, [] for a statement.
    """
    if isinstance(location, Path):
        with closing(sqlite3.connect(location)) as connection, connection:
            return list(connection.execute(sql, params).fetchall())
    import psycopg

    with psycopg.connect(location, connect_timeout=10) as connection:
        cursor = connection.execute(sql.replace("?", "%s"), params)
        return list(cursor.fetchall()) if cursor.description else []


def counts(location: Location, run_id: str) -> dict[str, int]:
    """How many rows of each run table belong to ``run_id``."""
    return {
        table: int(raw(location, f"SELECT count(*) FROM {table} WHERE run_id = ?", (run_id,))[0][0])
        for table in TABLES
    }


def deterministic(bundle: Bundle, run_id: str, started_utc: str) -> Bundle:
    """``bundle`` as a good run (every target met, replay deterministic)."""
    return renamed(
        bundle, run_id, started_utc, determinism=Determinism(status=DeterminismStatus.DETERMINISTIC)
    )


# --------------------------------------------------------------------------- append and read


def test_append_run_stores_run_statistics_and_verdicts(
    tmp_path: Path, store_location: Location
) -> None:
    bundle = load_bundle(build_bundle(tmp_path, RUN_ID))
    store = HistoryStore(store_location)
    assert store.append_run(bundle)
    runs = store.query("SELECT * FROM runs")
    assert runs["run_id"].tolist() == [RUN_ID]
    assert runs["passed"].tolist() == [1]
    assert runs["stored_schema"].tolist() == [SCHEMA_VERSION]
    stats = store.query("SELECT workload, metric, n, p50, mean FROM workload_stats ORDER BY metric")
    assert stats["metric"].tolist() == ["op_latency", "pyperf"]
    assert stats["n"].tolist() == [6, 6]
    assert stats["p50"][0] == pytest.approx(0.021)
    verdicts = store.query("SELECT target, outcome, bound, n, rounds FROM verdicts")
    assert verdicts.to_dict("records") == [
        {"target": "op_latency_p95", "outcome": "pass", "bound": 0.25, "n": 6, "rounds": 2}
    ]
    assert store.schema_version() == SCHEMA_VERSION
    assert store.integrity_check() == "ok"
    assert counts(store_location, RUN_ID) == {
        "runs": 1,
        "workload_stats": 2,
        "verdicts": 1,
        "run_manifests": 1,
        "sample_series": 1,
        "pyperf_series": 1,
    }


def test_appending_a_stored_run_again_changes_nothing(
    tmp_path: Path, store_location: Location
) -> None:
    bundle = load_bundle(build_bundle(tmp_path, RUN_ID))
    store = HistoryStore(store_location)
    assert store.append_run(bundle)
    before = counts(store_location, RUN_ID)
    assert not store.append_run(bundle)
    assert counts(store_location, RUN_ID) == before


def integrity_errors() -> tuple[type[Exception], ...]:
    """The drivers' integrity errors (psycopg's when it is installed)."""
    try:
        import psycopg
    except ImportError:
        return (sqlite3.IntegrityError,)
    return (sqlite3.IntegrityError, psycopg.IntegrityError)


def test_a_failed_append_leaves_nothing_of_the_run(
    tmp_path: Path, store_location: Location
) -> None:
    bundle = load_bundle(build_bundle(tmp_path, RUN_ID))
    store = HistoryStore(store_location)
    store.append_run(renamed(bundle, "first"))
    verdict = bundle.manifest.verdicts[0]
    twice = renamed(bundle, "second", verdicts=[verdict, verdict])  # a duplicate key
    with pytest.raises(integrity_errors()):
        store.append_run(twice)
    assert counts(store_location, "second") == dict.fromkeys(TABLES, 0)
    assert store.query("SELECT run_id FROM runs")["run_id"].tolist() == ["first"]


def test_a_run_rebuilt_from_the_store_is_its_bundle(
    tmp_path: Path, store_location: Location
) -> None:
    bundle = load_bundle(synthetic_bundle(tmp_path, "fast"))
    store = HistoryStore(store_location)
    assert store.append_run(bundle)
    rebuilt = store.load_run(bundle.manifest.run_id)
    assert rebuilt.manifest == bundle.manifest
    assert rebuilt.samples == bundle.samples  # same order, bit-identical values
    assert rebuilt.pyperf_samples() == bundle.pyperf_samples()
    assert metric_rounds(rebuilt) == metric_rounds(bundle)
    stored = store.stored_run(bundle.manifest.run_id)
    assert stored is not None and stored.values_stored
    assert store.stored_run("no-such-run") is None


def test_good_runs_newest_first_and_the_last_good_one(
    tmp_path: Path, store_location: Location
) -> None:
    bundle = load_bundle(build_bundle(tmp_path, RUN_ID))
    store = HistoryStore(store_location)
    assert store.last_good_run() is None  # nothing stored yet: no error, no store made
    store.append_run(deterministic(bundle, "good-1", "2024-01-01T00:00:00+00:00"))
    store.append_run(deterministic(bundle, "good-2", "2024-01-02T00:00:00+00:00"))
    store.append_run(renamed(bundle, "not-replayed", "2024-01-03T00:00:00+00:00"))
    assert [run.run_id for run in store.good_runs()] == ["good-2", "good-1"]
    assert [run.run_id for run in store.good_runs(exclude="good-2")] == ["good-1"]
    last = store.last_good_run()
    assert last is not None and last.run_id == "good-2"
    assert last.git_sha == make_environment().git.sha
    assert last.fingerprint == make_environment().fingerprint_digest


def test_calibrations_latest_of_a_fingerprint_with_unreachable_mde(
    store_location: Location,
) -> None:
    store = HistoryStore(store_location)
    assert store.latest_calibration("fp") == ()

    def row(calibration_id: str, created: str, metric: str, mde: float) -> CalibrationRow:
        return CalibrationRow(
            calibration_id, "fp", "fast", "w", metric, "median", "s", "wall", 9, 0.01, mde, created
        )

    store.append_calibration([row("c1", "2024-01-01", "a", 0.02)])
    store.append_calibration(
        [row("c2", "2024-01-02", "b", float("inf")), row("c2", "2024-01-02", "a", 0.03)]
    )
    latest = store.latest_calibration("fp")
    assert [(r.calibration_id, r.metric, r.mde) for r in latest] == [
        ("c2", "a", 0.03),
        ("c2", "b", float("inf")),  # stored as NULL, read back as inf
    ]
    assert store.latest_calibration("another machine") == ()


# --------------------------------------------------------------------------- queries


def test_queries_answer_alike(tmp_path: Path, store_location: Location) -> None:
    bundle = load_bundle(build_bundle(tmp_path, RUN_ID))
    store = HistoryStore(store_location)
    store.append_run(renamed(bundle, "b-run", "2024-01-02T00:00:00+00:00"))
    store.append_run(renamed(bundle, "a-run", "2024-01-01T00:00:00+00:00"))
    outside = msgspec.structs.replace(
        bundle.manifest.environment,
        git=msgspec.structs.replace(bundle.manifest.environment.git, branch=None),
    )
    third = "2024-01-03T00:00:00+00:00"
    store.append_run(renamed(bundle, "c-nobranch", third, environment=outside))

    frame = queries.runs(store)
    assert frame["run_id"].tolist() == ["a-run", "b-run", "c-nobranch"]
    assert frame["targets"].tolist() == ["1/1"] * 3
    assert frame["values"].tolist() == [True] * 3
    assert frame["dirty"].tolist() == [False] * 3
    assert queries.runs(store, limit=1)["run_id"].tolist() == ["c-nobranch"]
    assert "a-run" in queries.render(frame)

    history = queries.target_history(store, "op_latency_p95", limit=2)
    assert history["run_id"].tolist() == ["b-run", "c-nobranch"]
    assert history["value"].tolist() == [bundle.manifest.verdicts[0].value] * 2
    assert history["sha"].tolist() == ["0123456"] * 2
    with pytest.raises(TargetsError) as caught:
        queries.target_history(store, "nope")
    assert caught.value.expected == "one of: op_latency_p95"

    assert queries.latest_identity(store) == (
        "",
        make_environment().fingerprint_digest,
        "fast",
    )
    nights = queries.night_series(
        store, branch="main", fingerprint=make_environment().fingerprint_digest, profile="fast"
    )
    assert sorted(set(nights["run_id"])) == ["a-run", "b-run"]
    assert set(nights["kind"]) == {"metric", "target"}
    assert nights["started_utc"].is_monotonic_increasing

    # trend_series matches a NULL branch with NULL (IS ?), a branch with itself.
    trend = queries.trend_series(
        store, branch="main", started_utc="2024-01-02T00:00:00+00:00", run_id="b-run", limit=5
    )
    assert trend["run_id"].tolist() == ["a-run", "b-run"]
    trend = queries.trend_series(
        store, branch=None, started_utc="2024-01-09T00:00:00+00:00", run_id="z", limit=5
    )
    assert trend["run_id"].tolist() == ["c-nobranch"]
    assert queries.target_directions(store) == {"op_latency_p95": "max"}


def test_reads_never_create_a_store(store_location: Location) -> None:
    store = HistoryStore(store_location)
    with pytest.raises(EnvironmentRefused, match="no history"):
        queries.runs(store)
    assert store.stored_version() is None
    assert store.latest_calibration("fp") == ()
    if isinstance(store_location, Path):
        assert not store_location.exists()
    else:
        tables = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        assert raw(store_location, tables) == []


def test_a_store_of_a_newer_schema_is_refused_unchanged(
    tmp_path: Path, store_location: Location
) -> None:
    bundle = load_bundle(build_bundle(tmp_path, RUN_ID))
    store = HistoryStore(store_location)
    store.append_run(bundle)
    raw(store_location, "UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(EnvironmentRefused, match=f"schema version {SCHEMA_VERSION + 1}"):
        store.append_run(renamed(bundle, "another"))
    with pytest.raises(EnvironmentRefused, match=f"schema version {SCHEMA_VERSION + 1}"):
        queries.runs(store)  # a newer store is refused when read, too
    with pytest.raises(EnvironmentRefused, match=f"schema version {SCHEMA_VERSION + 1}"):
        store.append_calibration([])
    assert raw(store_location, "SELECT run_id FROM runs") == [(RUN_ID,)]
    assert raw(store_location, "SELECT version FROM schema_version") == [(SCHEMA_VERSION + 1,)]


# --------------------------------------------------------------------------- concurrency


def test_concurrent_writers_store_every_run_exactly_once(
    tmp_path: Path, store_location: Location
) -> None:
    bundle_dir = build_bundle(tmp_path, RUN_ID)
    context = multiprocessing.get_context("spawn")
    writers = [
        context.Process(target=append_many, args=(store_location, str(bundle_dir), writer))
        for writer in range(WRITERS)
    ]
    for process in writers:  # all start on an empty store: they race to create the schema
        process.start()
    for process in writers:
        process.join(timeout=DEADLINE_S)
    statuses = sorted(process.exitcode for process in writers)
    assert statuses == [0] * (WRITERS - 1) + [STORED_SHARED]  # one writer stored it
    store = HistoryStore(store_location)
    expected = {SHARED_RUN} | {
        f"w{w}-{i:02d}" for w in range(WRITERS) for i in range(APPENDS_PER_WRITER)
    }
    run_ids = store.query("SELECT run_id FROM runs")["run_id"].tolist()
    assert sorted(run_ids) == sorted(expected)  # each once: run_id is the key
    per_run = store.query("SELECT run_id, count(*) AS n FROM verdicts GROUP BY run_id")
    assert set(per_run["run_id"]) == expected and set(per_run["n"]) == {1}
    assert raw(store_location, "SELECT count(*) FROM schema_version") == [(1,)]
    assert store.integrity_check() == "ok"


def test_a_writer_killed_mid_transaction_leaves_nothing(
    tmp_path: Path, store_location: Location
) -> None:
    bundle_dir = build_bundle(tmp_path, RUN_ID)
    store = HistoryStore(store_location)
    assert store.append_run(renamed(load_bundle(bundle_dir), "before"))
    context = multiprocessing.get_context("spawn")
    inside = context.Event()
    writer = context.Process(target=die_mid_append, args=(store_location, str(bundle_dir), inside))
    writer.start()
    try:
        assert inside.wait(timeout=DEADLINE_S), "the writer never reached its transaction"
        assert writer.pid is not None
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.join(timeout=DEADLINE_S)
    assert writer.exitcode == -signal.SIGKILL
    assert counts(store_location, KILLED_RUN) == dict.fromkeys(TABLES, 0)
    assert store.query("SELECT run_id FROM runs")["run_id"].tolist() == ["before"]
    # The writers' lock died with it: the same run appends whole now.
    assert store.append_run(renamed(load_bundle(bundle_dir), KILLED_RUN))
    assert counts(store_location, KILLED_RUN)["verdicts"] == 1
    assert store.integrity_check() == "ok"
