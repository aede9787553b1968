"""The gate spool: runs a planned gate DAG and commits every gate's outcome in plan order.

Guarantees (each one is a test in ``tests/reference_impl/prp``):

* **Commit order.** Every gate's outcome (committed, failed or skipped) is
  committed through ``on_commit`` in the plan's order, in both modes and at
  every concurrency; a gate at position *p* commits as soon as it and every
  gate before it have an outcome.
* **Dependencies.** A gate never starts before all its dependencies have
  committed. A gate with a dependency that was skipped, or that failed and is
  ``required`` by the profile, is skipped without running; which gates are
  skipped depends only on the gate list and the profile.
* **Outcomes** depend only on the gate list and the profile (work that fails,
  exceeds its timeout, or is rejected by its reviewer), never on timing, as
  long as a gate's timeout is not within the timing jitter of its duration.
* **Bound.** At most :attr:`AdaptiveConcurrency.current` gates do work at once
  (never more than the maximum); a gate waiting for its reviewer holds no slot.
* **Pooled approvals.** Automated gates are approved at once (wait 0); human
  gates are decided in their planned batches: a batch is sent when each of its
  other members has asked, has an outcome, or cannot start before an approval
  already asked for is decided, or when its first request has lingered
  ``approval_linger_s``. Legacy asks the provider for every gate, one at a time,
  and runs nothing else meanwhile.
* **Cancellation.** Cancelling :meth:`GateSpool.run` cancels and awaits every
  task it started; what was committed stays committed.
* :meth:`GateSpool.status` is synchronous: it never waits for a gate.

Why one module: it is one state machine. Every step reads and moves the private per-gate
state of :class:`GateSpool` (states, outcomes, the ready heap, the unsent approval batches)
through ``_move``'s legal transitions; the plan, the outcomes, the approvals and the
concurrency controller already live in modules of their own.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
from collections.abc import Callable, Sequence
from typing import Any

from reference_impl.mode import Mode
from reference_impl.prp.adaptive import AdaptiveConcurrency
from reference_impl.prp.approvals import (
    ApprovalDecision,
    ApprovalProvider,
    ApprovalRequest,
    ApprovalVerdict,
    ApprovalWait,
    check_decisions,
)
from reference_impl.prp.config import PrpConfig
from reference_impl.prp.gates import GateKind, GatePlan, GateSpec
from reference_impl.prp.outcomes import (
    FailureReason,
    GateOutcome,
    GateTiming,
    OutcomeKind,
    SpoolStatus,
)
from reference_impl.prp.profile import EnforcementProfile, Severity

__all__ = ["GateSpool", "GateState"]

# Deadlines closer than this count as reached (the loop's clock is a float sum).
_EPSILON_S = 1e-9


class GateState(enum.Enum):
    """Where a gate is in a run; :data:`_TRANSITIONS` lists the legal moves."""

    WAITING = "waiting"  # a dependency has not committed
    READY = "ready"  # waiting for a spool slot
    RUNNING = "running"  # doing its work
    AWAITING_APPROVAL = "awaiting_approval"
    DONE = "done"  # has its outcome, waiting for its turn to commit
    COMMITTED = "committed"


_TRANSITIONS: dict[GateState, frozenset[GateState]] = {
    GateState.WAITING: frozenset({GateState.READY, GateState.DONE}),
    GateState.READY: frozenset({GateState.RUNNING}),
    GateState.RUNNING: frozenset({GateState.AWAITING_APPROVAL, GateState.DONE}),
    GateState.AWAITING_APPROVAL: frozenset({GateState.DONE}),
    GateState.DONE: frozenset({GateState.COMMITTED}),
    GateState.COMMITTED: frozenset(),
}


class _Work(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


class GateSpool:
    """One run of a :class:`GatePlan` (see the module's guarantees). Not reusable."""

    def __init__(
        self,
        plan: GatePlan,
        *,
        mode: Mode,
        config: PrpConfig,
        profile: EnforcementProfile,
        provider: ApprovalProvider,
        on_commit: Callable[[GateOutcome], object],
        jitter_s: Callable[[GateSpec], float] = lambda _gate: 0.0,
        approval_linger_s: float = 5.0,
    ) -> None:
        self.plan = plan
        self.mode = mode
        self.profile = profile
        self.controller = AdaptiveConcurrency(
            1 if mode is Mode.LEGACY else config.spool_concurrency,
            1 if mode is Mode.LEGACY else config.spool_max_concurrency,
            config.approval_batch_size,
        )
        self._provider = provider
        self._on_commit = on_commit
        self._jitter_s = jitter_s
        self._linger_s = approval_linger_s
        n = len(plan)
        self._index = {g.id: p for p, g in enumerate(plan.gates)}
        self._state = [GateState.WAITING] * n
        self._missing = [len(d) for d in plan.deps]
        self._max_dep = [max(d, default=-1) for d in plan.deps]
        self._severity = [profile.severity_for(g.id) for g in plan.gates]
        self._outcome: list[GateOutcome | None] = [None] * n
        self._started: list[float | None] = [None] * n
        self._work_done: list[float | None] = [None] * n
        self._requested: list[float | None] = [None] * n
        self._waits: list[ApprovalWait | None] = [None] * n
        self._committed_at = [0.0] * n
        self._ready: list[int] = []
        self._running: set[int] = set()
        self._awaiting: set[int] = set()
        self._unsent: dict[int, list[int]] = {}
        self._deadline: dict[int, float] = {}
        self._passed: list[str] = []
        self._head = 0
        self._done = 0
        self._active = False
        self._t0 = 0.0
        self._clock: Callable[[], float] = lambda: 0.0
        self.approval_batches: list[tuple[str, ...]] = []

    # -- what the runner reads -------------------------------------------------------

    def status(self) -> SpoolStatus:
        """A snapshot of the run now (never waits)."""
        gates = self.plan.gates
        return SpoolStatus(
            running=self._active,
            active_gates=tuple(gates[p].id for p in sorted(self._running)),
            awaiting_approval=tuple(gates[p].id for p in sorted(self._awaiting)),
            committed_gates=tuple(self._passed),
            settled=self._head,
            total=len(gates),
            queue_depth=len(gates) - self._done - len(self._running) - len(self._awaiting),
            approval_queue_depth=len(self._awaiting),
            concurrency=self.controller.current,
        )

    def timings(self) -> tuple[GateTiming, ...]:
        """Per committed gate, in commit order: start, end of work and commit times."""
        return tuple(
            GateTiming(
                self.plan.gates[p].id, self._started[p], self._work_done[p], self._committed_at[p]
            )
            for p in range(self._head)
        )

    def approval_waits(self) -> tuple[ApprovalWait, ...]:
        """Every approval decided for a committed gate, in commit order."""
        return tuple(w for w in self._waits[: self._head] if w is not None)

    # -- the run ---------------------------------------------------------------------

    async def run(self) -> None:
        """Run every gate and commit every outcome in plan order (see the module)."""
        if self._active or self._head:
            raise RuntimeError("a GateSpool runs once")
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        self._clock = lambda: loop.time() - self._t0
        self._active = True
        try:
            for p, missing in enumerate(self._missing):
                if missing == 0:
                    self._release(p)
            if self.mode is Mode.LEGACY:
                await self._run_legacy()
            else:
                await self._run_pooled()
        finally:
            self._active = False

    async def _run_legacy(self) -> None:
        for p in range(len(self.plan)):
            self._commit_ready()
            if self._state[p] is GateState.READY:
                self._start(p)
                result = await self._work(p)
                self._finish_work(p, result)
                if self._state[p] is GateState.AWAITING_APPROVAL:
                    # Today's runner: one synchronous approval, automatic ones included.
                    requests = [self._request(p)]
                    decisions = await self._provider.decide(requests)
                    self._finish_approval(requests, decisions)
        self._commit_ready()

    async def _run_pooled(self) -> None:
        work: dict[asyncio.Task[Any], int] = {}
        approvals: dict[asyncio.Task[Any], list[ApprovalRequest]] = {}
        try:
            while True:
                self._commit_ready()
                if self._head == len(self.plan):
                    return
                while self._ready and len(self._running) < self.controller.current:
                    p = heapq.heappop(self._ready)
                    self._start(p)
                    work[asyncio.ensure_future(self._work(p))] = p
                now = self._clock()
                for requests in self._flush(now):
                    approvals[asyncio.ensure_future(self._provider.decide(requests))] = requests
                if not work and not approvals:
                    # Unreachable: the flush rule guarantees progress. A bug if seen.
                    raise RuntimeError(f"spool stalled at gate {self.plan.gates[self._head].id!r}")
                timeout = None
                if self._deadline:
                    timeout = max(0.0, min(self._deadline.values()) - now)
                tasks: list[asyncio.Task[Any]] = [*work, *approvals]
                done, _ = await asyncio.wait(
                    tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                # What finished together is handled in plan order, work first.
                for p, task in sorted((work.pop(t), t) for t in done if t in work):
                    self._finish_work(p, task.result())
                answered = sorted(
                    (self._index[approvals[t][0].gate], t) for t in done if t in approvals
                )
                for _, task in answered:
                    self._finish_approval(approvals.pop(task), task.result())
        finally:
            await _cancel_all([*work, *approvals])

    # -- steps -----------------------------------------------------------------------

    def _move(self, p: int, new: GateState) -> None:
        old = self._state[p]
        if new not in _TRANSITIONS[old]:
            raise RuntimeError(f"gate {self.plan.gates[p].id!r}: illegal move {old} -> {new}")
        self._state[p] = new
        if old is GateState.RUNNING:
            self._running.discard(p)
        elif old is GateState.AWAITING_APPROVAL:
            self._awaiting.discard(p)
        if new is GateState.RUNNING:
            self._running.add(p)
        elif new is GateState.AWAITING_APPROVAL:
            self._awaiting.add(p)
        elif new is GateState.DONE:
            self._done += 1

    def _settle(self, p: int, outcome: GateOutcome) -> None:
        self._outcome[p] = outcome
        self._move(p, GateState.DONE)

    def _release(self, p: int) -> None:
        """All of ``p``'s dependencies committed: skip it, or make it ready."""
        gate = self.plan.gates[p]
        blockers = []
        for d in self.plan.deps[p]:
            dep = self._outcome[d]
            assert dep is not None
            if dep.outcome is OutcomeKind.SKIPPED or (
                dep.outcome is OutcomeKind.FAILED and dep.severity is Severity.REQUIRED
            ):
                blockers.append(dep.gate)
        if blockers:
            self._settle(
                p,
                GateOutcome(
                    gate.id,
                    p,
                    gate.kind,
                    OutcomeKind.SKIPPED,
                    self._severity[p],
                    blocked_by=tuple(blockers),
                ),
            )
        else:
            self._move(p, GateState.READY)
            heapq.heappush(self._ready, p)

    def _start(self, p: int) -> None:
        self._move(p, GateState.RUNNING)
        self._started[p] = self._clock()

    async def _work(self, p: int) -> _Work:
        gate = self.plan.gates[p]
        delay = gate.duration_s + self._jitter_s(gate)
        timeout = gate.timeout_s if gate.timeout_s is not None else self.profile.gate_timeout_s
        try:
            if timeout is None:
                await asyncio.sleep(delay)
            else:
                async with asyncio.timeout(timeout):
                    await asyncio.sleep(delay)
        except TimeoutError:
            return _Work.TIMED_OUT
        return _Work.FAILED if gate.fails else _Work.OK

    def _finish_work(self, p: int, result: _Work) -> None:
        gate = self.plan.gates[p]
        now = self._clock()
        self._work_done[p] = now
        if result is not _Work.OK:
            if result is _Work.TIMED_OUT:
                self.controller.on_timeout()
            reason = FailureReason.TIMED_OUT if result is _Work.TIMED_OUT else FailureReason.FAILED
            self._settle(
                p,
                GateOutcome(
                    gate.id, p, gate.kind, OutcomeKind.FAILED, self._severity[p], reason=reason
                ),
            )
            return
        if gate.kind is GateKind.AUTOMATED and self.mode is Mode.POOLED:
            # Automatic approvals do not wait, and are not asked for.
            self._waits[p] = ApprovalWait(gate.id, gate.kind, ApprovalVerdict.AUTOMATIC, 0.0, None)
            self._settle(
                p,
                GateOutcome(
                    gate.id,
                    p,
                    gate.kind,
                    OutcomeKind.COMMITTED,
                    self._severity[p],
                    approval=ApprovalVerdict.AUTOMATIC,
                ),
            )
            self.controller.on_completed(len(self._awaiting))
            return
        self._move(p, GateState.AWAITING_APPROVAL)
        self._requested[p] = now
        if self.mode is Mode.POOLED:
            label = self.plan.batch[p]
            assert label is not None
            self._unsent.setdefault(label, []).append(p)
            self._deadline.setdefault(label, now + self._linger_s)
            self.controller.on_approval_queued(len(self._awaiting))

    def _request(self, p: int) -> ApprovalRequest:
        gate = self.plan.gates[p]
        return ApprovalRequest(gate.id, gate.kind, self.plan.batch[p], gate.wait_s, gate.approved)

    def _flush(self, now: float) -> list[list[ApprovalRequest]]:
        """The batches to send now (see the module's guarantees)."""
        if not self._unsent:
            return []
        lowest_pending = min(self._awaiting)
        sends = []
        for label in sorted(self._unsent):
            asking = self._unsent[label]
            others_settled = all(
                self._state[m] in (GateState.AWAITING_APPROVAL, GateState.DONE, GateState.COMMITTED)
                or (self._state[m] is GateState.WAITING and self._max_dep[m] >= lowest_pending)
                for m in self.plan.batch_members[label]
                if m not in asking
            )
            if others_settled or now >= self._deadline[label] - _EPSILON_S:
                del self._unsent[label]
                del self._deadline[label]
                sends.append([self._request(p) for p in sorted(asking)])
        return sends

    def _finish_approval(
        self, requests: Sequence[ApprovalRequest], decisions: Sequence[ApprovalDecision]
    ) -> None:
        verdicts = check_decisions(requests, decisions)
        now = self._clock()
        self.approval_batches.append(tuple(r.gate for r in requests))
        for request in requests:
            p = self._index[request.gate]
            gate = self.plan.gates[p]
            approved = verdicts[request.gate]
            if gate.kind is GateKind.AUTOMATED:
                verdict = ApprovalVerdict.AUTOMATIC
            else:
                verdict = ApprovalVerdict.APPROVED if approved else ApprovalVerdict.REJECTED
            requested = self._requested[p]
            assert requested is not None
            self._waits[p] = ApprovalWait(
                gate.id, gate.kind, verdict, now - requested, request.batch
            )
            if approved:
                outcome = GateOutcome(
                    gate.id,
                    p,
                    gate.kind,
                    OutcomeKind.COMMITTED,
                    self._severity[p],
                    approval=verdict,
                    batch=request.batch,
                )
            else:
                outcome = GateOutcome(
                    gate.id,
                    p,
                    gate.kind,
                    OutcomeKind.FAILED,
                    self._severity[p],
                    reason=FailureReason.REJECTED,
                    approval=verdict,
                    batch=request.batch,
                )
            self._settle(p, outcome)
            if approved:
                self.controller.on_completed(len(self._awaiting))

    def _commit_ready(self) -> None:
        plan = self.plan
        while self._head < len(plan) and self._state[self._head] is GateState.DONE:
            p = self._head
            outcome = self._outcome[p]
            assert outcome is not None
            self._move(p, GateState.COMMITTED)
            self._committed_at[p] = self._clock()
            self._head += 1
            if outcome.outcome is OutcomeKind.COMMITTED:
                self._passed.append(outcome.gate)
            self._on_commit(outcome)
            for user in plan.dependents[p]:
                self._missing[user] -= 1
                if self._missing[user] == 0:
                    self._release(user)


async def _cancel_all(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait for every one: no task outlives the spool."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the first error already propagated
