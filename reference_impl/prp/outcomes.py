"""What a gate run yields: its outcome (deterministic), its timing and a run's status.

Guarantees: every record here is frozen. A :class:`GateOutcome` holds only what
follows from the gate list and the profile (never a time), so that outcomes,
events and evidence are identical whatever the concurrency; times live apart,
in :class:`GateTiming`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from reference_impl.prp.approvals import ApprovalVerdict
from reference_impl.prp.gates import GateKind
from reference_impl.prp.profile import Severity

__all__ = ["FailureReason", "GateOutcome", "GateTiming", "OutcomeKind", "SpoolStatus"]


class OutcomeKind(enum.Enum):
    """A gate's outcome; also the suffix of its lifecycle event (``gate.committed``)."""

    COMMITTED = "committed"
    FAILED = "failed"
    SKIPPED = "skipped"


class FailureReason(enum.Enum):
    """Why a gate failed."""

    FAILED = "failed"
    TIMED_OUT = "timed_out"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class GateOutcome:
    """A gate's committed outcome: a function of the gate list and the profile only.

    ``batch`` is the planned approval batch, set for human gates whose reviewer
    decided; ``blocked_by`` names the dependencies that made a gate skip.
    """

    gate: str
    position: int
    kind: GateKind
    outcome: OutcomeKind
    severity: Severity
    reason: FailureReason | None = None
    approval: ApprovalVerdict | None = None
    batch: int | None = None
    blocked_by: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GateTiming:
    """When (loop seconds since the run started) one gate started, finished and committed."""

    gate: str
    started_at_s: float | None
    work_done_at_s: float | None
    committed_at_s: float

    @property
    def duration_s(self) -> float | None:
        """The gate's work time, or None for a gate that never ran."""
        if self.started_at_s is None or self.work_done_at_s is None:
            return None
        return self.work_done_at_s - self.started_at_s


@dataclass(frozen=True, slots=True)
class SpoolStatus:
    """A run's progress at one moment: what MCP status tools expose.

    ``active_gates`` are doing their work, ``awaiting_approval`` wait for a
    reviewer; ``committed_gates`` passed and committed, in commit order;
    ``settled`` counts every committed outcome (passed, failed or skipped);
    ``queue_depth`` counts gates waiting for a dependency or a slot.
    """

    running: bool
    active_gates: tuple[str, ...]
    awaiting_approval: tuple[str, ...]
    committed_gates: tuple[str, ...]
    settled: int
    total: int
    queue_depth: int
    approval_queue_depth: int
    concurrency: int
