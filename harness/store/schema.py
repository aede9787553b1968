"""The history store's tables, its schema version and the migrations between versions.

A store is created by running the first version's tables and then every
migration in order, so a new store and a migrated one are the same schema.
Everything here runs inside the caller's write transaction
(:meth:`harness.store.db.HistoryStore.append_run`): a migration is all or nothing.
The tables are written once, in SQLite's words; a PostgreSQL store gets the same
definitions translated (:mod:`harness.store.dialect`), so both backends have one
schema and one migration history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.errors import EnvironmentRefused

if TYPE_CHECKING:
    from harness.store.session import Session

__all__ = [
    "SCHEMA_VERSION",
    "VALUES_SINCE",
    "StoreError",
    "ensure_schema",
    "refuse_newer",
    "store_version",
]

# Schema history:
# 1: schema_version, runs, workload_stats, verdicts.
# 2: calibrations (harness calibrate).
# 3: the store is self-contained: run_manifests (each run's whole manifest),
#    sample_series and pyperf_series (every per-round value of the run), and
#    runs.stored_schema (the schema a run was stored under; runs stored before 3
#    have no values, and their rows say so).
# Older stores are migrated in the first write transaction; reads of an older
# store work unchanged. A store of a newer schema is refused, read or write.
SCHEMA_VERSION = 3
# The first schema that keeps a run's per-round values and manifest.
VALUES_SINCE = 3


class StoreError(EnvironmentRefused):
    """The history store cannot be used: not a database, corrupt, of a newer schema, locked,
    a server that cannot be reached or refuses the credentials.

    ``where`` is the store's path, or its URL without the password. Nothing stored
    has been changed.
    """


_TABLES_1 = """
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
"""

# Migration to version k: its statements, ``{previous}`` replaced by the version
# migrated from (the value old rows get for a new column that says how they were stored).
_MIGRATIONS: dict[int, str] = {
    2: """
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
""",
    3: """
ALTER TABLE runs ADD COLUMN stored_schema INTEGER NOT NULL DEFAULT {previous};
CREATE TABLE run_manifests (
    run_id TEXT PRIMARY KEY REFERENCES runs(run_id),
    manifest BLOB NOT NULL
);
CREATE TABLE sample_series (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    workload TEXT NOT NULL,
    metric TEXT NOT NULL,
    unit TEXT NOT NULL,
    clock TEXT NOT NULL,
    layout BLOB NOT NULL,
    packed_values BLOB NOT NULL,
    PRIMARY KEY (run_id, workload, metric, unit, clock)
);
CREATE TABLE pyperf_series (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    position INTEGER NOT NULL,
    workload TEXT NOT NULL,
    benchmark TEXT NOT NULL,
    unit TEXT NOT NULL,
    layout BLOB NOT NULL,
    packed_values BLOB NOT NULL,
    PRIMARY KEY (run_id, position)
);
""",
}


def _statements(script: str) -> list[str]:
    return [statement for statement in script.split(";") if statement.strip()]


def store_version(session: Session) -> int | None:
    """The store's schema version; None for an empty database (no history tables yet)."""
    if not session.table_exists("schema_version"):
        return None
    row = session.one("SELECT max(version) FROM schema_version")
    return None if row is None or row[0] is None else int(row[0])


def refuse_newer(version: int | None, where: str) -> None:
    """Raise :class:`StoreError` when ``version`` is newer than this code's schema."""
    if version is not None and version > SCHEMA_VERSION:
        raise StoreError(
            f"history store of schema version {version}, written by a newer harness",
            where=where,
            expected=f"schema version {SCHEMA_VERSION} or older",
        )


def ensure_schema(session: Session, where: str) -> None:
    """Create the schema, or migrate an older one, inside the caller's transaction."""
    version = store_version(session)
    refuse_newer(version, where)
    if version == SCHEMA_VERSION:
        return
    for statement in _statements(_TABLES_1):
        session.define(statement)
    previous = 1 if version is None else version
    for target in range(previous + 1, SCHEMA_VERSION + 1):
        for statement in _statements(_MIGRATIONS[target].format(previous=previous)):
            session.define(statement)
    if version is None:
        session.run("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
    else:
        session.run("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
