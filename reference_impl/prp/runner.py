"""The PRP runner: one run = profile, gate plan, spool, evidence, events, review document.

Guarantees:

* **Determinism.** For the same gates, profile, config and evidence key, the
  committed sequence, the lifecycle events (their digest) and the evidence
  chain's digest are identical in legacy and pooled mode, at every concurrency
  and any timing jitter. Only times differ (:class:`PrpRunResult` keeps them
  apart: ``makespan_s``, ``timings``, ``approval_waits``).
* **Events** (``gate.committed``, ``gate.failed``, ``gate.skipped``, then
  ``run.finished``) are committed to an :class:`~reference_impl.events.EventLog`
  in commit order, one per gate, no duplicates; events of gates decided by a
  reviewer carry the planned approval ``batch``.
* **Evidence.** Each gate's record is on disk in ``<run_id>.evidence.jsonl``
  before the next gate commits; a cancelled run leaves a file that verifies up
  to its last committed gate (:func:`~reference_impl.prp.evidence.verify_evidence_file`).
* **Review document** ``<run_id>.review.md``: pooled mode writes it once, at
  the end, atomically; legacy rewrites it in place after every gate.
* **Profile**: loaded at the start of every run through a
  :class:`~reference_impl.prp.profile.ProfileSource` (cached by content in
  pooled mode); bad input raises :class:`~reference_impl.errors.ConfigError`
  before any gate runs.
* :meth:`PrpRunner.status` and :meth:`PrpRunner.statistics` are synchronous
  snapshots: they answer while gates run and never wait for one. Nothing here
  touches OpenTelemetry; the telemetry layer reads these snapshots.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference_impl.events import DEFAULT_KEY, EventLog, LoggedEvent, stable_hash
from reference_impl.mode import Mode
from reference_impl.prp.approvals import ApprovalProvider, ApprovalWait, TraceApprovalProvider
from reference_impl.prp.config import PrpConfig
from reference_impl.prp.evidence import (
    EvidenceFile,
    evidence_payload,
    render_review,
    write_atomically,
    write_in_place,
)
from reference_impl.prp.gates import GateSpec, plan_gates
from reference_impl.prp.outcomes import GateOutcome, GateTiming, OutcomeKind, SpoolStatus
from reference_impl.prp.profile import ProfileSource
from reference_impl.prp.spool import GateSpool

__all__ = ["PrpRunResult", "PrpRunner", "PrpStatistics", "RunnerState"]


class RunnerState(enum.Enum):
    """``IDLE`` between runs, ``RUNNING`` during one; a second concurrent run is refused."""

    IDLE = "idle"
    RUNNING = "running"


@dataclass(frozen=True, slots=True)
class PrpRunResult:
    """What one run did.

    The deterministic part: ``order`` (every gate, in commit order),
    ``committed``/``failed``/``skipped`` (ids, in commit order), ``outcomes``,
    ``events``, ``event_digest``, ``evidence_digest``. The timed part, in loop
    seconds (trace seconds on the virtual clock): ``makespan_s``, ``timings``,
    ``approval_waits``, ``approval_batches`` (the groups actually decided
    together), ``gates_per_hour``.
    """

    mode: Mode
    run_id: str
    order: tuple[str, ...]
    committed: tuple[str, ...]
    failed: tuple[str, ...]
    skipped: tuple[str, ...]
    outcomes: tuple[GateOutcome, ...]
    events: tuple[LoggedEvent, ...]
    event_digest: str
    evidence_digest: str
    evidence_path: Path
    review_path: Path
    profile_name: str
    profile_digest: str
    makespan_s: float
    timings: tuple[GateTiming, ...]
    approval_waits: tuple[ApprovalWait, ...]
    approval_batches: tuple[tuple[str, ...], ...]
    concurrency_peak: int

    @property
    def gate_durations_s(self) -> tuple[tuple[str, float], ...]:
        """(gate, work seconds) for every gate that ran, in commit order."""
        return tuple((t.gate, d) for t in self.timings if (d := t.duration_s) is not None)

    @property
    def gates_per_hour(self) -> float:
        """Gates that ran to an outcome per hour of makespan (0.0 for an instant run)."""
        ran = len(self.gate_durations_s)
        return ran * 3600.0 / self.makespan_s if self.makespan_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class PrpStatistics:
    """A runner's counters (totals over its runs) and the levels of the run in progress."""

    mode: Mode
    state: RunnerState
    runs_started: int
    runs_finished: int
    spool_concurrency: int
    spool_concurrency_peak: int
    active_gates: int
    queue_depth: int
    approval_queue_depth: int
    gates_committed: int
    gates_failed: int
    gates_skipped: int
    approvals_decided: int
    approval_batches: int
    evidence_records: int
    review_writes: int
    profile_loads: int
    profile_parses: int
    profile_cache_hits: int
    profile_cache_misses: int


class PrpRunner:
    """Runs PRPs (gate lists) in one mode with one config (see the module's guarantees).

    ``profile_source`` may be shared between runners to share its cache; by
    default each runner has its own. ``timing_jitter_s`` adds a seeded delay in
    ``[0, timing_jitter_s)`` to every gate's work: it moves times, never outcomes.
    """

    def __init__(
        self,
        mode: Mode,
        config: PrpConfig | None = None,
        *,
        profile_path: Path,
        evidence_dir: Path,
        approval_provider: ApprovalProvider | None = None,
        evidence_key: bytes = DEFAULT_KEY,
        profile_source: ProfileSource | None = None,
        timing_jitter_s: float = 0.0,
        seed: int = 0,
        approval_linger_s: float = 5.0,
    ) -> None:
        if timing_jitter_s < 0:
            raise ValueError(f"timing_jitter_s must be >= 0, got {timing_jitter_s}")
        if approval_linger_s < 0:
            raise ValueError(f"approval_linger_s must be >= 0, got {approval_linger_s}")
        self.mode = mode
        self.config = PrpConfig.from_env() if config is None else config
        self.profile_path = profile_path
        self.evidence_dir = evidence_dir
        self.provider: ApprovalProvider = (
            TraceApprovalProvider() if approval_provider is None else approval_provider
        )
        self._key = evidence_key
        self._profiles = ProfileSource(mode) if profile_source is None else profile_source
        self._jitter_s = timing_jitter_s
        self._seed = seed
        self._linger_s = approval_linger_s
        self._state = RunnerState.IDLE
        self._spool: GateSpool | None = None
        self._counts = {kind: 0 for kind in OutcomeKind}
        self._runs_started = 0
        self._runs_finished = 0
        self._approvals = 0
        self._batches = 0
        self._evidence_records = 0
        self._review_writes = 0
        self._peak = 0

    def status(self) -> SpoolStatus:
        """The run in progress (or the last one) now; never waits for a gate."""
        if self._spool is None:
            return SpoolStatus(False, (), (), (), 0, 0, 0, 0, self.config.spool_concurrency)
        return self._spool.status()

    def statistics(self) -> PrpStatistics:
        """A frozen snapshot of the counters and of the current run's levels."""
        status = self.status()
        profiles = self._profiles.statistics()
        spool = self._spool
        peak = self._peak
        approvals, batches = self._approvals, self._batches
        if spool is not None and self._state is RunnerState.RUNNING:
            peak = max(peak, spool.controller.peak)
            approvals += len(spool.approval_waits())
            batches += len(spool.approval_batches)
        return PrpStatistics(
            mode=self.mode,
            state=self._state,
            runs_started=self._runs_started,
            runs_finished=self._runs_finished,
            spool_concurrency=status.concurrency,
            spool_concurrency_peak=peak,
            active_gates=len(status.active_gates),
            queue_depth=status.queue_depth,
            approval_queue_depth=status.approval_queue_depth,
            gates_committed=self._counts[OutcomeKind.COMMITTED],
            gates_failed=self._counts[OutcomeKind.FAILED],
            gates_skipped=self._counts[OutcomeKind.SKIPPED],
            approvals_decided=approvals,
            approval_batches=batches,
            evidence_records=self._evidence_records,
            review_writes=self._review_writes,
            profile_loads=profiles.loads,
            profile_parses=profiles.parses,
            profile_cache_hits=profiles.cache_hits,
            profile_cache_misses=profiles.cache_misses,
        )

    def _jitter(self, gate: GateSpec) -> float:
        if self._jitter_s == 0:
            return 0.0
        return random.Random(stable_hash("prp.jitter", gate.id, seed=self._seed)).uniform(
            0.0, self._jitter_s
        )

    async def run(self, gates: Sequence[GateSpec], *, run_id: str = "prp") -> PrpRunResult:
        """Run one PRP to its end; ``run_id`` names its evidence and review files.

        Raises ``ConfigError`` (profile, gate graph) before any gate runs, and
        ``RuntimeError`` if this runner is already running.
        """
        if self._state is RunnerState.RUNNING:
            raise RuntimeError("this PrpRunner is already running a PRP")
        self._state = RunnerState.RUNNING
        try:
            return await self._run(gates, run_id)
        finally:
            self._state = RunnerState.IDLE

    async def _run(self, gates: Sequence[GateSpec], run_id: str) -> PrpRunResult:
        profile = self._profiles.load(self.profile_path)
        plan = plan_gates(gates, approval_batch_size=self.config.approval_batch_size)
        self._runs_started += 1
        self.evidence_dir.mkdir(parents=True, exist_ok=True)
        evidence_path = self.evidence_dir / f"{run_id}.evidence.jsonl"
        review_path = self.evidence_dir / f"{run_id}.review.md"
        events = EventLog()
        outcomes: list[GateOutcome] = []
        legacy = self.mode is Mode.LEGACY

        def review(evidence: EvidenceFile) -> str:
            return render_review(
                run_id=run_id,
                profile_name=profile.name,
                profile_digest=profile.digest,
                outcomes=outcomes,
                total=len(plan),
                evidence_name=evidence_path.name,
                evidence_digest=evidence.chain.digest(),
            )

        with EvidenceFile(evidence_path, self._key) as evidence:

            def commit(outcome: GateOutcome) -> None:
                gate = plan.gates[outcome.position]
                evidence.append(
                    evidence_payload(
                        outcome,
                        deps=gate.deps,
                        duration_s=gate.duration_s,
                        profile_digest=profile.digest,
                    )
                )
                self._evidence_records += 1
                events.commit(
                    f"gate.{outcome.outcome.value}", _event_payload(outcome), batch=outcome.batch
                )
                outcomes.append(outcome)
                self._counts[outcome.outcome] += 1
                if legacy:
                    write_in_place(review_path, review(evidence))
                    self._review_writes += 1

            spool = GateSpool(
                plan,
                mode=self.mode,
                config=self.config,
                profile=profile,
                provider=self.provider,
                on_commit=commit,
                jitter_s=self._jitter,
                approval_linger_s=self._linger_s,
            )
            self._spool = spool
            loop = asyncio.get_running_loop()
            started = loop.time()
            try:
                await spool.run()
            finally:
                self._peak = max(self._peak, spool.controller.peak)
                self._approvals += len(spool.approval_waits())
                self._batches += len(spool.approval_batches)
            makespan_s = loop.time() - started
            evidence_digest = evidence.chain.digest()
            by_kind = {kind: 0 for kind in OutcomeKind}
            for outcome in outcomes:
                by_kind[outcome.outcome] += 1
            events.commit(
                "run.finished",
                {
                    "gates": len(plan),
                    "committed": by_kind[OutcomeKind.COMMITTED],
                    "failed": by_kind[OutcomeKind.FAILED],
                    "skipped": by_kind[OutcomeKind.SKIPPED],
                    "evidence_digest": evidence_digest,
                },
            )
            if not legacy or not plan.gates:
                write_atomically(review_path, review(evidence))
                self._review_writes += 1
        self._runs_finished += 1

        def ids(kind: OutcomeKind) -> tuple[str, ...]:
            return tuple(o.gate for o in outcomes if o.outcome is kind)

        return PrpRunResult(
            mode=self.mode,
            run_id=run_id,
            order=tuple(o.gate for o in outcomes),
            committed=ids(OutcomeKind.COMMITTED),
            failed=ids(OutcomeKind.FAILED),
            skipped=ids(OutcomeKind.SKIPPED),
            outcomes=tuple(outcomes),
            events=events.events,
            event_digest=events.digest(),
            evidence_digest=evidence_digest,
            evidence_path=evidence_path,
            review_path=review_path,
            profile_name=profile.name,
            profile_digest=profile.digest,
            makespan_s=makespan_s,
            timings=spool.timings(),
            approval_waits=spool.approval_waits(),
            approval_batches=tuple(spool.approval_batches),
            concurrency_peak=spool.controller.peak,
        )


def _event_payload(outcome: GateOutcome) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "gate": outcome.gate,
        "position": outcome.position,
        "kind": outcome.kind.value,
    }
    if outcome.outcome is OutcomeKind.COMMITTED:
        assert outcome.approval is not None
        payload["approval"] = outcome.approval.value
    elif outcome.outcome is OutcomeKind.FAILED:
        assert outcome.reason is not None
        payload["reason"] = outcome.reason.value
        payload["severity"] = outcome.severity.value
    else:
        payload["blocked_by"] = list(outcome.blocked_by)
    return payload
