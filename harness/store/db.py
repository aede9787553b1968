"""The history store: every run in ``reports/history.sqlite`` (or on a PostgreSQL server),
self-contained.

Two backends behind this one class (:mod:`harness.store.backend`): a SQLite file,
the embedded default, and a PostgreSQL server named by a ``postgresql://`` URL
(:mod:`harness.store.postgres`), for a team whose runners share one history. The
same tables, migrations and guarantees on both; what is said below of SQLite's
mechanisms (WAL, ``BEGIN IMMEDIATE``, ``busy_timeout``) the server does with a
transaction-scoped advisory lock and its own MVCC.

Tables (:mod:`harness.store.schema`): ``runs`` (one row a run), ``workload_stats``
(per run, workload and metric: n, p50, p95, p99, median, mean; a workload's own
pyperf values appear as metric ``pyperf``), ``verdicts`` (per run and target),
``calibrations`` (per A/A calibration, workload, metric and statistic: the
round-to-round noise and minimum detectable effect, with the machine
fingerprint), and what makes a run rebuildable without its bundle directory:
``run_manifests`` (the whole manifest, compressed msgspec JSON), ``sample_series`` and
``pyperf_series`` (every per-round value, :mod:`harness.store.rounds`).

Guarantees:

* :meth:`HistoryStore.append_run` writes a run in ONE transaction
  (``BEGIN IMMEDIATE``): a reader or a crash sees all of the run or none of it.
* Several processes may append at once: the database is in WAL mode, writers
  wait for each other (``busy_timeout``) instead of failing, and the schema is
  created inside the same kind of transaction, so two first writers race safely.
* Appending a run already stored changes nothing (and returns False).
* Self-contained: :meth:`HistoryStore.load_run` rebuilds a run's bundle from the
  store alone (a CI runner that kept only ``history.sqlite`` still compares).
  Runs stored before schema 3 have no values, and say so.
* A store of an older schema is migrated in the first write transaction; reads of
  an older store work unchanged. Reads never write (see
  :mod:`harness.store.connection`): a read-only reports directory reads.
* A file that is not a history store, one with a corrupt page, one of a newer
  schema, a database still locked after the timeout, or a server that cannot be
  reached or refuses the credentials raises :class:`~harness.store.schema.StoreError`
  naming the file (the URL without its password); nothing stored is changed.
  Every connection is closed when its use ends.

Why one module: :class:`HistoryStore` is the store's one public face, the class the rest of
the harness opens, and a class does not split across modules. The mechanics already live
apart (backend, connection, schema, rows, rounds, queries); what stays is its methods and the
one mapping of a bundle onto its rows (``_run_rows``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.bundle.files import Bundle, DeterminismStatus, load_bundle
from harness.errors import BundleError
from harness.store import rounds
from harness.store.backend import Backend, open_backend
from harness.store.location import Location
from harness.store.rounds import workload_stats
from harness.store.rows import (
    CALIBRATION_COLUMNS,
    PYPERF_COLUMNS,
    SAMPLE_COLUMNS,
    RunRows,
    insert,
    write_run,
)
from harness.store.schema import SCHEMA_VERSION, VALUES_SINCE, StoreError

__all__ = [
    "HISTORY_FILE",
    "SCHEMA_VERSION",
    "CalibrationRow",
    "HistoryStore",
    "StoreError",
    "StoredRun",
    "workload_stats",
]

HISTORY_FILE = "history.sqlite"


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


@dataclass(frozen=True, slots=True)
class StoredRun:
    """A stored run: where its data is (its bundle directory, which may be gone; its values).

    ``stored_schema`` is the store schema the run was written under; below
    :data:`~harness.store.schema.VALUES_SINCE` the store has no values of it.
    """

    run_id: str
    bundle_path: Path
    fingerprint: str
    stored_schema: int
    git_sha: str = ""  # "" when the run did not record its commit

    @property
    def values_stored(self) -> bool:
        """Whether :meth:`HistoryStore.load_run` can rebuild the run from the store."""
        return self.stored_schema >= VALUES_SINCE

    @property
    def loadable(self) -> bool:
        """Whether its bundle directory exists or the store has its values."""
        return self.values_stored or self.bundle_path.is_dir()


class HistoryStore:
    """The history store at ``location``: a SQLite file (created, with its schema, on
    first write) or a ``postgresql://`` URL (its tables created on first write)."""

    def __init__(self, location: Location) -> None:
        self.backend: Backend = open_backend(location)

    @property
    def location(self) -> Location:
        """The SQLite file, or the server's URL as given (print :attr:`where` instead)."""
        return self.backend.location

    @property
    def where(self) -> str:
        """The store as it may be printed: the file, or the URL without its password."""
        return self.backend.where

    @property
    def path(self) -> Path:
        """The SQLite file (a server store has none: :class:`StoreError`)."""
        if not isinstance(self.location, Path):
            raise StoreError(
                "a PostgreSQL history store has no file", where=self.where, expected="a file"
            )
        return self.location

    def exists(self) -> bool:
        """Whether there is a store to read: the SQLite file is there; a server always."""
        return self.backend.exists()

    def append_run(self, bundle: Bundle) -> bool:
        """Store ``bundle``'s run, statistics, verdicts, manifest and values in one transaction.

        False when the run was already stored (nothing is changed then).
        """
        rows = _run_rows(bundle)
        with self.backend.writing() as session:
            return write_run(session, rows)

    def stored_run(self, run_id: str) -> StoredRun | None:
        """Where run ``run_id``'s data is; None when no run of that id is stored."""
        found = self._stored_runs("WHERE run_id = ?", (run_id,))
        return found[0] if found else None

    def good_runs(self, *, exclude: str = "") -> list[StoredRun]:
        """The runs that passed every target with a deterministic replay, newest first."""
        return self._stored_runs(
            "WHERE passed = 1 AND determinism = ? AND run_id != ? "
            "ORDER BY started_utc DESC, run_id DESC",
            (DeterminismStatus.DETERMINISTIC.value, exclude),
        )

    def runs_of_commit(self, git_sha: str, *, exclude: str = "") -> list[StoredRun]:
        """Every stored run of commit ``git_sha`` (passed or not), newest first."""
        return self._stored_runs(
            "WHERE git_sha = ? AND run_id != ? ORDER BY started_utc DESC, run_id DESC",
            (git_sha, exclude),
        )

    def last_good_run(self, *, exclude: str = "") -> StoredRun | None:
        """The newest of :meth:`good_runs` (None when there is none, or no store)."""
        if not self.exists():
            return None
        good = self.good_runs(exclude=exclude)
        return good[0] if good else None

    def _stored_runs(self, where: str, params: Sequence[Any]) -> list[StoredRun]:
        with self.backend.reading() as (session, version):
            if version is None:
                return []
            stored = "stored_schema" if version >= VALUES_SINCE else str(version)
            rows = session.all(
                f"SELECT run_id, bundle_path, fingerprint, {stored}, git_sha FROM runs {where}",
                params,
            )
        return [
            StoredRun(str(r[0]), Path(str(r[1])), str(r[2]), int(r[3]), str(r[4] or ""))
            for r in rows
        ]

    def run_bundle(self, run: StoredRun) -> Bundle:
        """``run``'s bundle: its directory while that exists, else rebuilt by :meth:`load_run`."""
        return (
            load_bundle(run.bundle_path) if run.bundle_path.is_dir() else self.load_run(run.run_id)
        )

    def load_run(self, run_id: str) -> Bundle:
        """Run ``run_id``'s bundle rebuilt from the store alone (see :mod:`harness.store.rounds`).

        Its ``path`` is the stored bundle path, which may no longer exist; it has
        no OpenTelemetry points and no profiles. Raises
        :class:`~harness.errors.BundleError` when no such run is stored, or when
        it was stored without its values (before schema 3).
        """
        where = f"{self.where}: run {run_id}"
        run = self.stored_run(run_id)
        if run is None:
            raise BundleError("no stored run of this id", where=where)
        if not run.values_stored:
            directory = (
                f"load its bundle directory {run.bundle_path}"
                if run.bundle_path.is_dir()
                else "its bundle directory is gone"
            )
            raise BundleError(
                f"run {run_id} was stored without its values (schema {run.stored_schema}); "
                + directory,
                where=self.where,
                expected=f"a run stored at schema {VALUES_SINCE} or later",
            )
        with self.backend.reading() as (session, _):
            manifest = session.one("SELECT manifest FROM run_manifests WHERE run_id = ?", (run_id,))
            sample_rows = session.all(
                f"SELECT {SAMPLE_COLUMNS} FROM sample_series WHERE run_id = ?", (run_id,)
            )
            pyperf_rows = session.all(
                f"SELECT {PYPERF_COLUMNS} FROM pyperf_series WHERE run_id = ? ORDER BY position",
                (run_id,),
            )
        if manifest is None:
            raise BundleError("no stored manifest of this run", where=where)
        return rounds.rebuild(
            run.bundle_path,
            bytes(manifest[0]),
            [rounds.SampleSeries(*row[1:]) for row in sample_rows],
            [rounds.PyperfSeries(*row[1:]) for row in pyperf_rows],
            where,
        )

    def append_calibration(self, rows: Sequence[CalibrationRow]) -> None:
        """Store one calibration's rows in one transaction (all or none)."""
        with self.backend.writing() as session:
            session.run_many(
                insert("calibrations", CALIBRATION_COLUMNS),
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
        if not self.exists():
            return ()
        with self.backend.reading() as (session, version):
            if version is None or version < 2:
                return ()
            rows = session.all(
                f"""
                SELECT {CALIBRATION_COLUMNS} FROM calibrations WHERE calibration_id = (
                    SELECT calibration_id FROM calibrations WHERE fingerprint = ?
                    ORDER BY created DESC, calibration_id DESC LIMIT 1)
                ORDER BY workload, metric, statistic
                """,
                (fingerprint,),
            )
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

        ``sql`` is written as for SQLite (``?`` placeholders): a PostgreSQL store
        gets it translated (:mod:`harness.store.dialect`). Raises
        :class:`~harness.store.schema.StoreError` when there is no store at
        :attr:`location` (a query never creates one) or it has no history tables.
        """
        with self.backend.reading() as (session, version):
            if version is None:
                raise StoreError(
                    "no history tables in the store",
                    where=self.where,
                    expected="a history store written by `harness run`",
                )
            return session.frame(sql, params)

    def stored_version(self) -> int | None:
        """The store's schema version; None when there is no store or no tables yet.

        Opens the store to read it (a server: connects with its credentials), so
        an unusable store, one of a newer schema or a server that cannot be
        reached raises :class:`StoreError` here. Nothing is written.
        """
        if not self.exists():
            return None
        with self.backend.reading() as (_, version):
            return version

    def schema_version(self) -> int | None:
        """The schema version the store records (None: no version row yet)."""
        frame = self.query("SELECT max(version) AS version FROM schema_version")
        try:
            return int(frame["version"].iloc[0])
        except (IndexError, TypeError, ValueError):
            return None  # NULL (read as None or NaN): the first append writes it

    def integrity_check(self) -> str:
        """``"ok"``, or the store's problems on one short line (SQLite's
        ``PRAGMA integrity_check``; on a server, the store's own promises)."""
        return self.backend.integrity_check()


def _run_rows(bundle: Bundle) -> RunRows:
    """``bundle``'s run as the rows :func:`~harness.store.rows.write_run` inserts."""
    manifest = bundle.manifest
    environment = manifest.environment
    run_id = manifest.run_id
    stats = workload_stats((*bundle.samples, *bundle.pyperf_samples()))
    return RunRows(
        run=(
            run_id,
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
            SCHEMA_VERSION,
        ),
        stats=[(run_id, *row) for row in stats],
        verdicts=[
            (
                run_id,
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
        manifest=(run_id, rounds.pack_manifest(manifest)),
        samples=[
            (run_id, s.workload, s.metric, s.unit, s.clock, s.layout, s.packed_values)
            for s in rounds.sample_series(bundle.samples)
        ],
        pyperf=[
            (run_id, p.position, p.workload, p.benchmark, p.unit, p.layout, p.packed_values)
            for p in rounds.pyperf_series(bundle)
        ],
    )
