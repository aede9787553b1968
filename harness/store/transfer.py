"""Copying one history store into another (``harness history import``).

A team moves each runner's ``history.sqlite`` into the shared PostgreSQL server
(or a server's history into a file: any two locations will do).

Guarantees:

* Every run is copied whole, with its rows in every table (``runs``,
  ``workload_stats``, ``verdicts``, ``run_manifests``, ``sample_series``,
  ``pyperf_series``) as stored (``recorded_utc`` and ``stored_schema`` kept), each
  run in its own write transaction: an interrupted import leaves whole runs only,
  and running it again finishes it.
* A run already in the destination (same run id) is left as it is and counted as
  present; a calibration already there (same calibration id) likewise. Running
  the same import twice changes nothing the second time.
* The source is only read (never created or migrated); a source of an older
  schema is copied as the migration would have left it; one of a newer schema is
  refused before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import Any

from harness.store.db import HistoryStore
from harness.store.rows import CALIBRATION_COLUMNS, insert, read_run, stored_run_ids, write_run
from harness.store.session import Session

__all__ = ["CopyResult", "copy_history"]


@dataclass(frozen=True, slots=True)
class CopyResult:
    """What an import did: runs and calibrations copied, and those already present."""

    runs_copied: int
    runs_present: int
    calibrations_copied: int
    calibrations_present: int

    def describe(self) -> str:
        """The one line ``harness history import`` prints."""
        return (
            f"{self.runs_copied} runs copied, {self.runs_present} already present; "
            f"{self.calibrations_copied} calibrations copied, "
            f"{self.calibrations_present} already present"
        )


_CALIBRATION_IDS = "SELECT DISTINCT calibration_id FROM calibrations"


def _calibration_ids(store: HistoryStore) -> set[str]:
    if not store.exists():
        return set()
    with store.backend.reading() as (session, version):
        if version is None or version < 2:
            return set()
        return {str(row[0]) for row in session.all(_CALIBRATION_IDS)}


def _calibrations(session: Session, version: int | None) -> list[tuple[Any, ...]]:
    if version is None or version < 2:
        return []
    return session.all(
        f"SELECT {CALIBRATION_COLUMNS} FROM calibrations ORDER BY calibration_id, workload, "
        "metric, statistic"
    )


def copy_history(source: HistoryStore, destination: HistoryStore) -> CopyResult:
    """Copy every run and calibration of ``source`` that ``destination`` lacks."""
    present: set[str] = set()
    if destination.exists():
        with destination.backend.reading() as (session, version):
            present = set(stored_run_ids(session, version))
    known_calibrations = _calibration_ids(destination)
    copied = already = 0
    # One read of the source (one snapshot) while each run is written in its own
    # transaction: a run is copied whole or not at all.
    with source.backend.reading() as (session, version):
        for run_id in stored_run_ids(session, version):
            if run_id in present:
                already += 1
                continue
            assert version is not None  # it has runs
            rows = read_run(session, version, run_id)
            with destination.backend.writing() as target:
                stored = write_run(target, rows)
            copied, already = (copied + 1, already) if stored else (copied, already + 1)
        calibrations = _calibrations(session, version)
    groups = [(cid, list(rows)) for cid, rows in groupby(calibrations, key=lambda row: row[0])]
    missing = [(cid, rows) for cid, rows in groups if cid not in known_calibrations]
    if missing:
        with destination.backend.writing() as target:
            # Re-checked inside the write: a concurrent import may have stored some.
            ids = {str(row[0]) for row in target.all(_CALIBRATION_IDS)}
            missing = [(cid, rows) for cid, rows in missing if cid not in ids]
            target.run_many(
                insert("calibrations", CALIBRATION_COLUMNS),
                [row for _, rows in missing for row in rows],
            )
    return CopyResult(copied, already, len(missing), len(groups) - len(missing))
