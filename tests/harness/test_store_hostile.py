"""Hostile stores: an older schema, a newer one, not a database, a corrupt page, a read-only
directory; and no connection left open (Python 3.13 warns of one).

Every refusal is one line and exit status 2, and leaves the file byte-for-byte as it was.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import shutil
import sqlite3
import warnings
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from harness.bundle.files import load_bundle
from harness.cli import main
from harness.errors import BundleError
from harness.judge.compare import last_good_bundle, resolve_bundle
from harness.report.sections import trend_section
from harness.store import queries
from harness.store.db import SCHEMA_VERSION, CalibrationRow, HistoryStore, StoreError

from ._bundles import make_environment
from .test_store_size import synthetic_bundle

WORKLOADS = ("scheduler_latency", "approval_wait")
OLD_ID = "20240103T000000Z-0123456-oldrun"
NEW_ID = "20240102T000000Z-0123456-newrun"
TONIGHT_ID = "20240104T000000Z-0123456-tonigh"

# The schema-2 store exactly as the schema-2 code created it (harness/store/db.py at e9e697d+).
_V2_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_utc TEXT NOT NULL,
    finished_utc TEXT NOT NULL,
    profile TEXT NOT NULL,
    git_sha TEXT,
    branch TEXT,
    dirty INTEGER,
    fingerprint TEXT NOT NULL,
    cpu_model TEXT NOT NULL,
    python_version TEXT NOT NULL,
    workloads TEXT NOT NULL,
    targets_total INTEGER NOT NULL,
    targets_passed INTEGER NOT NULL,
    determinism TEXT NOT NULL,
    passed INTEGER NOT NULL,
    bundle_path TEXT NOT NULL,
    recorded_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS workload_stats (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    workload TEXT NOT NULL,
    metric TEXT NOT NULL,
    unit TEXT NOT NULL,
    clock TEXT NOT NULL,
    n INTEGER NOT NULL,
    p50 REAL NOT NULL,
    p95 REAL NOT NULL,
    p99 REAL NOT NULL,
    median REAL NOT NULL,
    mean REAL NOT NULL,
    PRIMARY KEY (run_id, workload, metric)
);
CREATE TABLE IF NOT EXISTS verdicts (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    target TEXT NOT NULL,
    workload TEXT NOT NULL,
    metric TEXT NOT NULL,
    statistic TEXT NOT NULL,
    clock TEXT NOT NULL,
    unit TEXT NOT NULL,
    direction TEXT NOT NULL,
    bound REAL NOT NULL,
    value REAL,
    spread_low REAL,
    spread_high REAL,
    spread_method TEXT NOT NULL,
    margin REAL,
    outcome TEXT NOT NULL,
    n INTEGER NOT NULL,
    rounds INTEGER NOT NULL,
    PRIMARY KEY (run_id, target)
);
CREATE INDEX IF NOT EXISTS verdicts_by_target ON verdicts (target, run_id);
CREATE TABLE IF NOT EXISTS calibrations (
    calibration_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    profile TEXT NOT NULL,
    workload TEXT NOT NULL,
    metric TEXT NOT NULL,
    statistic TEXT NOT NULL,
    unit TEXT NOT NULL,
    clock TEXT NOT NULL,
    rounds INTEGER NOT NULL,
    noise REAL,
    mde REAL,
    created TEXT NOT NULL,
    PRIMARY KEY (calibration_id, workload, metric, statistic)
);
CREATE INDEX IF NOT EXISTS calibrations_by_fingerprint ON calibrations (fingerprint, created);
"""


def _v2_store(path: Path, bundle_path: Path) -> None:
    """A schema-2 store: one good run (``OLD_ID``, bundle at ``bundle_path``), a calibration."""
    fingerprint = make_environment().fingerprint_digest
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.executescript(_V2_SCHEMA)
        connection.execute("INSERT INTO schema_version VALUES (2)")
        connection.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *(OLD_ID, "2024-01-03T00:00:00+00:00", "2024-01-03T00:10:00+00:00", "fast"),
                *("0123456789abcdef0123456789abcdef01234567", "main", 0, fingerprint),
                *("Test CPU", "3.11.7", "scheduler_latency", 1, 1, "deterministic", 1),
                *(str(bundle_path), "2024-01-03T00:11:00+00:00"),
            ),
        )
        connection.execute(
            "INSERT INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *(OLD_ID, "scheduler_p95_latency", "scheduler_latency", "task_latency", "p95"),
                *("wall", "s", "max", 0.25, 0.14, 0.13, 0.15, "bootstrap-rounds", 0.44, "pass"),
                *(1800, 9),
            ),
        )
        connection.execute(
            "INSERT INTO workload_stats VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (OLD_ID, "scheduler_latency", "task_latency", "s", "wall", 1800, *[0.14] * 5),
        )
        connection.execute(
            "INSERT INTO calibrations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *("cal-1", fingerprint, "fast", "scheduler_latency", "pyperf", "median", "s"),
                *("wall", 12, 0.01, 0.02, "2024-01-01T00:00:00+00:00"),
            ),
        )


def _listing(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in directory.iterdir() if path.is_file()}


def _one_error_line(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("harness: error: ")
    for word in words:
        assert word in lines[0]
    return lines[0]


def _stored_runs(directory: Path, *run_ids: str) -> Path:
    """A store in ``directory`` of synthetic runs, their bundle directories deleted."""
    store = HistoryStore(directory / "history.sqlite")
    bundles = directory / "bundles"
    bundles.mkdir()
    for day, run_id in enumerate(run_ids, start=1):
        path = synthetic_bundle(
            bundles,
            run_id=run_id,
            workloads=WORKLOADS,
            started_utc=f"2024-01-0{day}T00:00:00+00:00",
            seed=day,
        )
        assert store.append_run(load_bundle(path))
    shutil.rmtree(bundles)
    return store.path


# --------------------------------------------------------------------------- older schema


def test_a_schema_2_store_reads_unchanged_and_says_its_runs_have_no_values(
    tmp_path: Path,
) -> None:
    db = tmp_path / "history.sqlite"
    _v2_store(db, tmp_path / "gone" / OLD_ID)
    before = _listing(tmp_path)
    store = HistoryStore(db)
    frame = queries.runs(store)
    assert frame["run_id"].tolist() == [OLD_ID] and frame["values"].tolist() == [False]
    assert queries.target_history(store, "scheduler_p95_latency")["value"].tolist() == [0.14]
    assert [row.calibration_id for row in store.latest_calibration(frame["run_id"][0])] == []
    assert len(store.latest_calibration(make_environment().fingerprint_digest)) == 1
    message = (
        rf"run {OLD_ID} was stored without its values \(schema 2\); "
        "its bundle directory is gone"
    )
    with pytest.raises(BundleError, match=message):
        store.load_run(OLD_ID)
    with pytest.raises(BundleError, match=message):
        last_good_bundle(db)
    with pytest.raises(BundleError, match=message):
        resolve_bundle(OLD_ID, db)
    assert _listing(tmp_path) == before  # reading wrote nothing, created nothing


def test_a_schema_2_store_is_migrated_by_the_first_write(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite"
    _v2_store(db, tmp_path / "gone" / OLD_ID)
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    new = synthetic_bundle(
        bundles, run_id=NEW_ID, workloads=WORKLOADS, started_utc="2024-01-02T00:00:00+00:00"
    )
    store = HistoryStore(db)
    assert store.append_run(load_bundle(new))
    shutil.rmtree(bundles)
    assert store.query("SELECT version FROM schema_version")["version"].tolist() == [SCHEMA_VERSION]
    stored = store.query("SELECT run_id, stored_schema FROM runs ORDER BY run_id")
    assert stored.values.tolist() == [[NEW_ID, SCHEMA_VERSION], [OLD_ID, 2]]
    assert len(store.latest_calibration(make_environment().fingerprint_digest)) == 1
    # The newest good run (OLD_ID) has neither values nor a directory: the one before it is used.
    assert last_good_bundle(db).manifest.run_id == NEW_ID
    assert queries.runs(store)["values"].tolist() == [True, False]


# --------------------------------------------------------------------------- refused stores


def test_a_store_of_a_newer_schema_is_refused_read_and_write_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _stored_runs(tmp_path, NEW_ID)
    with closing(sqlite3.connect(db)) as connection, connection:
        connection.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    before = _listing(tmp_path)
    newer = f"history store of schema version {SCHEMA_VERSION + 1}"
    bundle = load_bundle(
        synthetic_bundle(tmp_path, run_id=TONIGHT_ID, workloads=WORKLOADS, started_utc="2024-01-05")
    )
    with pytest.raises(StoreError, match=newer) as caught:
        HistoryStore(db).append_run(bundle)
    assert caught.value.where == str(db)
    shutil.rmtree(bundle.path)
    assert main(["history", "--db", str(db)]) == 2
    _one_error_line(capsys, newer, str(db))
    assert main(["compare", "--last-good", TONIGHT_ID, "--db", str(db)]) == 2
    _one_error_line(capsys, newer)
    assert _listing(tmp_path) == before


def test_a_file_that_is_not_a_database_is_refused_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "history.sqlite"
    db.write_bytes(b"not a database, just some bytes" * 200)
    bundle = load_bundle(synthetic_bundle(tmp_path, workloads=WORKLOADS))
    shutil.rmtree(bundle.path)
    before = _listing(tmp_path)
    with pytest.raises(StoreError, match="history store unusable: file is not a database"):
        HistoryStore(db).append_run(bundle)
    for argv in (["history"], ["history", "--check"], ["compare", "--last-good", "x"]):
        assert main([*argv, "--db", str(db)]) == 2
        _one_error_line(capsys, "file is not a database", str(db))
    assert _listing(tmp_path) == before


def _corrupt_a_page(db: Path, table: str) -> None:
    """Overwrite a b-tree page of ``table`` (all but its header) with garbage."""
    with closing(sqlite3.connect(db)) as connection:
        (page,) = connection.execute(
            "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' LIMIT 1", (table,)
        ).fetchone()
        (size,) = connection.execute("PRAGMA page_size").fetchone()
    data = bytearray(db.read_bytes())
    start = (page - 1) * size
    data[start + 8 : start + size] = b"\xa5" * (size - 8)
    db.write_bytes(bytes(data))


def test_a_corrupt_page_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _stored_runs(tmp_path, NEW_ID)
    _corrupt_a_page(db, "verdicts")
    bundle = load_bundle(synthetic_bundle(tmp_path, run_id=TONIGHT_ID, workloads=WORKLOADS))
    shutil.rmtree(bundle.path)
    before = _listing(tmp_path)
    with pytest.raises(StoreError, match="history store corrupt: ") as caught:
        HistoryStore(db).append_run(bundle)
    assert "\n" not in str(caught.value) and caught.value.where == str(db)
    assert main(["history", "--check", "--db", str(db)]) == 2
    _one_error_line(capsys, "fails its integrity check", str(db))
    assert _listing(tmp_path) == before


def test_damaged_stored_values_are_a_bundle_error_naming_the_run_and_metric(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _stored_runs(tmp_path, NEW_ID, TONIGHT_ID)
    with closing(sqlite3.connect(db)) as connection, connection:
        connection.execute(
            "UPDATE sample_series SET packed_values = ? WHERE run_id = ? AND metric = ?",
            (b"not zlib", NEW_ID, "task_latency"),
        )
    with pytest.raises(BundleError, match="stored values unreadable") as caught:
        HistoryStore(db).load_run(NEW_ID)
    assert caught.value.where == f"{db}: run {NEW_ID}, scheduler_latency/task_latency"
    assert main(["compare", NEW_ID, TONIGHT_ID, "--db", str(db)]) == 2
    _one_error_line(capsys, "stored values unreadable", NEW_ID)


def test_history_check_says_ok_of_a_sound_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _stored_runs(tmp_path, NEW_ID)
    assert main(["history", "--check", "--db", str(db)]) == 0
    assert capsys.readouterr().out == "ok\n"


# --------------------------------------------------------------------------- reading only


def _read_everything(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every reading command on ``db`` (runs NEW_ID, then TONIGHT_ID), each succeeding."""
    assert main(["history", "--db", str(db)]) == 0
    assert NEW_ID in capsys.readouterr().out
    assert main(["history", "--check", "--db", str(db)]) == 0
    assert capsys.readouterr().out == "ok\n"
    assert main(["compare", "--last-good", TONIGHT_ID, "--db", str(db)]) in (0, 1)
    assert capsys.readouterr().out.startswith("verdict: ")
    tonight = HistoryStore(db).load_run(TONIGHT_ID)
    assert trend_section(tonight, db, limit=5).charts


def test_reading_leaves_the_store_and_its_directory_as_they_were(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _stored_runs(tmp_path, NEW_ID, TONIGHT_ID)
    before = _listing(tmp_path)
    _read_everything(db, capsys)
    assert _listing(tmp_path) == before  # no -wal or -shm left behind, not a byte changed


def test_a_store_in_a_directory_this_process_cannot_write_reads_immutable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read-only path, even as root: ``os.access`` says no, so no -shm can be made."""
    db = _stored_runs(tmp_path, NEW_ID, TONIGHT_ID)
    before = _listing(tmp_path)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    _read_everything(db, capsys)
    assert _listing(tmp_path) == before


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root writes a chmod 0555 directory anyway: nothing to refuse"
)
def test_a_read_only_reports_directory_reads_and_refuses_writes_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    db = _stored_runs(reports, NEW_ID, TONIGHT_ID)
    bundle = load_bundle(
        synthetic_bundle(tmp_path, run_id="20240105T000000Z-0-x", workloads=WORKLOADS)
    )
    before = _listing(reports)
    reports.chmod(0o555)
    try:
        _read_everything(db, capsys)
        with pytest.raises(StoreError) as caught:
            HistoryStore(db).append_run(bundle)
        assert caught.value.where == str(db)
        assert _listing(reports) == before
    finally:
        reports.chmod(0o755)


# --------------------------------------------------------------------------- connections


@contextmanager
def _no_resource_warning() -> Iterator[None]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, [str(w.message) for w in leaks]


def test_no_use_of_the_store_leaves_a_connection_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.13 warns (ResourceWarning) of every connection the collector closes; on
    any version, every connection the store opened is closed when the call returns."""
    opened: list[sqlite3.Connection] = []
    connect = sqlite3.connect

    def tracked(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        opened.append(connect(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(sqlite3, "connect", tracked)
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    bundle = load_bundle(synthetic_bundle(bundles, workloads=WORKLOADS))
    db = tmp_path / "history.sqlite"
    not_a_store = tmp_path / "not-a-store.sqlite"
    not_a_store.write_bytes(b"garbage" * 1000)
    calibration = CalibrationRow(
        "cal", "fp", "fast", "w", "pyperf", "median", "s", "wall", 6, 0.01, 0.02, "2024"
    )
    with _no_resource_warning():
        for index in range(10):
            store = HistoryStore(db)
            store.append_run(bundle)
            store.append_calibration([dataclasses.replace(calibration, calibration_id=f"c{index}")])
            with pytest.raises(sqlite3.IntegrityError):  # rolled back, and closed
                store.append_calibration([calibration, calibration])
            store.latest_calibration("fp")
            store.load_run(bundle.manifest.run_id)
            queries.runs(store)
            queries.target_history(store, bundle.manifest.verdicts[0].target.name)
            store.integrity_check()
            last_good_bundle(db)
            for failing in (
                lambda: HistoryStore(db).load_run("no-such-run"),
                lambda: HistoryStore(not_a_store).append_run(bundle),
                lambda: queries.runs(HistoryStore(not_a_store)),
                lambda: HistoryStore(tmp_path / "missing.sqlite").query("SELECT 1"),
            ):
                with pytest.raises((BundleError, StoreError)):
                    failing()
    assert len(opened) > 100
    for connection in opened:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            connection.execute("SELECT 1")
