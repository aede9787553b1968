"""The evidence file (append-only JSONL of the evidence chain) and the review document.

Guarantees:

* :class:`EvidenceFile` writes one evidence record per committed gate, as it
  commits, as one whole line handed to the OS in one ``write`` loop on a file
  opened for appending; nothing is ever rewritten. A run killed at any moment
  leaves a file whose every complete line is a valid link of the chain (no
  ``fsync``: a power loss may lose the tail, never reorder it).
* :func:`verify_evidence_file` checks the chain from its first line and returns
  how many records verify; a torn last line (no newline: the write was cut) is
  not counted, anything else that does not verify raises
  :class:`~reference_impl.errors.EvidenceError` naming the first bad record.
* :func:`write_atomically` replaces a file by rename: a reader sees the old
  document or the new one, never a part. :func:`write_in_place` is today's
  rewrite (truncate, then write), kept for legacy mode.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reference_impl.errors import EvidenceError
from reference_impl.events import DEFAULT_KEY, EvidenceChain, EvidenceRecord, canonical_json, verify
from reference_impl.prp.outcomes import GateOutcome, OutcomeKind
from reference_impl.prp.profile import Severity

__all__ = [
    "EVIDENCE_PAYLOAD_VERSION",
    "EvidenceFile",
    "evidence_payload",
    "render_review",
    "verify_evidence_file",
    "write_atomically",
    "write_in_place",
]

# Schema of a gate's evidence payload (inside the chain's own record format).
# 1: schema, gate, position, kind, outcome, severity, reason, approval, batch,
#    blocked_by, deps, duration_s, profile (sha256 of the profile file).
EVIDENCE_PAYLOAD_VERSION = 1


def evidence_payload(
    outcome: GateOutcome, *, deps: Sequence[str], duration_s: float, profile_digest: str
) -> dict[str, Any]:
    """A gate's evidence: plain JSON built from deterministic fields only (no clock)."""
    return {
        "schema": EVIDENCE_PAYLOAD_VERSION,
        "gate": outcome.gate,
        "position": outcome.position,
        "kind": outcome.kind.value,
        "outcome": outcome.outcome.value,
        "severity": outcome.severity.value,
        "reason": None if outcome.reason is None else outcome.reason.value,
        "approval": None if outcome.approval is None else outcome.approval.value,
        "batch": outcome.batch,
        "blocked_by": list(outcome.blocked_by),
        "deps": list(deps),
        "duration_s": duration_s,
        "profile": profile_digest,
    }


class EvidenceFile:
    """An evidence chain mirrored, record by record, into an append-only JSONL file.

    Opening truncates: one file holds one run's chain. Use as a context manager.
    """

    def __init__(self, path: Path, key: bytes = DEFAULT_KEY) -> None:
        self.path = path
        self.chain = EvidenceChain(key)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)

    def append(self, payload: Mapping[str, Any]) -> EvidenceRecord:
        """Link ``payload`` to the chain and write its line before returning."""
        record = self.chain.append(payload)
        line = memoryview(canonical_json(record.as_json()) + b"\n")
        while line:
            written = os.write(self._fd, line)
            line = line[written:]
        return record

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> EvidenceFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def verify_evidence_file(path: Path, key: bytes = DEFAULT_KEY) -> int:
    """How many records of ``path`` verify, from the first (see the module's guarantees)."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    # The last element is b"" after a final newline, or a torn line without one.
    complete = lines[:-1]
    records = []
    for index, line in enumerate(complete):
        try:
            records.append(EvidenceRecord.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            raise EvidenceError(index, f"not an evidence record ({exc})") from exc
    verify(records, key)
    return len(records)


def render_review(
    *,
    run_id: str,
    profile_name: str,
    profile_digest: str,
    outcomes: Sequence[GateOutcome],
    total: int,
    evidence_name: str,
    evidence_digest: str,
) -> str:
    """The review document: deterministic markdown (no times), complete when all gates are in."""
    counts = {kind: 0 for kind in OutcomeKind}
    for outcome in outcomes:
        counts[outcome.outcome] += 1
    state = "complete" if len(outcomes) == total else f"in progress ({len(outcomes)}/{total})"
    lines = [
        f"# PRP review: {run_id}",
        "",
        f"- status: {state}",
        f"- profile: {profile_name} (sha256 {profile_digest[:16]})",
        f"- gates: {counts[OutcomeKind.COMMITTED]} committed, "
        f"{counts[OutcomeKind.FAILED]} failed, {counts[OutcomeKind.SKIPPED]} skipped",
        f"- evidence: {evidence_name}, {len(outcomes)} records, head {evidence_digest}",
        "",
        "| # | gate | kind | outcome | detail |",
        "|---|------|------|---------|--------|",
    ]
    for outcome in outcomes:
        detail = []
        if outcome.reason is not None:
            detail.append(outcome.reason.value)
        if outcome.approval is not None:
            detail.append(outcome.approval.value)
        if outcome.batch is not None:
            detail.append(f"batch {outcome.batch}")
        if outcome.blocked_by:
            detail.append("blocked by " + ", ".join(outcome.blocked_by))
        if outcome.outcome is OutcomeKind.FAILED and outcome.severity is Severity.ADVISORY:
            detail.append("advisory")
        lines.append(
            f"| {outcome.position + 1} | {outcome.gate} | {outcome.kind.value} | "
            f"{outcome.outcome.value} | {'; '.join(detail)} |"
        )
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` by rename from a temporary file in the same directory."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_in_place(path: Path, text: str) -> None:
    """Truncate and rewrite ``path`` (today's behaviour: a reader may see a partial file)."""
    path.write_text(text, encoding="utf-8")
