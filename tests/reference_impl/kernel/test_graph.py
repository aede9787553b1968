"""Each guarantee of the graph runner's docstring, as a test."""

from __future__ import annotations

import asyncio
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_impl.kernel.graph import (
    ExecutionHistory,
    GraphError,
    GraphNodes,
    GraphPhase,
    GraphRunner,
    GraphSpec,
    PRPState,
    Snapshot,
    default_nodes,
)
from reference_impl.mode import Mode


async def yields(n: int) -> None:
    """Let the loop run ``n`` times: timing jitter without wall-clock sleeps."""
    for _ in range(n):
        await asyncio.sleep(0)


def jittery_nodes(spec: GraphSpec, jitter_seed: int, *, fail_unit: int | None = None) -> GraphNodes:
    """The default nodes, each delayed by a random number of loop turns."""
    rng = random.Random(jitter_seed)
    base = default_nodes(spec)

    async def strategy(state: PRPState) -> PRPState:
        await yields(rng.randint(0, 3))
        return await base.strategy(state)

    async def build(plan: PRPState, unit: int) -> str:
        await yields(rng.randint(0, 6))
        if unit == fail_unit:
            raise RuntimeError(f"unit {unit} broke")
        return await base.build(plan, unit)

    async def evaluate(built: PRPState, sample: int) -> float:
        await yields(rng.randint(0, 6))
        return await base.evaluate(built, sample)

    return GraphNodes(strategy, build, evaluate)


def run_graph(runner: GraphRunner, *run_ids: str) -> list[PRPState]:
    async def main() -> list[PRPState]:
        states = [await runner.run(run_id) for run_id in run_ids]
        assert asyncio.all_tasks() == {asyncio.current_task()}
        return states

    return asyncio.run(main())


@settings(max_examples=100, deadline=None)
@given(
    units=st.integers(0, 10),
    samples=st.integers(0, 10),
    max_concurrent=st.integers(1, 12),
    jitter_seed=st.integers(0, 2**16),
)
def test_pooled_reaches_the_legacy_state_through_the_same_snapshots(
    units: int, samples: int, max_concurrent: int, jitter_seed: int
) -> None:
    spec = GraphSpec(build_units=units, evaluation_samples=samples)
    legacy = GraphRunner(Mode.LEGACY, spec, nodes=jittery_nodes(spec, jitter_seed))
    pooled = GraphRunner(
        Mode.POOLED,
        spec,
        nodes=jittery_nodes(spec, jitter_seed + 1),
        max_concurrent=max_concurrent,
        history_limit=10_000,
    )
    legacy_states = run_graph(legacy, "run-a", "run-b")
    pooled_states = run_graph(pooled, "run-a", "run-b")

    assert pooled_states == legacy_states
    final = legacy_states[-1]
    assert final.phase is GraphPhase.DONE and final.checkpoint
    assert (len(final.artifacts), len(final.scores)) == (units, samples)
    assert final.step == 2 + units + samples  # step 0 is the initial state
    assert [s.state for s in pooled.history.snapshots()] == [
        s.state for s in legacy.history.snapshots()
    ]
    assert pooled.history.checkpoint_digest() == legacy.history.checkpoint_digest()


def test_legacy_history_grows_with_every_step() -> None:
    spec = GraphSpec(build_units=3, evaluation_samples=4)
    runner = GraphRunner(Mode.LEGACY, spec)
    run_graph(runner, *(f"r{i}" for i in range(5)))
    steps_per_run = 3 + 3 + 4
    stats = runner.statistics()
    assert stats.history_length == stats.snapshots_recorded == 5 * steps_per_run
    assert [s.seq for s in runner.history.snapshots()] == list(range(5 * steps_per_run))
    assert stats.checkpoints_kept == stats.checkpoints_recorded == 5 * 3
    assert stats.pool is None


def test_pooled_history_keeps_first_checkpoints_and_last() -> None:
    spec = GraphSpec(build_units=3, evaluation_samples=4)
    runner = GraphRunner(Mode.POOLED, spec, history_limit=2, checkpoint_limit=None)
    run_graph(runner, "r0", "r1", "r2")
    snapshots = runner.history.snapshots()
    first, last = snapshots[0], snapshots[-1]
    assert first.seq == 0 and first.state == PRPState("r0")
    assert last.seq == runner.history.recorded - 1
    assert last.state.phase is GraphPhase.DONE and last.state.run_id == "r2"
    checkpoints = [s for s in snapshots if s.state.checkpoint]
    # Three per run: the plan, the built state, the final state.
    assert [(s.state.run_id, s.state.phase) for s in checkpoints] == [
        (run_id, phase)
        for run_id in ("r0", "r1", "r2")
        for phase in (GraphPhase.STRATEGY, GraphPhase.BUILD, GraphPhase.DONE)
    ]
    non_checkpoints = [s for s in snapshots if not s.state.checkpoint]
    assert non_checkpoints[0] == first
    assert len(non_checkpoints) <= 1 + 2
    assert len(snapshots) == len(runner.history)


def test_evicted_checkpoints_are_counted_handed_over_and_digested() -> None:
    spec = GraphSpec(build_units=1, evaluation_samples=1)
    evicted: list[Snapshot] = []
    pooled = GraphRunner(
        Mode.POOLED, spec, history_limit=4, checkpoint_limit=5, on_checkpoint_evicted=evicted.append
    )
    legacy = GraphRunner(Mode.LEGACY, spec)
    run_ids = [f"r{i}" for i in range(10)]
    run_graph(pooled, *run_ids)
    run_graph(legacy, *run_ids)
    stats = pooled.statistics()
    assert stats.checkpoints_recorded == 30
    assert stats.checkpoints_kept == 5
    assert stats.checkpoints_evicted == len(evicted) == 25
    assert all(s.state.checkpoint for s in evicted)
    assert [s.seq for s in evicted] == sorted(s.seq for s in evicted)
    # The digest still covers every checkpoint, evicted ones included.
    assert pooled.history.checkpoint_digest() == legacy.history.checkpoint_digest()


def test_execution_history_bound_holds_at_every_step() -> None:
    history = ExecutionHistory(3, 2)
    for step in range(50):
        history.record(PRPState("r", step=step, checkpoint=step % 4 == 0))
        assert len(history) <= 1 + 3 + 2
        held = history.snapshots()
        assert held[0].seq == 0 and held[-1].seq == step
    with pytest.raises(ValueError, match="recent_limit"):
        ExecutionHistory(0)
    with pytest.raises(ValueError, match="checkpoint_limit"):
        ExecutionHistory(1, 0)


@pytest.mark.parametrize("max_concurrent", [1, 3, 8])
def test_early_exit_stops_at_the_same_sample_every_run(max_concurrent: int) -> None:
    spec = GraphSpec(build_units=2, evaluation_samples=64, early_exit_confidence=0.9)
    counted: set[int] = set()
    discarded = 0
    for jitter_seed in range(8):
        runner = GraphRunner(
            Mode.POOLED,
            spec,
            nodes=jittery_nodes(spec, jitter_seed),
            max_concurrent=max_concurrent,
        )
        (state,) = run_graph(runner, "run")
        counted.add(len(state.scores))
        stats = runner.statistics()
        assert stats.early_exits == 1
        assert state.confidence >= 0.9
        discarded += stats.samples_discarded
        # Samples started before the decision ran to their end and were discarded.
        assert stats.pool is not None
        assert stats.pool.started == spec.build_units + len(state.scores) + stats.samples_discarded
    assert len(counted) == 1
    (samples,) = counted
    assert 1 <= samples < 64
    # The exit is at the first sample whose fold reaches the threshold.
    (legacy_state,) = run_graph(GraphRunner(Mode.LEGACY, spec), "run")
    confidences = [1.0 - 1.0 / (1.0 + math.fsum(legacy_state.scores[:n])) for n in range(1, 65)]
    assert samples == next(n for n, c in enumerate(confidences, 1) if c >= 0.9)
    if max_concurrent == 1:
        assert discarded == 0


def test_legacy_ignores_early_exit() -> None:
    spec = GraphSpec(build_units=1, evaluation_samples=40, early_exit_confidence=0.5)
    (state,) = run_graph(GraphRunner(Mode.LEGACY, spec), "run")
    assert len(state.scores) == 40


@pytest.mark.parametrize("mode", list(Mode))
def test_a_failing_node_stops_the_run_with_its_place(mode: Mode) -> None:
    spec = GraphSpec(build_units=6, evaluation_samples=3)
    runner = GraphRunner(mode, spec, nodes=jittery_nodes(spec, 3, fail_unit=2), max_concurrent=4)

    async def main() -> GraphError:
        with pytest.raises(GraphError) as caught:
            await runner.run("run")
        assert asyncio.all_tasks() == {asyncio.current_task()}
        return caught.value

    error = asyncio.run(main())
    assert (error.run_id, error.phase, error.index) == ("run", GraphPhase.BUILD, 2)
    assert isinstance(error.cause, RuntimeError)
    last = runner.history.snapshots()[-1].state
    assert len(last.artifacts) == 2


def test_bad_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="build_duration_s"):
        GraphSpec(build_duration_s=-1.0)
    with pytest.raises(ValueError, match="build_units"):
        GraphSpec(build_units=-1)
    with pytest.raises(ValueError, match="max_concurrent"):
        GraphRunner(Mode.POOLED, max_concurrent=0)


def test_a_hundred_thousand_steps_stay_within_the_pooled_bounds() -> None:
    spec = GraphSpec(build_units=10, evaluation_samples=12)
    steps_per_run = 3 + 10 + 12
    runs = 100_000 // steps_per_run
    history_limit, checkpoint_limit = 64, 128
    evicted = 0

    def count_evicted(_snapshot: Snapshot) -> None:
        nonlocal evicted
        evicted += 1

    runner = GraphRunner(
        Mode.POOLED,
        spec,
        max_concurrent=4,
        history_limit=history_limit,
        checkpoint_limit=checkpoint_limit,
        on_checkpoint_evicted=count_evicted,
    )
    run_graph(runner, *(f"run-{i}" for i in range(runs)))

    stats = runner.statistics()
    assert stats.snapshots_recorded == runs * steps_per_run == 100_000
    assert stats.history_length <= 1 + history_limit + checkpoint_limit
    assert stats.checkpoints_kept == checkpoint_limit
    assert stats.checkpoints_evicted == evicted == 3 * runs - checkpoint_limit
    snapshots = runner.history.snapshots()
    assert snapshots[0].seq == 0
    assert snapshots[-1].seq == 100_000 - 1
