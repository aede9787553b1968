"""Approvals: the asynchronous provider a gate that passed asks before it commits.

Guarantees:

* A provider answers every request it is given, for exactly those gates, and
  approves every *automatic* request; :func:`check_decisions` raises
  :class:`ApprovalProtocolError` otherwise.
* :class:`TraceApprovalProvider` replays the reviewers of a trace: a batch of
  human requests is reviewed together, in the longest of their recorded waits;
  the verdict of each is the one the trace recorded. It never consults a clock
  other than ``asyncio.sleep``, so on the virtual loop waits are trace seconds.

Who calls the provider, and how, is the spool's business: pooled mode approves
automated gates without asking (no wait) and sends human requests in batches;
legacy mode asks for every gate, one request at a time, as today's runner does.
"""

from __future__ import annotations

import asyncio
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from reference_impl.errors import ReferenceImplError
from reference_impl.prp.gates import GateKind

__all__ = [
    "ApprovalDecision",
    "ApprovalProtocolError",
    "ApprovalProvider",
    "ApprovalRequest",
    "ApprovalVerdict",
    "ApprovalWait",
    "TraceApprovalProvider",
    "check_decisions",
]


class ApprovalVerdict(enum.Enum):
    """How a gate that passed was approved (or not)."""

    AUTOMATIC = "automatic"
    APPROVED = "approved"
    REJECTED = "rejected"


class ApprovalProtocolError(ReferenceImplError):
    """A provider's answer does not match its requests; ``gate`` is the first at fault."""

    def __init__(self, gate: str, reason: str) -> None:
        super().__init__(f"approval of gate {gate!r}: {reason}")
        self.gate = gate
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """One gate asking for approval; ``batch`` is its planned batch (human gates).

    ``wait_s`` and ``recorded_approval`` are what the trace recorded of the
    reviewer; a provider of real people ignores them.
    """

    gate: str
    kind: GateKind
    batch: int | None
    wait_s: float
    recorded_approval: bool


@dataclass(frozen=True, slots=True)
class ApprovalDecision:
    """A provider's answer for one gate."""

    gate: str
    approved: bool


@dataclass(frozen=True, slots=True)
class ApprovalWait:
    """How long one gate waited for its approval, in loop seconds, and the verdict."""

    gate: str
    kind: GateKind
    verdict: ApprovalVerdict
    wait_s: float
    batch: int | None


class ApprovalProvider(Protocol):
    """Decides approvals; may take (loop) time, may be asked for several at once."""

    async def decide(self, requests: Sequence[ApprovalRequest]) -> Sequence[ApprovalDecision]:
        """One decision per request, for the same gates, in any order."""
        ...


def check_decisions(
    requests: Sequence[ApprovalRequest], decisions: Sequence[ApprovalDecision]
) -> dict[str, bool]:
    """The decisions by gate id, once checked against the requests (see the module)."""
    by_gate: dict[str, bool] = {}
    asked = {r.gate: r for r in requests}
    for decision in decisions:
        if decision.gate not in asked:
            raise ApprovalProtocolError(decision.gate, "decided but never requested")
        if decision.gate in by_gate:
            raise ApprovalProtocolError(decision.gate, "decided twice")
        if asked[decision.gate].kind is GateKind.AUTOMATED and not decision.approved:
            raise ApprovalProtocolError(decision.gate, "an automatic approval was rejected")
        by_gate[decision.gate] = decision.approved
    for request in requests:
        if request.gate not in by_gate:
            raise ApprovalProtocolError(request.gate, "requested but not decided")
    return by_gate


class TraceApprovalProvider:
    """Replays recorded reviewers (see the module's guarantees).

    ``automatic_check_s`` is the round trip of today's synchronous approval
    service, paid by every automatic request sent to it (legacy mode sends them).
    """

    def __init__(self, *, automatic_check_s: float = 2.0) -> None:
        if not math.isfinite(automatic_check_s) or automatic_check_s < 0:
            raise ValueError(f"automatic_check_s must be >= 0, got {automatic_check_s}")
        self.automatic_check_s = automatic_check_s
        self.calls = 0
        self.decided = 0

    async def decide(self, requests: Sequence[ApprovalRequest]) -> Sequence[ApprovalDecision]:
        """Wait as the recorded reviewers did, then return their recorded verdicts."""
        self.calls += 1
        delay = max((r.wait_s for r in requests if r.kind is GateKind.HUMAN), default=0.0)
        if any(r.kind is GateKind.AUTOMATED for r in requests):
            delay = max(delay, self.automatic_check_s)
        if delay > 0:
            await asyncio.sleep(delay)
        self.decided += len(requests)
        return [
            ApprovalDecision(r.gate, r.recorded_approval if r.kind is GateKind.HUMAN else True)
            for r in requests
        ]
