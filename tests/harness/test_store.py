"""The history store: one transaction a run, concurrent writers, pandas queries.

See also test_store_alone.py (the store alone is enough) and test_store_hostile.py.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import sqlite3
from contextlib import closing
from pathlib import Path

import msgspec
import pytest

from harness.bundle.files import Bundle, load_bundle
from harness.errors import EnvironmentRefused, TargetsError
from harness.store import queries as history
from harness.store.db import SCHEMA_VERSION, HistoryStore

from ._bundles import build_bundle

RUN_ID = "20240101T000000Z-0123456-abcdef"
APPENDS_PER_WRITER = 20


def _renamed(bundle: Bundle, run_id: str, started_utc: str | None = None) -> Bundle:
    manifest = msgspec.structs.replace(
        bundle.manifest, run_id=run_id, started_utc=started_utc or bundle.manifest.started_utc
    )
    return dataclasses.replace(bundle, manifest=manifest)


def _append_many(db: str, bundle_dir: str, writer: int) -> None:
    """A writer process: APPENDS_PER_WRITER runs, each in its own transaction."""
    bundle = load_bundle(bundle_dir)
    store = HistoryStore(db)
    for index in range(APPENDS_PER_WRITER):
        assert store.append_run(_renamed(bundle, f"w{writer}-{index:02d}"))


def test_append_run_stores_run_statistics_and_verdicts(tmp_path: Path) -> None:
    bundle = load_bundle(build_bundle(tmp_path, RUN_ID))
    store = HistoryStore(tmp_path / "history.sqlite")
    assert store.append_run(bundle)
    runs = store.query("SELECT * FROM runs")
    assert runs["run_id"].tolist() == [RUN_ID]
    assert runs["passed"].tolist() == [1]
    stats = store.query("SELECT workload, metric, n, p50, mean FROM workload_stats ORDER BY metric")
    assert stats["metric"].tolist() == ["op_latency", "pyperf"]
    assert stats["n"].tolist() == [6, 6]
    assert stats["p50"][0] == pytest.approx(0.021)
    verdicts = store.query("SELECT target, outcome, bound, n, rounds FROM verdicts")
    assert verdicts.to_dict("records") == [
        {"target": "op_latency_p95", "outcome": "pass", "bound": 0.25, "n": 6, "rounds": 2}
    ]
    assert store.query("SELECT version FROM schema_version")["version"].tolist() == [SCHEMA_VERSION]


def test_appending_a_stored_run_again_changes_nothing(tmp_path: Path) -> None:
    bundle = load_bundle(build_bundle(tmp_path, RUN_ID))
    store = HistoryStore(tmp_path / "history.sqlite")
    assert store.append_run(bundle)
    assert not store.append_run(bundle)
    assert len(store.query("SELECT * FROM verdicts")) == 1


def test_a_failed_append_leaves_nothing_of_the_run(tmp_path: Path) -> None:
    bundle = load_bundle(build_bundle(tmp_path, RUN_ID))
    store = HistoryStore(tmp_path / "history.sqlite")
    store.append_run(_renamed(bundle, "first"))
    verdict = bundle.manifest.verdicts[0]
    twice = msgspec.structs.replace(bundle.manifest, run_id="second", verdicts=[verdict, verdict])
    with pytest.raises(sqlite3.IntegrityError):
        store.append_run(dataclasses.replace(bundle, manifest=twice))
    assert store.query("SELECT run_id FROM runs")["run_id"].tolist() == ["first"]
    assert store.query("SELECT DISTINCT run_id FROM workload_stats")["run_id"].tolist() == ["first"]


def test_two_concurrent_writers_never_corrupt_the_store(tmp_path: Path) -> None:
    bundle_dir = build_bundle(tmp_path, RUN_ID)
    db = tmp_path / "history.sqlite"
    context = multiprocessing.get_context("spawn")
    writers = [
        context.Process(target=_append_many, args=(str(db), str(bundle_dir), writer))
        for writer in (1, 2)
    ]
    for process in writers:
        process.start()
    for process in writers:
        process.join()
    assert [process.exitcode for process in writers] == [0, 0]
    store = HistoryStore(db)
    assert store.integrity_check() == "ok"
    assert len(store.query("SELECT run_id FROM runs")) == 2 * APPENDS_PER_WRITER
    assert len(store.query("SELECT * FROM verdicts")) == 2 * APPENDS_PER_WRITER
    assert store.query("PRAGMA journal_mode")["journal_mode"].tolist() == ["wal"]


def test_history_lists_runs_oldest_first(tmp_path: Path) -> None:
    bundle = load_bundle(build_bundle(tmp_path, RUN_ID))
    store = HistoryStore(tmp_path / "history.sqlite")
    store.append_run(_renamed(bundle, "b-run", "2024-01-02T00:00:00+00:00"))
    store.append_run(_renamed(bundle, "a-run", "2024-01-01T00:00:00+00:00"))
    frame = history.runs(store)
    assert frame["run_id"].tolist() == ["a-run", "b-run"]
    assert frame["targets"].tolist() == ["1/1", "1/1"]
    assert history.runs(store, limit=1)["run_id"].tolist() == ["b-run"]
    assert "a-run" in history.render(frame)


def test_target_history_shows_values_over_time(tmp_path: Path) -> None:
    bundle = load_bundle(build_bundle(tmp_path, RUN_ID))
    store = HistoryStore(tmp_path / "history.sqlite")
    store.append_run(_renamed(bundle, "a-run", "2024-01-01T00:00:00+00:00"))
    store.append_run(_renamed(bundle, "b-run", "2024-01-02T00:00:00+00:00"))
    frame = history.target_history(store, "op_latency_p95")
    assert frame["run_id"].tolist() == ["a-run", "b-run"]
    assert frame["value"].tolist() == [bundle.manifest.verdicts[0].value] * 2
    with pytest.raises(TargetsError) as caught:
        history.target_history(store, "nope")
    assert caught.value.expected == "one of: op_latency_p95"


def test_queries_never_create_a_store(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite")
    with pytest.raises(EnvironmentRefused, match="no history store"):
        history.runs(store)
    assert not store.path.exists()


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    path.write_bytes(b"not a database, just some bytes" * 100)
    with pytest.raises(EnvironmentRefused, match="history store unusable"):
        history.runs(HistoryStore(path))
    bundle = load_bundle(build_bundle(tmp_path, RUN_ID))
    with pytest.raises(EnvironmentRefused):
        HistoryStore(path).append_run(bundle)


def test_a_store_of_a_newer_schema_is_refused_unchanged(tmp_path: Path) -> None:
    bundle = load_bundle(build_bundle(tmp_path, RUN_ID))
    store = HistoryStore(tmp_path / "history.sqlite")
    store.append_run(bundle)
    with closing(sqlite3.connect(store.path)) as connection, connection:
        connection.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(EnvironmentRefused, match=f"schema version {SCHEMA_VERSION + 1}"):
        store.append_run(_renamed(bundle, "another"))
    with pytest.raises(EnvironmentRefused, match=f"schema version {SCHEMA_VERSION + 1}"):
        history.runs(store)  # a newer store is refused when read, too
    with closing(sqlite3.connect(store.path)) as connection:
        assert connection.execute("SELECT run_id FROM runs").fetchall() == [(RUN_ID,)]
