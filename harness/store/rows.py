"""A run as the rows of the store's tables: their columns, writing them, reading them back.

One run is a ``runs`` row and its rows in ``workload_stats``, ``verdicts``,
``run_manifests``, ``sample_series`` and ``pyperf_series`` (:class:`RunRows`).
:meth:`harness.store.db.HistoryStore.append_run` makes them from a bundle;
:mod:`harness.store.transfer` reads them from one store to copy them into
another. Both write them with :func:`write_run`, the one place a run is inserted.

Guarantees: :func:`write_run` runs inside the caller's write transaction and
inserts all of a run's rows or, when a run of that id is already stored, none
(it says so). :func:`read_run` reads a store of any schema this code knows: a run
of an older store (no ``stored_schema`` column, no values) comes back as the
migration would have left it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.store.schema import VALUES_SINCE
from harness.store.session import Session

__all__ = [
    "CALIBRATION_COLUMNS",
    "PYPERF_COLUMNS",
    "RUN_COLUMNS",
    "SAMPLE_COLUMNS",
    "STATS_COLUMNS",
    "VERDICT_COLUMNS",
    "RunRows",
    "insert",
    "read_run",
    "stored_run_ids",
    "write_run",
]

RUN_COLUMNS = (
    "run_id, started_utc, finished_utc, profile, git_sha, branch, dirty, fingerprint, "
    "cpu_model, python_version, workloads, targets_total, targets_passed, determinism, "
    "passed, bundle_path, recorded_utc, stored_schema"
)
VERDICT_COLUMNS = (
    "run_id, target, workload, metric, statistic, clock, unit, direction, bound, value, "
    "spread_low, spread_high, spread_method, margin, outcome, n, rounds"
)
STATS_COLUMNS = "run_id, workload, metric, unit, clock, n, p50, p95, p99, median, mean"
MANIFEST_COLUMNS = "run_id, manifest"
SAMPLE_COLUMNS = "run_id, workload, metric, unit, clock, layout, packed_values"
PYPERF_COLUMNS = "run_id, position, workload, benchmark, unit, layout, packed_values"
CALIBRATION_COLUMNS = (
    "calibration_id, fingerprint, profile, workload, metric, statistic, unit, clock, "
    "rounds, noise, mde, created"
)

Row = tuple[Any, ...]


def insert(table: str, columns: str) -> str:
    """``INSERT INTO table (columns) VALUES (?, ...)``."""
    count = len(columns.split(","))
    return f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * count)})"


@dataclass(frozen=True, slots=True)
class RunRows:
    """Every row of one run, each tuple in its table's column order (run_id first)."""

    run: Row
    stats: Sequence[Row] = ()
    verdicts: Sequence[Row] = ()
    manifest: Row | None = None  # runs stored before schema 3 have none
    samples: Sequence[Row] = ()
    pyperf: Sequence[Row] = ()

    @property
    def run_id(self) -> str:
        """The run's id."""
        return str(self.run[0])


def write_run(session: Session, rows: RunRows) -> bool:
    """Insert ``rows`` in the caller's transaction; False (nothing written) when stored."""
    if session.one("SELECT 1 FROM runs WHERE run_id = ?", (rows.run_id,)) is not None:
        return False
    session.run(insert("runs", RUN_COLUMNS), rows.run)
    session.run_many(insert("workload_stats", STATS_COLUMNS), rows.stats)
    session.run_many(insert("verdicts", VERDICT_COLUMNS), rows.verdicts)
    if rows.manifest is not None:
        session.run(insert("run_manifests", MANIFEST_COLUMNS), rows.manifest)
    session.run_many(insert("sample_series", SAMPLE_COLUMNS), rows.samples)
    session.run_many(insert("pyperf_series", PYPERF_COLUMNS), rows.pyperf)
    return True


def stored_run_ids(session: Session, version: int | None) -> list[str]:
    """Every stored run's id, oldest first (none in a store without tables)."""
    if version is None:
        return []
    return [
        str(row[0]) for row in session.all("SELECT run_id FROM runs ORDER BY started_utc, run_id")
    ]


def _bytes(row: Row) -> Row:
    """``row`` with its binary values as ``bytes`` (a driver may give memoryview)."""
    return tuple(bytes(value) if isinstance(value, memoryview) else value for value in row)


def read_run(session: Session, version: int, run_id: str) -> RunRows:
    """The rows of run ``run_id`` (stored) in a store of schema ``version``."""
    run_columns = RUN_COLUMNS
    if version < VALUES_SINCE:  # stored before the column: its value is the store's schema
        run_columns = RUN_COLUMNS.replace("stored_schema", f"{int(version)} AS stored_schema")
    (run,) = session.all(f"SELECT {run_columns} FROM runs WHERE run_id = ?", (run_id,))

    def rows(table: str, columns: str, order: str) -> list[Row]:
        query = f"SELECT {columns} FROM {table} WHERE run_id = ? ORDER BY {order}"
        return [_bytes(row) for row in session.all(query, (run_id,))]

    stats = rows("workload_stats", STATS_COLUMNS, "workload, metric")
    verdicts = rows("verdicts", VERDICT_COLUMNS, "target")
    if version < VALUES_SINCE:
        return RunRows(run, stats, verdicts)
    manifests = rows("run_manifests", MANIFEST_COLUMNS, "run_id")
    return RunRows(
        run,
        stats,
        verdicts,
        manifests[0] if manifests else None,
        rows("sample_series", SAMPLE_COLUMNS, "workload, metric, unit, clock"),
        rows("pyperf_series", PYPERF_COLUMNS, "position"),
    )
