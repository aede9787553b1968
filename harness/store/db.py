"""The history store: every run's summary in ``reports/history.sqlite``.

Tables: ``schema_version`` (one row), ``runs`` (one row a run), ``workload_stats``
(per run, workload and metric: n, p50, p95, p99, median, mean; a workload's own
pyperf values appear as metric ``pyperf``), ``verdicts`` (per run and target)
and ``calibrations`` (per A/A calibration, workload, metric and statistic: the
round-to-round noise and minimum detectable effect, with the machine fingerprint).

Guarantees:

* :meth:`HistoryStore.append_run` writes a run in ONE transaction
  (``BEGIN IMMEDIATE``): a reader or a crash sees all of the run or none of it.
* Several processes may append at once: the database is in WAL mode, writers
  wait for each other (``busy_timeout``) instead of failing, and the schema is
  created inside the same kind of transaction, so two first writers race safely.
* Appending a run already stored changes nothing (and returns False).
* A store of an older schema is migrated in the first write transaction (1 -> 2
  adds the ``calibrations`` table); reads of an older store work unchanged.
* A file that is not a history store, one of a newer schema, or a database
  still locked after the timeout raises
  :class:`~harness.errors.EnvironmentRefused` naming the file; nothing stored is
  changed.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.bundle.files import Bundle
from harness.bundle.verdicts import (
    Statistic,
    statistic_of,
)
from harness.errors import EnvironmentRefused
from workloads.samples import MetricSamples

__all__ = ["HISTORY_FILE", "SCHEMA_VERSION", "CalibrationRow", "HistoryStore", "workload_stats"]

HISTORY_FILE = "history.sqlite"
# Schema history:
# 1: schema_version, runs, workload_stats, verdicts.
# 2: calibrations (harness calibrate); a store of version 1 is migrated on write.
SCHEMA_VERSION = 2
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
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
# Versions this code migrates from (the schema above is created with IF NOT EXISTS,
# so migrating is creating what is new, then recording the version).
_MIGRATABLE = {1}


@dataclass(frozen=True, slots=True)
class CalibrationRow:
    """One row of an A/A calibration (``harness calibrate``).

    ``noise`` is the standard deviation of one round's log ratio (A against A),
    ``mde`` the relative minimum detectable effect with ``rounds`` rounds
    (``inf`` when unreachable; stored as NULL, read back as ``inf``).
    """

    calibration_id: str
    fingerprint: str
    profile: str
    workload: str
    metric: str
    statistic: str
    unit: str
    clock: str
    rounds: int
    noise: float
    mde: float
    created: str


def workload_stats(samples: Iterable[MetricSamples]) -> list[tuple[Any, ...]]:
    """Per (workload, metric): workload, metric, unit, clock, n, p50, p95, p99, median, mean."""
    grouped: dict[tuple[str, str], tuple[str, str, list[float]]] = {}
    for sample in samples:
        key = (sample.workload, sample.metric)
        grouped.setdefault(key, (sample.unit, sample.clock, []))[2].extend(sample.values)
    rows: list[tuple[Any, ...]] = []
    for (workload, metric), (unit, clock, values) in sorted(grouped.items()):
        if not values:
            continue
        array = np.asarray(values, dtype=float)
        stats = [
            statistic_of(array, s)
            for s in (Statistic.P50, Statistic.P95, Statistic.P99, Statistic.MEDIAN, Statistic.MEAN)
        ]
        rows.append((workload, metric, unit, clock, len(values), *stats))
    return rows


def _journal_mode_wal(connection: sqlite3.Connection) -> None:
    """Switch to WAL, waiting (bounded) for a concurrent first writer.

    SQLite does not call its busy handler for a journal-mode change: two
    processes creating the store at once can see "database is locked" at once.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


@dataclass(frozen=True, slots=True)
class StoredRun:
    """A stored run's identity: its id, commit, machine fingerprint and bundle path."""

    run_id: str
    git_sha: str
    fingerprint: str
    bundle_path: str


class HistoryStore:
    """The history database at ``path`` (created, with its schema, on first write)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise EnvironmentRefused(
                f"cannot open the history store: {exc}", where=str(self.path)
            ) from None
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            _journal_mode_wal(connection)
            connection.execute("PRAGMA foreign_keys = ON")
            yield connection
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
            raise  # a bug in what is stored, not an unusable store
        except sqlite3.DatabaseError as exc:
            raise EnvironmentRefused(
                f"history store unusable: {exc}",
                where=str(self.path),
                expected="a history store written by `harness run`",
            ) from None
        finally:
            connection.close()

    @contextmanager
    def _transaction(self, connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _ensure_schema(self, connection: sqlite3.Connection) -> None:
        """Create the schema (inside the caller's transaction) or check its version."""
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                connection.execute(statement)
        row = connection.execute("SELECT max(version) FROM schema_version").fetchone()
        version = row[0] if row else None
        if version is None:
            connection.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        elif version in _MIGRATABLE:
            connection.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        elif version != SCHEMA_VERSION:
            raise EnvironmentRefused(
                f"history store of schema version {version}",
                where=str(self.path),
                expected=f"schema version {SCHEMA_VERSION}",
            )

    def append_run(self, bundle: Bundle) -> bool:
        """Store ``bundle``'s run, statistics and verdicts in one transaction.

        False when the run was already stored (nothing is changed then).
        """
        manifest = bundle.manifest
        environment = manifest.environment
        stats = workload_stats((*bundle.samples, *bundle.pyperf_samples()))
        with self._connect() as connection, self._transaction(connection):
            self._ensure_schema(connection)
            exists = connection.execute(
                "SELECT 1 FROM runs WHERE run_id = ?", (manifest.run_id,)
            ).fetchone()
            if exists:
                return False
            connection.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    manifest.run_id,
                    manifest.started_utc,
                    manifest.finished_utc,
                    manifest.profile.name,
                    environment.git.sha,
                    environment.git.branch,
                    None if environment.git.dirty is None else int(environment.git.dirty),
                    environment.fingerprint_digest,
                    environment.cpu_model,
                    environment.python_version,
                    ",".join(w.name for w in manifest.workloads),
                    len(manifest.verdicts),
                    sum(v.passed for v in manifest.verdicts),
                    manifest.determinism.status.value,
                    int(manifest.passed),
                    str(bundle.path.resolve()),
                    datetime.now(UTC).isoformat(timespec="seconds"),
                ),
            )
            connection.executemany(
                "INSERT INTO workload_stats VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(manifest.run_id, *row) for row in stats],
            )
            connection.executemany(
                "INSERT INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        manifest.run_id,
                        v.target.name,
                        v.target.workload,
                        v.target.metric,
                        v.target.statistic.value,
                        v.target.clock.value,
                        v.target.unit.value,
                        v.target.direction.value,
                        v.bound,
                        v.value,
                        v.spread[0] if v.spread else None,
                        v.spread[1] if v.spread else None,
                        v.spread_method.value,
                        v.margin,
                        v.outcome.value,
                        v.n,
                        v.rounds,
                    )
                    for v in manifest.verdicts
                ],
            )
        return True

    def append_calibration(self, rows: Sequence[CalibrationRow]) -> None:
        """Store one calibration's rows in one transaction (all or none)."""
        with self._connect() as connection, self._transaction(connection):
            self._ensure_schema(connection)
            connection.executemany(
                "INSERT INTO calibrations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.calibration_id,
                        r.fingerprint,
                        r.profile,
                        r.workload,
                        r.metric,
                        r.statistic,
                        r.unit,
                        r.clock,
                        r.rounds,
                        r.noise if np.isfinite(r.noise) else None,
                        r.mde if np.isfinite(r.mde) else None,
                        r.created,
                    )
                    for r in rows
                ],
            )

    def latest_calibration(self, fingerprint: str) -> tuple[CalibrationRow, ...]:
        """The rows of the most recent calibration of ``fingerprint`` (empty when none).

        No store, or a store without calibrations (schema 1), has none: this
        never raises for their absence.
        """
        if not self.path.is_file():
            return ()
        with self._connect() as connection:
            table = connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'calibrations'"
            ).fetchone()
            if table is None:
                return ()
            rows = connection.execute(
                """
                SELECT * FROM calibrations WHERE calibration_id = (
                    SELECT calibration_id FROM calibrations WHERE fingerprint = ?
                    ORDER BY created DESC, calibration_id DESC LIMIT 1)
                ORDER BY workload, metric, statistic
                """,
                (fingerprint,),
            ).fetchall()
        return tuple(
            CalibrationRow(
                calibration_id=str(r[0]),
                fingerprint=str(r[1]),
                profile=str(r[2]),
                workload=str(r[3]),
                metric=str(r[4]),
                statistic=str(r[5]),
                unit=str(r[6]),
                clock=str(r[7]),
                rounds=int(r[8]),
                noise=float("inf") if r[9] is None else float(r[9]),
                mde=float("inf") if r[10] is None else float(r[10]),
                created=str(r[11]),
            )
            for r in rows
        )

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """The rows of a read-only query as a DataFrame.

        Raises :class:`~harness.errors.EnvironmentRefused` when there is no store
        at :attr:`path` (a query never creates one).
        """
        if not self.path.is_file():
            raise EnvironmentRefused(
                "no history store",
                where=str(self.path),
                expected="a history.sqlite written by `harness run`",
            )
        with self._connect() as connection:
            row = connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            ).fetchone()
            if row is None:
                raise EnvironmentRefused(
                    "no history tables in the file",
                    where=str(self.path),
                    expected="a history store written by `harness run`",
                )
            return pd.read_sql_query(sql, connection, params=list(params))

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` result (``"ok"`` when sound)."""
        with self._connect() as connection:
            return str(connection.execute("PRAGMA integrity_check").fetchone()[0])

    def last_good_run(self, *, exclude: str = "") -> StoredRun | None:
        """The newest run that passed every target with a deterministic replay, or None.

        ``exclude`` (tonight's run id) is never picked. What it ran on and where its
        bundle was: enough to re-measure its commit when its numbers cannot be used.
        """
        frame = self.query(
            """
            SELECT run_id, git_sha, fingerprint, bundle_path FROM runs
            WHERE passed = 1 AND determinism = 'deterministic' AND run_id != ?
            ORDER BY started_utc DESC, run_id DESC LIMIT 1
            """,
            (exclude,),
        )
        if frame.empty:
            return None
        row = frame.iloc[0]
        return StoredRun(
            run_id=str(row["run_id"]),
            git_sha=str(row["git_sha"] or ""),
            fingerprint=str(row["fingerprint"]),
            bundle_path=str(row["bundle_path"]),
        )
