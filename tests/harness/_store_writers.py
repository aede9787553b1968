"""Writer processes of the store's concurrency tests (spawned: this module imports little,
so four of them start in seconds, not in the time of importing the judge and workloads)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from harness.bundle.files import Bundle, load_bundle
from harness.store.db import HistoryStore
from harness.store.location import Location

APPENDS_PER_WRITER = 20
SHARED_RUN = "shared"
STORED_SHARED = 10  # the exit status of the one writer that stored SHARED_RUN
KILLED_RUN = "killed"
STALL_S = 120.0


def renamed(bundle: Bundle, run_id: str, started_utc: str | None = None, **changes: Any) -> Bundle:
    """``bundle`` as another run (its manifest's id, start time and ``changes``)."""
    manifest = msgspec.structs.replace(
        bundle.manifest,
        run_id=run_id,
        started_utc=started_utc or bundle.manifest.started_utc,
        **changes,
    )
    return dataclasses.replace(bundle, manifest=manifest)


def append_many(location: Location, bundle_dir: str, writer: int) -> None:
    """Append the run every writer tries, then this writer's own, one transaction each.

    Exits :data:`STORED_SHARED` when this writer stored the shared run, else 0.
    """
    bundle = load_bundle(bundle_dir)
    store = HistoryStore(location)
    shared = store.append_run(renamed(bundle, SHARED_RUN))
    for index in range(APPENDS_PER_WRITER):
        assert store.append_run(renamed(bundle, f"w{writer}-{index:02d}"))
    raise SystemExit(STORED_SHARED if shared else 0)


def die_mid_append(location: Location, bundle_dir: str, inside: Any) -> None:
    """Append :data:`KILLED_RUN` but stall inside its transaction, after its runs,
    statistics and verdicts rows, until this process is killed (``inside`` is set then)."""
    from harness.store.session import Session

    run_many = Session.run_many

    def stall(self: Session, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        run_many(self, sql, rows)
        if "INSERT INTO verdicts" in sql:
            inside.set()
            time.sleep(STALL_S)  # the test kills this process long before

    Session.run_many = stall  # type: ignore[method-assign]
    HistoryStore(location).append_run(renamed(load_bundle(bundle_dir), KILLED_RUN))
