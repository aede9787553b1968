"""The one place a run's manifest is built, for `harness run` and each side of an interleave."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from harness.bundle.environment import Environment
from harness.bundle.files import Determinism, Interleaving, Manifest, ProfileRecord, WorkloadRun
from harness.bundle.verdicts import Verdict
from harness.errors import TraceError
from workloads import registry
from workloads.trace import trace_id

__all__ = ["build_manifest", "file_sha256", "trace_ids"]


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (the targets file's, in a manifest)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def trace_ids(names: Sequence[str], checkout: Path | None = None) -> dict[str, str]:
    """The id of every trace the workloads ``names`` read.

    ``checkout`` None: this installation's shipped traces, each one required (a
    missing one is a :class:`~harness.errors.TraceError`); otherwise the traces of
    that checkout, those it has (an older commit may lack a newer trace).
    """
    ids: dict[str, str] = {}
    for name in names:
        for trace in registry.WORKLOADS[name].traces:
            if checkout is None:
                path = registry.trace_path(trace)
                if not path.is_file():
                    raise TraceError(
                        f"shipped trace {trace!r} of workload {name} is missing",
                        where=str(path),
                        expected="the trace file (record it with `harness record`)",
                    )
                ids[trace] = trace_id(path)
                continue
            for suffix in (".jsonl", ".jsonl.gz"):
                path = checkout / "workloads" / "traces" / f"{trace}{suffix}"
                if path.is_file():
                    ids[trace] = trace_id(path)
                    break
    return ids


def build_manifest(
    *,
    run_id: str,
    profile: registry.Profile,
    workloads: Sequence[WorkloadRun],
    started: datetime,
    finished: datetime,
    environment: Environment,
    traces: dict[str, str],
    targets_path: Path,
    verdicts: Sequence[Verdict],
    determinism: Determinism,
    otlp_endpoint: str | None = None,
    interleaving: Interleaving | None = None,
) -> Manifest:
    """A run's manifest: what it was, where it ran, what it concluded."""
    return Manifest(
        run_id=run_id,
        profile=ProfileRecord(
            name=profile.name,
            processes=profile.processes,
            values=profile.values,
            warmups=profile.warmups,
            min_time_s=profile.min_time_s,
        ),
        workloads=list(workloads),
        started_utc=started.isoformat(timespec="seconds"),
        finished_utc=finished.isoformat(timespec="seconds"),
        environment=environment,
        traces=traces,
        targets_file=str(targets_path),
        targets_sha256=file_sha256(targets_path),
        verdicts=list(verdicts),
        determinism=determinism,
        otlp_endpoint=otlp_endpoint,
        interleaving=interleaving,
    )
