"""Each guarantee of the graph runner's docstring, as a test."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import hashlib
import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_impl.events import canonical_json
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


# -- The runner's fast paths: each one proved against what it replaces ---------------------


def expected_states(spec: GraphSpec, nodes: GraphNodes, run_id: str) -> list[PRPState]:
    """Every snapshot of one run, by the definition: dataclasses.replace, one node after another."""

    async def main() -> list[PRPState]:
        state = PRPState(run_id)
        states = [state]
        planned = await nodes.strategy(state)
        state = dataclasses.replace(
            planned, run_id=run_id, step=1, phase=GraphPhase.STRATEGY, checkpoint=True
        )
        states.append(state)
        plan = state
        for unit in range(spec.build_units):
            artifact = await nodes.build(plan, unit)
            state = dataclasses.replace(
                state,
                step=state.step + 1,
                phase=GraphPhase.BUILD,
                artifacts=(*state.artifacts, artifact),
                checkpoint=unit == spec.build_units - 1,
            )
            states.append(state)
        built = state
        for sample in range(spec.evaluation_samples):
            scores = (*state.scores, await nodes.evaluate(built, sample))
            state = dataclasses.replace(
                state,
                step=state.step + 1,
                phase=GraphPhase.EVALUATION,
                scores=scores,
                confidence=nodes.confidence(scores),
                checkpoint=False,
            )
            states.append(state)
        states.append(
            dataclasses.replace(state, step=state.step + 1, phase=GraphPhase.DONE, checkpoint=True)
        )
        return states

    return asyncio.run(main())


def digest_of(states: list[PRPState]) -> str:
    """The checkpoint digest by its definition."""
    digest = hashlib.sha256()
    for state in states:
        if state.checkpoint:
            digest.update(canonical_json(state.as_json()) + b"\n")
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class TaggedState(PRPState):
    """A node's own subclass of the state: the runner must keep it."""

    tag: str = ""


def tagging_nodes(spec: GraphSpec) -> GraphNodes:
    base = default_nodes(spec)

    async def strategy(state: PRPState) -> PRPState:
        planned = await base.strategy(state)
        fields = {f.name: getattr(planned, f.name) for f in dataclasses.fields(PRPState)}
        return TaggedState(**fields, tag="mine")

    return GraphNodes(strategy, base.build, base.evaluate)


@settings(max_examples=60, deadline=None)
@given(
    units=st.integers(0, 4),
    samples=st.integers(0, 4),
    max_concurrent=st.integers(1, 3),
    mode=st.sampled_from(list(Mode)),
    tagged=st.booleans(),
)
def test_every_snapshot_is_the_state_its_definition_gives(
    units: int, samples: int, max_concurrent: int, mode: Mode, tagged: bool
) -> None:
    spec = GraphSpec(build_units=units, evaluation_samples=samples)
    nodes = tagging_nodes(spec) if tagged else default_nodes(spec)
    runner = GraphRunner(mode, spec, nodes=nodes, max_concurrent=max_concurrent)
    (final,) = run_graph(runner, "run")

    expected = expected_states(spec, nodes, "run")
    recorded = [s.state for s in runner.history.snapshots()]
    assert recorded == expected
    assert [type(s) for s in recorded] == [type(s) for s in expected]
    assert final == expected[-1]
    assert runner.history.checkpoint_digest() == digest_of(expected)


def test_a_known_run_keeps_its_checkpoint_digest() -> None:
    # Computed by the runner as it was before its checkpoint lines were written without
    # the generic JSON encoder: a digest recorded anywhere stays valid.
    spec = GraphSpec(build_units=2, evaluation_samples=3)
    for mode in Mode:
        runner = GraphRunner(mode, spec)
        run_graph(runner, "run-a", "run-b")
        assert runner.history.checkpoint_digest() == (
            "bab2cfb73fc01592094ae940496ffd3010fec7483f72e099e6405aefeb995794"
        )


class ForeignPhase(enum.Enum):
    """Not a GraphPhase, but with a value: ``as_json`` writes it as it writes a phase."""

    STRATEGY = "strategy"
    ELSEWHERE = "elsewhere"


texts = st.text(alphabet=st.characters(blacklist_categories=()), max_size=12)
floats = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1e300]),
    st.floats(allow_nan=True, allow_infinity=True),
)
# The fields of a checkpoint as the runner makes it: any text, any float.
runner_fields = {
    "run_id": texts,
    "step": st.integers(0, 2**70),
    "phase": st.sampled_from(list(GraphPhase)),
    "strategy": texts,
    "artifacts": st.lists(texts, max_size=3).map(tuple),
    "scores": st.lists(floats, max_size=3).map(tuple),
    "confidence": floats,
    "checkpoint": st.just(True),
}
# Values of other types for any one of those fields: the generic encoder writes them
# (or refuses them).
others = st.one_of(st.integers(-(2**70), 2**70), st.booleans(), st.none(), floats, texts)
odd_fields = {
    "run_id": others,
    "step": st.one_of(st.booleans(), floats, texts),
    "phase": st.sampled_from(list(ForeignPhase)),
    "strategy": others,
    "artifacts": st.lists(others, min_size=1, max_size=3).map(tuple),
    "scores": st.lists(others, min_size=1, max_size=3).map(tuple),
    "confidence": others,
    "checkpoint": st.sampled_from([1, 1.5, "yes"]),
}


@st.composite
def checkpoints(draw: st.DrawFn) -> PRPState:
    fields: dict[str, Any] = {name: draw(strategy) for name, strategy in runner_fields.items()}
    odd = draw(st.sampled_from([None, *odd_fields]))
    if odd is not None:
        fields[odd] = draw(odd_fields[odd])
    return PRPState(**fields)


@settings(max_examples=500, deadline=None)
@given(state=checkpoints())
def test_a_checkpoint_is_digested_as_its_canonical_json(state: PRPState) -> None:
    history = ExecutionHistory(2, 2)
    history.record(PRPState("first"))
    before = history.checkpoint_digest()
    try:
        line = canonical_json(state.as_json()) + b"\n"
    except (TypeError, ValueError) as exc:
        # What the generic encoder refuses (NaN, a lone surrogate) is refused, and
        # nothing is recorded.
        with pytest.raises(type(exc)):
            history.record(state)
        assert (history.recorded, len(history), history.checkpoint_digest()) == (1, 1, before)
        return
    snapshot = history.record(state)
    assert snapshot == Snapshot(1, state)
    # The first state is no checkpoint: the digest covers this one only.
    assert history.checkpoint_digest() == hashlib.sha256(line).hexdigest()


@settings(max_examples=200, deadline=None)
@given(
    flags=st.lists(st.booleans(), max_size=40),
    recent_limit=st.one_of(st.none(), st.integers(1, 6)),
    checkpoint_limit=st.one_of(st.none(), st.integers(1, 4)),
)
def test_the_history_holds_what_its_bounds_say(
    flags: list[bool], recent_limit: int | None, checkpoint_limit: int | None
) -> None:
    evicted: list[Snapshot] = []
    history = ExecutionHistory(recent_limit, checkpoint_limit, on_checkpoint_evicted=evicted.append)
    recorded = [
        Snapshot(seq, PRPState("r", step=seq, checkpoint=flag)) for seq, flag in enumerate(flags)
    ]
    for snapshot in recorded:
        assert history.record(snapshot.state) == snapshot
        # The model: everything, or the first, the last recent_limit and the last
        # checkpoint_limit checkpoints after the first.
        seen = recorded[: snapshot.seq + 1]
        if recent_limit is None:
            held = seen
            kept = sum(s.state.checkpoint for s in seen)
        else:
            checkpoints = [s for s in seen[1:] if s.state.checkpoint]
            if checkpoint_limit is not None:
                checkpoints = checkpoints[-checkpoint_limit:]
            seqs = {0, *(s.seq for s in seen[-recent_limit:]), *(s.seq for s in checkpoints)}
            held = [s for s in seen if s.seq in seqs]
            kept = len(checkpoints) + seen[0].state.checkpoint
        assert history.snapshots() == tuple(held)
        assert len(history) == len(held)
        assert history.checkpoints_kept == kept
    assert history.checkpoints_recorded == sum(flags)
    # Evicted: the oldest checkpoints after the first snapshot, in order.
    later = [s for s in recorded[1:] if s.state.checkpoint]
    if recent_limit is None or checkpoint_limit is None:
        assert evicted == []
    else:
        assert evicted == later[: max(0, len(later) - checkpoint_limit)]
    assert history.checkpoints_evicted == len(evicted)
    assert history.checkpoint_digest() == digest_of([s.state for s in recorded])


def failing_nodes(spec: GraphSpec, phase: GraphPhase, index: int) -> GraphNodes:
    """The default nodes, but the ``phase`` node fails on unit/sample ``index``."""
    base = default_nodes(spec)

    async def strategy(state: PRPState) -> PRPState:
        if phase is GraphPhase.STRATEGY:
            raise RuntimeError("strategy broke")
        return await base.strategy(state)

    async def build(plan: PRPState, unit: int) -> str:
        if phase is GraphPhase.BUILD and unit == index:
            raise RuntimeError(f"unit {unit} broke")
        return await base.build(plan, unit)

    async def evaluate(built: PRPState, sample: int) -> float:
        if phase is GraphPhase.EVALUATION and sample == index:
            raise RuntimeError(f"sample {sample} broke")
        return await base.evaluate(built, sample)

    return GraphNodes(strategy, build, evaluate)


@pytest.mark.parametrize(
    ("units", "samples", "max_concurrent"), [(1, 1, 8), (1, 4, 1), (3, 1, 1), (3, 3, 1)]
)
@pytest.mark.parametrize("phase", [GraphPhase.BUILD, GraphPhase.EVALUATION])
def test_a_phase_run_in_the_runners_task_fails_as_the_pool_would(
    units: int, samples: int, max_concurrent: int, phase: GraphPhase
) -> None:
    """One job, or concurrency 1: no pool, the same state, snapshots and GraphError."""
    spec = GraphSpec(build_units=units, evaluation_samples=samples)
    index = (units if phase is GraphPhase.BUILD else samples) - 1
    outcomes = []
    for mode in Mode:
        runner = GraphRunner(
            mode, spec, nodes=failing_nodes(spec, phase, index), max_concurrent=max_concurrent
        )

        async def main(runner: GraphRunner = runner) -> GraphError:
            caller = asyncio.current_task()
            with pytest.raises(GraphError) as caught:
                await runner.run("run")
            # Nothing was started: the jobs ran in this task, as the pool's one-job path.
            assert asyncio.all_tasks() == {caller}
            return caught.value

        error = asyncio.run(main())
        assert (error.run_id, error.phase, error.index) == ("run", phase, index)
        assert isinstance(error.cause, RuntimeError) and error.__cause__ is error.cause
        outcomes.append(([s.state for s in runner.history.snapshots()], str(error)))
        if mode is Mode.POOLED:
            stats = runner.statistics()
            assert stats.pool is not None
            # Counted as the pool counts its jobs: every job started, the last one failed.
            started = units + (samples if phase is GraphPhase.EVALUATION else 0)
            assert (stats.pool.started, stats.pool.failed) == (started, 1)
            assert (stats.pool.committed, stats.pool.active) == (started - 1, 0)
    (legacy, legacy_error), (pooled, pooled_error) = outcomes
    assert pooled == legacy and pooled_error == legacy_error
    # The snapshots committed before the failure stay: up to the job before it.
    assert pooled[-1].step == (1 + index if phase is GraphPhase.BUILD else 1 + units + index)


def test_one_job_phases_are_counted_as_pool_jobs() -> None:
    spec = GraphSpec(build_units=1, evaluation_samples=1)
    runner = GraphRunner(Mode.POOLED, spec)
    run_graph(runner, "r0", "r1", "r2")
    stats = runner.statistics()
    assert stats.pool is not None
    assert (stats.pool.started, stats.pool.committed, stats.pool.failed) == (6, 6, 0)
    assert (stats.pool.active, stats.pool.queued, stats.pool.cancelled) == (0, 0, 0)
    assert stats.pool.run_total_s >= 0.0
    assert stats.samples_evaluated == 3


@pytest.mark.parametrize("samples", [1, 5])
def test_no_sample_starts_after_an_early_exit_in_the_runners_task(samples: int) -> None:
    # The first sample reaches the threshold: at concurrency 1 (or with one sample)
    # no other one is started, none discarded.
    spec = GraphSpec(build_units=2, evaluation_samples=samples, early_exit_confidence=0.0)
    base = default_nodes(spec)
    started: list[int] = []

    async def evaluate(built: PRPState, sample: int) -> float:
        started.append(sample)
        return await base.evaluate(built, sample)

    runner = GraphRunner(
        Mode.POOLED, spec, nodes=GraphNodes(base.strategy, base.build, evaluate), max_concurrent=1
    )
    (state,) = run_graph(runner, "run")
    stats = runner.statistics()
    assert started == [0] and len(state.scores) == 1
    assert (stats.early_exits, stats.samples_discarded) == (1, 0)
    assert stats.pool is not None and stats.pool.started == 2 + 1


def test_cancelling_a_job_run_in_the_runners_task_is_no_failure() -> None:
    spec = GraphSpec(build_units=1, evaluation_samples=1)
    base = default_nodes(spec)
    entered = asyncio.Event()

    async def build(_plan: PRPState, _unit: int) -> str:
        entered.set()
        await asyncio.Event().wait()
        return "never"

    runner = GraphRunner(Mode.POOLED, spec, nodes=GraphNodes(base.strategy, build, base.evaluate))

    async def main() -> None:
        task = asyncio.ensure_future(runner.run("run"))
        await entered.wait()
        running = runner.statistics().pool
        assert running is not None and running.active == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    stats = runner.statistics()
    assert stats.pool is not None
    assert (stats.pool.started, stats.pool.active, stats.pool.failed) == (1, 0, 0)
    assert stats.pool.committed == 0


@settings(max_examples=50, deadline=None)
@given(
    st.text(max_size=8),
    st.integers(0, 100),
    st.sampled_from(list(GraphPhase)),
    st.lists(st.text(max_size=4), max_size=3).map(tuple),
    st.lists(st.floats(allow_nan=False), max_size=3).map(tuple),
    st.booleans(),
    st.text(max_size=8),
)
def test_with_strategy_is_dataclasses_replace(
    run_id: str,
    step: int,
    phase: GraphPhase,
    artifacts: tuple[str, ...],
    scores: tuple[float, ...],
    checkpoint: bool,
    strategy: str,
) -> None:
    state = PRPState(run_id, step, phase, "old", artifacts, scores, 0.5, checkpoint)
    fast = state.with_strategy(strategy)
    assert type(fast) is PRPState
    assert fast == dataclasses.replace(state, strategy=strategy)
    assert state.strategy == "old", "the state it was made from is unchanged"
    tagged = TaggedState(run_id, step, phase, "old", artifacts, scores, 0.5, checkpoint, tag="t")
    assert tagged.with_strategy(strategy) == TaggedState(
        run_id, step, phase, strategy, artifacts, scores, 0.5, checkpoint, tag="t"
    )
