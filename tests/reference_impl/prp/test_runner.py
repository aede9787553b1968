"""The PRP runner end to end: outcomes, events, approvals, evidence, status, cancellation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from reference_impl import virtual_time
from reference_impl.errors import EvidenceError
from reference_impl.mode import Mode
from reference_impl.prp import (
    AdaptiveConcurrency,
    ApprovalDecision,
    ApprovalProtocolError,
    ApprovalRequest,
    ApprovalVerdict,
    GateKind,
    GateSpec,
    PrpConfig,
    PrpRunner,
    RunnerState,
    TraceApprovalProvider,
    load_gates,
    verify_evidence_file,
)
from reference_impl.prp.demo import EXAMPLE_GATES, EXAMPLE_PROFILE

from .support import run_prp, write_profile

H = GateKind.HUMAN


class CountingProvider(TraceApprovalProvider):
    """The trace provider, remembering every batch it was asked."""

    def __init__(self) -> None:
        super().__init__(automatic_check_s=2.0)
        self.asked: list[tuple[str, ...]] = []

    async def decide(self, requests: Sequence[ApprovalRequest]) -> Sequence[ApprovalDecision]:
        self.asked.append(tuple(r.gate for r in requests))
        return await super().decide(requests)


def example_runner(mode: Mode, tmp_path: Path, **kwargs: object) -> PrpRunner:
    return PrpRunner(
        mode,
        PrpConfig(),
        profile_path=EXAMPLE_PROFILE,
        evidence_dir=tmp_path / mode.value,
        **kwargs,  # type: ignore[arg-type]  # keyword pass-through
    )


def test_the_example_is_identical_in_both_modes_and_faster_pooled(tmp_path: Path) -> None:
    gates = load_gates(EXAMPLE_GATES)
    legacy_runner = example_runner(Mode.LEGACY, tmp_path)
    pooled_runner = example_runner(Mode.POOLED, tmp_path)
    legacy = virtual_time.run(legacy_runner.run(gates))
    pooled = virtual_time.run(pooled_runner.run(gates))
    assert pooled.order == legacy.order
    assert [e.as_json() for e in pooled.events] == [e.as_json() for e in legacy.events]
    assert pooled.event_digest == legacy.event_digest
    assert pooled.evidence_digest == legacy.evidence_digest
    assert pooled.review_path.read_bytes() == legacy.review_path.read_bytes()
    assert pooled.failed == ("docs-check",) and pooled.skipped == ()
    # Legacy: every gate's work, every reviewer, every automatic check, one after another.
    work = sum(g.duration_s for g in gates)
    reviews = sum(g.wait_s for g in gates)
    automatic_passed = sum(1 for g in gates if g.kind is GateKind.AUTOMATED and not g.fails)
    assert legacy.makespan_s == pytest.approx(work + reviews + 2.0 * automatic_passed)
    assert pooled.makespan_s < legacy.makespan_s / 2
    assert pooled.gates_per_hour > 2 * legacy.gates_per_hour
    # Legacy rewrote the review after every gate; pooled wrote it once.
    assert legacy_runner.statistics().review_writes == 12
    assert pooled_runner.statistics().review_writes == 1
    assert "- status: complete" in pooled.review_path.read_text(encoding="utf-8")
    assert verify_evidence_file(pooled.evidence_path) == 12
    assert not list(pooled.evidence_path.parent.glob("*.tmp"))


def test_events_are_one_per_gate_in_commit_order_then_run_finished(tmp_path: Path) -> None:
    gates = [
        GateSpec("a", duration_s=5),
        GateSpec("bad", duration_s=1, fails=True),
        GateSpec("h", H, deps=("a",), duration_s=1, wait_s=3),
        GateSpec("after-bad", deps=("bad",)),
        GateSpec("after-after", deps=("after-bad", "a")),
        GateSpec("no", H, duration_s=1, wait_s=1, approved=False),
        GateSpec("slow", duration_s=50, timeout_s=10),
    ]
    result = run_prp(Mode.POOLED, gates, tmp_path, PrpConfig(2, 4, 2))
    events = [e.as_json() for e in result.events]
    assert [e["seq"] for e in events] == list(range(len(gates) + 1))
    assert [(e["kind"], e["payload"]["gate"]) for e in events[:-1]] == [
        ("gate.committed", "a"),
        ("gate.failed", "bad"),
        ("gate.committed", "h"),
        ("gate.skipped", "after-bad"),
        ("gate.skipped", "after-after"),
        ("gate.failed", "no"),
        ("gate.failed", "slow"),
    ]
    assert events[2] == {
        "seq": 2,
        "kind": "gate.committed",
        "payload": {"gate": "h", "position": 2, "kind": "human", "approval": "approved"},
        "batch": 0,
    }
    assert events[3]["payload"]["blocked_by"] == ["bad"]
    assert events[4]["payload"]["blocked_by"] == ["after-bad"]
    assert events[5]["payload"]["reason"] == "rejected" and events[5]["batch"] == 0
    assert events[6]["payload"]["reason"] == "timed_out" and "batch" not in events[6]
    assert events[-1]["kind"] == "run.finished"
    assert events[-1]["payload"] == {
        "gates": 7,
        "committed": 2,
        "failed": 3,
        "skipped": 2,
        "evidence_digest": result.evidence_digest,
    }
    assert result.committed == ("a", "h")
    assert result.failed == ("bad", "no", "slow")
    assert result.skipped == ("after-bad", "after-after")
    slow = next(t for t in result.timings if t.gate == "slow")
    assert slow.duration_s == pytest.approx(10.0)


def test_an_advisory_failure_blocks_nothing(tmp_path: Path) -> None:
    gates = [GateSpec("adv-docs", fails=True), GateSpec("publish", deps=("adv-docs",))]
    for mode in Mode:
        result = run_prp(mode, gates, tmp_path)
        assert result.failed == ("adv-docs",)
        assert result.committed == ("publish",)


def test_pooled_approves_automatic_gates_without_asking_or_waiting(tmp_path: Path) -> None:
    gates = [GateSpec("a", duration_s=10), GateSpec("b", deps=("a",), duration_s=10)]
    legacy_provider, pooled_provider = CountingProvider(), CountingProvider()
    legacy = run_prp(Mode.LEGACY, gates, tmp_path, approval_provider=legacy_provider)
    pooled = run_prp(Mode.POOLED, gates, tmp_path, approval_provider=pooled_provider)
    assert pooled_provider.asked == []
    assert [w.wait_s for w in pooled.approval_waits] == [0.0, 0.0]
    assert legacy_provider.asked == [("a",), ("b",)]
    assert [w.wait_s for w in legacy.approval_waits] == [2.0, 2.0]
    assert {w.verdict for w in legacy.approval_waits} == {ApprovalVerdict.AUTOMATIC}
    assert legacy.makespan_s == pytest.approx(24.0)
    assert pooled.makespan_s == pytest.approx(20.0)


def test_pooled_decides_human_gates_in_batches(tmp_path: Path) -> None:
    gates = [
        GateSpec("h1", H, duration_s=10, wait_s=20),
        GateSpec("h2", H, duration_s=10, wait_s=30),
        GateSpec("h3", H, duration_s=10, wait_s=25),
        GateSpec("h4", H, duration_s=12, wait_s=5),
    ]
    provider = CountingProvider()
    pooled = run_prp(Mode.POOLED, gates, tmp_path, PrpConfig(4, 4, 2), approval_provider=provider)
    assert provider.asked == [("h1", "h2"), ("h3", "h4")]
    waits = {w.gate: w.wait_s for w in pooled.approval_waits}
    # Batch 0 asked at 10 s, reviewed together in max(20, 30); h3 waited for h4 (12 s).
    assert waits == pytest.approx({"h1": 30.0, "h2": 30.0, "h3": 27.0, "h4": 25.0})
    assert pooled.makespan_s == pytest.approx(40.0)
    legacy_provider = CountingProvider()
    legacy = run_prp(Mode.LEGACY, gates, tmp_path, approval_provider=legacy_provider)
    assert legacy_provider.asked == [("h1",), ("h2",), ("h3",), ("h4",)]
    assert [w.wait_s for w in legacy.approval_waits] == [20.0, 30.0, 25.0, 5.0]
    assert [w.batch for w in legacy.approval_waits] == [0, 0, 1, 1]
    assert legacy.event_digest == pooled.event_digest


def test_a_batch_does_not_wait_for_a_member_that_needs_its_approval(tmp_path: Path) -> None:
    # h2 cannot start before h1 commits, so batch 0 = (h1, h2) is sent with h1 alone.
    gates = [
        GateSpec("h1", H, duration_s=10, wait_s=20),
        GateSpec("h2", H, deps=("h1",), duration_s=10, wait_s=20),
    ]
    provider = CountingProvider()
    result = run_prp(
        Mode.POOLED, gates, tmp_path, approval_provider=provider, approval_linger_s=1000.0
    )
    assert provider.asked == [("h1",), ("h2",)]
    assert [w.wait_s for w in result.approval_waits] == [20.0, 20.0]
    assert [w.batch for w in result.approval_waits] == [0, 0]
    assert result.makespan_s == pytest.approx(60.0)


def test_a_lingering_request_is_sent_without_its_batch(tmp_path: Path) -> None:
    gates = [
        GateSpec("h1", H, duration_s=10, wait_s=20),
        GateSpec("h2", H, duration_s=500, wait_s=20),
    ]
    provider = CountingProvider()
    result = run_prp(
        Mode.POOLED,
        gates,
        tmp_path,
        PrpConfig(2, 2, 2),
        approval_provider=provider,
        approval_linger_s=5.0,
    )
    assert provider.asked == [("h1",), ("h2",)]
    assert result.approval_waits[0].wait_s == pytest.approx(25.0)


def test_a_provider_that_drops_a_decision_is_an_error(tmp_path: Path) -> None:
    class Forgetful(TraceApprovalProvider):
        async def decide(self, requests: Sequence[ApprovalRequest]) -> Sequence[ApprovalDecision]:
            return list(await super().decide(requests))[1:]

    gates = [GateSpec("a", duration_s=1), GateSpec("h", H, duration_s=1, wait_s=1)]

    async def scenario() -> None:
        with pytest.raises(ApprovalProtocolError, match="'h': requested but not decided"):
            await run_runner(Mode.POOLED, gates, tmp_path, approval_provider=Forgetful())
        assert asyncio.all_tasks() == {asyncio.current_task()}

    virtual_time.run(scenario())


async def run_runner(
    mode: Mode, gates: Sequence[GateSpec], tmp_path: Path, **kwargs: object
) -> None:
    profile = write_profile(tmp_path)
    runner = PrpRunner(
        mode,
        PrpConfig(),
        profile_path=profile,
        evidence_dir=tmp_path / "out",
        **kwargs,  # type: ignore[arg-type]  # keyword pass-through
    )
    await runner.run(gates)


def chain(n: int, duration_s: float = 60.0) -> list[GateSpec]:
    gates = []
    for i in range(n):
        kind = H if i % 4 == 3 else GateKind.AUTOMATED
        deps = (f"g{i - 1:02d}",) if i % 3 and i else ()
        gates.append(
            GateSpec(f"g{i:02d}", kind, deps, duration_s, wait_s=10.0 if kind is H else 0.0)
        )
    return gates


@pytest.mark.parametrize("mode", list(Mode))
def test_a_cancelled_run_leaves_evidence_that_verifies(tmp_path: Path, mode: Mode) -> None:
    gates = chain(20)
    runner = PrpRunner(
        mode, PrpConfig(2, 4, 2), profile_path=write_profile(tmp_path), evidence_dir=tmp_path
    )

    async def scenario() -> int:
        task = asyncio.ensure_future(runner.run(gates, run_id="crash"))
        # Polling the synchronous status, as an MCP client does (virtual seconds).
        for _ in range(100_000):  # bounded: a run that died must not spin forever
            if runner.status().settled >= 7 or task.done():
                break
            await asyncio.sleep(1.0)
        assert not task.done(), "the run ended before it could be cancelled"
        settled = runner.status().settled
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert asyncio.all_tasks() == {asyncio.current_task()}
        return settled

    settled = virtual_time.run(scenario())
    assert 7 <= settled < 20
    evidence = tmp_path / "crash.evidence.jsonl"
    assert verify_evidence_file(evidence) == settled
    lines = evidence.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["payload"]["gate"] for line in lines] == [
        g.id for g in gates[:settled]
    ]  # the chain's order is the plan's (here: declaration) order
    review = tmp_path / "crash.review.md"
    if mode is Mode.POOLED:
        assert not review.exists()  # written once, at the end only
    else:
        assert f"in progress ({settled}/20)" in review.read_text(encoding="utf-8")
    assert runner.statistics().state is RunnerState.IDLE


def test_evidence_verification_names_the_first_bad_record(tmp_path: Path) -> None:
    result = run_prp(Mode.POOLED, chain(6), tmp_path)
    path = result.evidence_path
    lines = path.read_bytes().split(b"\n")
    # A torn last line (the write was cut) is not counted.
    path.write_bytes(b"\n".join(lines[:4]) + b"\n" + lines[4][:30])
    assert verify_evidence_file(path) == 4
    # A changed record is reported, with its index.
    tampered = lines[2].replace(b'"committed"', b'"skipped"')
    path.write_bytes(b"\n".join([*lines[:2], tampered, *lines[3:]]))
    with pytest.raises(EvidenceError, match="evidence record 2: payload does not match"):
        verify_evidence_file(path)
    path.write_bytes(b"\n".join([lines[0], b"not json", *lines[2:]]))
    with pytest.raises(EvidenceError, match="evidence record 1: not an evidence record"):
        verify_evidence_file(path)
    # The right file with the wrong key: the chain does not even start.
    path.write_bytes(b"\n".join(lines))
    assert verify_evidence_file(path) == 6
    with pytest.raises(EvidenceError, match="evidence record 0: does not link"):
        verify_evidence_file(path, b"another key")


@pytest.mark.parametrize("mode", list(Mode))
def test_status_answers_while_a_long_gate_runs(tmp_path: Path, mode: Mode) -> None:
    gates = [
        GateSpec("quick", duration_s=10),
        GateSpec("long", deps=("quick",), duration_s=6 * 3600),
        GateSpec("after", deps=("long",), duration_s=10),
    ]
    runner = PrpRunner(
        mode, PrpConfig(), profile_path=write_profile(tmp_path), evidence_dir=tmp_path
    )
    seen: list[str] = []

    async def probe() -> None:
        # Polling the synchronous status, as an MCP client does (virtual seconds).
        while "long" not in runner.status().active_gates:  # noqa: ASYNC110
            await asyncio.sleep(1.0)
        status = runner.status()
        stats = runner.statistics()
        seen.append("status")
        assert status.running
        assert status.active_gates == ("long",)
        assert status.committed_gates == ("quick",)
        assert status.queue_depth == 1  # "after"
        assert stats.active_gates == 1 and stats.gates_committed == 1

    async def scenario() -> None:
        probing = asyncio.ensure_future(probe())
        result = await runner.run(gates)
        seen.append("run finished")
        await probing
        assert result.committed == ("quick", "long", "after")

    virtual_time.run(scenario())
    # The status was answered before the long gate committed, hence while it ran.
    assert seen == ["status", "run finished"]
    status = runner.status()
    assert not status.running and status.committed_gates == ("quick", "long", "after")


def test_a_second_concurrent_run_is_refused(tmp_path: Path) -> None:
    runner = PrpRunner(
        Mode.POOLED, PrpConfig(), profile_path=write_profile(tmp_path), evidence_dir=tmp_path
    )

    async def scenario() -> None:
        first = asyncio.ensure_future(runner.run([GateSpec("a", duration_s=5)]))
        await asyncio.sleep(1)
        with pytest.raises(RuntimeError, match="already running"):
            await runner.run([GateSpec("b")])
        await first

    virtual_time.run(scenario())


def test_statistics_are_frozen_snapshots(tmp_path: Path) -> None:
    runner = PrpRunner(
        Mode.POOLED, PrpConfig(1, 3, 2), profile_path=write_profile(tmp_path), evidence_dir=tmp_path
    )
    before = runner.statistics()
    virtual_time.run(runner.run(chain(8)))
    after = runner.statistics()
    assert before.runs_finished == 0 and after.runs_finished == 1
    assert after.gates_committed == 8 and after.evidence_records == 8
    assert after.approvals_decided == 8 and after.approval_batches == 2
    assert 1 <= after.spool_concurrency <= 3 and after.spool_concurrency_peak == 3
    with pytest.raises(AttributeError):
        after.gates_committed = 0  # type: ignore[misc]  # frozen


def test_adaptive_concurrency_stays_within_its_bounds() -> None:
    control = AdaptiveConcurrency(2, 5, batch_size=2)
    for _ in range(10):
        control.on_completed(approval_queue_depth=0)
    assert control.current == 5 and control.peak == 5
    control.on_completed(approval_queue_depth=3)  # backpressure: no growth
    control.on_approval_queued(approval_queue_depth=3)
    assert control.current == 4
    control.on_approval_queued(approval_queue_depth=2)  # one batch waiting is no backpressure
    assert control.current == 4
    control.on_timeout()
    assert control.current == 2
    control.on_timeout()
    control.on_approval_queued(approval_queue_depth=9)
    assert control.current == 2
    stats = control.statistics()
    assert (stats.base, stats.maximum, stats.grows, stats.shrinks) == (2, 5, 3, 2)
