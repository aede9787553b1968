"""Each guarantee of the kernel scheduler's docstring, as a test."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_impl import virtual_time
from reference_impl.events import DEFAULT_KEY, EventLog, EvidenceChain
from reference_impl.kernel import proofs
from reference_impl.kernel.scheduler import (
    POOLED_HISTORY_LIMIT,
    Scheduler,
    SchedulerError,
    SchedulerResult,
    TaskFailed,
    TaskRecord,
    TaskSpec,
    scheduled_order,
)
from reference_impl.mode import Mode

Outcome = tuple[SchedulerResult, SchedulerError | None]


def run_scheduler(scheduler: Scheduler, tasks: Sequence[TaskSpec]) -> Outcome:
    """Run to the end or to the first failure; also prove no task is left behind."""

    async def main() -> Outcome:
        try:
            result = await scheduler.run(tasks)
            error = None
        except SchedulerError as exc:
            result, error = exc.result, exc
        assert asyncio.all_tasks() == {asyncio.current_task()}
        return result, error

    return asyncio.run(main())


def make_tasks(
    priorities: Sequence[int], durations: Sequence[float], fails: Sequence[bool]
) -> list[TaskSpec]:
    return [
        TaskSpec(f"t{i}", p, d, fails=f, payload=f"payload-{i}")
        for i, (p, d, f) in enumerate(zip(priorities, durations, fails, strict=True))
    ]


def committed_view(result: SchedulerResult) -> tuple[object, ...]:
    return (result.records, result.records_count, result.event_digest, result.evidence_digest)


task_rows = st.lists(
    st.tuples(
        st.integers(0, 3),  # priority
        st.integers(0, 9).map(lambda x: x == 0),  # fails, about one task in ten
    ),
    max_size=20,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=task_rows,
    max_concurrent=st.integers(1, 32),
    window=st.integers(1, 12),
    seed=st.integers(0, 3),
    data=st.data(),
)
def test_pooled_commits_exactly_what_legacy_commits_under_jitter(
    rows: list[tuple[int, bool]], max_concurrent: int, window: int, seed: int, data: st.DataObject
) -> None:
    priorities = [p for p, _ in rows]
    fails = [f for _, f in rows]
    # Durations are drawn independently for each side: timing is jitter, never data.
    duration = st.lists(st.floats(0.0, 1.0), min_size=len(rows), max_size=len(rows))
    legacy_tasks = make_tasks(priorities, data.draw(duration), fails)
    pooled_tasks = make_tasks(priorities, data.draw(duration), fails)
    legacy, legacy_error = run_scheduler(
        Scheduler(
            Mode.LEGACY,
            max_concurrent=max_concurrent,
            window=window,
            seed=seed,
            time_scale=0.0005,
        ),
        legacy_tasks,
    )
    pooled, pooled_error = run_scheduler(
        Scheduler(
            Mode.POOLED,
            max_concurrent=max_concurrent,
            window=window,
            seed=seed,
            time_scale=0.0005,
            history_limit=None,
        ),
        pooled_tasks,
    )

    assert committed_view(pooled) == committed_view(legacy)
    assert pooled.failure == legacy.failure
    if legacy_error is None:
        assert pooled_error is None
    else:
        assert pooled_error is not None
        assert (pooled_error.task_id, pooled_error.index) == (
            legacy_error.task_id,
            legacy_error.index,
        )
        assert isinstance(pooled_error.cause, TaskFailed)
        assert isinstance(legacy_error.cause, TaskFailed)
    # The committed prefix is exactly the sequential order, up to the first failure.
    order = list(scheduled_order(legacy_tasks, seed=seed, window=window))
    expected_prefix = list(itertools.takewhile(lambda t: not t.fails, order))
    assert [r.task_id for r in legacy.records] == [t.task_id for t in expected_prefix]
    assert [r.seq for r in legacy.records] == list(range(len(expected_prefix)))
    if legacy_error is not None:
        assert legacy_error.task_id == order[len(expected_prefix)].task_id
        assert legacy_error.index == len(expected_prefix)
    assert len(pooled.latencies_s) == len(legacy.latencies_s) == len(expected_prefix)


def test_digests_cover_every_committed_record() -> None:
    tasks = make_tasks(range(10), [0.0] * 10, [False] * 10)
    result, error = run_scheduler(Scheduler(Mode.LEGACY, time_scale=0), tasks)
    assert error is None
    chain = EvidenceChain(DEFAULT_KEY)
    log = EventLog()
    for record in result.records:
        chain.append(record.as_json())
        log.commit("task.committed", record.as_json())
    assert result.evidence_digest == chain.digest()
    assert result.event_digest == log.digest()


def test_failure_commits_a_failed_event_after_the_prefix() -> None:
    tasks = [TaskSpec("a", 0, 0.0), TaskSpec("b", 1, 0.0, fails=True), TaskSpec("c", 2, 0.0)]
    for mode in Mode:
        result, error = run_scheduler(Scheduler(mode, time_scale=0), tasks)
        assert error is not None
        assert (error.task_id, error.index) == ("b", 1)
        assert result.failure is not None
        assert (result.failure.task_id, result.failure.error) == ("b", "TaskFailed")
        log = EventLog()
        log.commit("task.committed", result.records[0].as_json())
        log.commit("task.failed", {"task_id": "b", "index": 1, "error": "TaskFailed"})
        assert result.event_digest == log.digest()
        assert [r.task_id for r in result.records] == ["a"]


def test_same_seed_gives_the_same_order_and_another_seed_another() -> None:
    tasks = [TaskSpec(f"t{i}", 0, 0.0) for i in range(40)]

    def order(seed: int) -> list[str]:
        result, _ = run_scheduler(Scheduler(Mode.POOLED, seed=seed, time_scale=0), tasks)
        return [r.task_id for r in result.records]

    assert order(7) == order(7)
    assert order(7) != order(8)
    assert sorted(order(7)) == sorted(order(8))
    assert order(7) == [t.task_id for t in scheduled_order(tasks, seed=7)]


def test_priority_dominates_the_seeded_tie_break() -> None:
    tasks = [TaskSpec(f"t{i}", (i * 7) % 5, 0.0) for i in range(50)]
    for seed in range(4):
        result, _ = run_scheduler(Scheduler(Mode.LEGACY, seed=seed, time_scale=0), tasks)
        priorities = [r.priority for r in result.records]
        assert priorities == sorted(priorities)


def test_priority_orders_tasks_within_a_window_only() -> None:
    tasks = [TaskSpec("late-low", 9, 0.0), TaskSpec("a", 1, 0.0), TaskSpec("urgent", 0, 0.0)]
    result, _ = run_scheduler(Scheduler(Mode.POOLED, window=2, time_scale=0), tasks)
    assert [r.task_id for r in result.records] == ["a", "late-low", "urgent"]
    assert [r.batch for r in result.records] == [0, 0, 1]


def test_batches_are_cut_from_the_window_by_max_concurrent() -> None:
    tasks = [TaskSpec(f"t{i}", i, 0.0) for i in range(10)]
    scheduler = Scheduler(Mode.POOLED, max_concurrent=4, window=6, time_scale=0)
    result, _ = run_scheduler(scheduler, tasks)
    assert [r.batch for r in result.records] == [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    stats = scheduler.statistics()
    assert (stats.batches, stats.windows, stats.tasks_committed) == (3, 2, 10)


def test_legacy_imports_the_proof_module_per_task_pooled_once() -> None:
    tasks = [TaskSpec(f"t{i}", 0, 0.0) for i in range(12)]
    legacy = Scheduler(Mode.LEGACY, time_scale=0)
    pooled = Scheduler(Mode.POOLED, time_scale=0)
    for _ in range(2):
        run_scheduler(legacy, tasks)
        run_scheduler(pooled, tasks)
    assert legacy.statistics().proof_imports == 24
    assert pooled.statistics().proof_imports == 1
    assert legacy.statistics().pool is None
    pool_stats = pooled.statistics().pool
    assert pool_stats is not None and pool_stats.committed == 24


def test_proofs_are_deterministic_and_keyed() -> None:
    first = proofs.make_proof(b"payload", b"key")
    assert first == proofs.make_proof(b"payload", b"key")
    assert first.digest == proofs.make_proof(b"payload", b"other").digest
    assert first.signature != proofs.make_proof(b"payload", b"other").signature
    assert first.digest != proofs.make_proof(b"payload!", b"key").digest
    with pytest.raises(ValueError, match="empty"):
        proofs.make_proof(b"payload", b"")


def test_pooled_history_is_bounded_legacy_is_not() -> None:
    tasks = [TaskSpec(f"t{i}", 0, 0.0) for i in range(30)]
    pooled = Scheduler(Mode.POOLED, history_limit=5, time_scale=0)
    result, _ = run_scheduler(pooled, tasks)
    assert result.records_count == 30
    assert [r.seq for r in result.records] == list(range(25, 30))
    assert pooled.statistics().history_length == 5
    legacy = Scheduler(Mode.LEGACY, time_scale=0)
    result, _ = run_scheduler(legacy, tasks)
    assert len(result.records) == 30 and legacy.statistics().history_length == 30


def test_on_record_sees_every_commit_in_order() -> None:
    tasks = [TaskSpec(f"t{i}", i % 3, 0.0) for i in range(20)]
    seen: list[TaskRecord] = []
    scheduler = Scheduler(Mode.POOLED, history_limit=0, time_scale=0)
    result = asyncio.run(scheduler.run(tasks, on_record=seen.append))
    assert result.records == ()
    assert [r.seq for r in seen] == list(range(20))
    assert len(result.latencies_s) == 20
    assert all(0 <= latency <= result.makespan_s for latency in result.latencies_s)
    assert len(result.service_times_s) == 0


def test_record_timings_keeps_one_service_time_per_commit() -> None:
    tasks = [TaskSpec(f"t{i}", 0, 0.0) for i in range(9)]
    for mode in Mode:
        result, _ = run_scheduler(Scheduler(mode, record_timings=True, time_scale=0), tasks)
        assert len(result.service_times_s) == 9
        assert all(s >= 0 for s in result.service_times_s)


def test_inject_slowdown_changes_nothing_committed() -> None:
    tasks = [TaskSpec(f"t{i}", i % 2, 0.0) for i in range(10)]
    plain, _ = run_scheduler(Scheduler(Mode.POOLED, time_scale=0), tasks)
    slowed, _ = run_scheduler(Scheduler(Mode.POOLED, inject_slowdown=0.5, time_scale=0), tasks)
    assert committed_view(slowed) == committed_view(plain)


@pytest.mark.parametrize("mode", list(Mode))
def test_inject_slowdown_stretches_every_task_by_its_fraction(mode: Mode) -> None:
    # On the virtual clock only the waits count: a 10 % slowdown must show as a
    # 10 % longer makespan and 10 % longer latencies, or a comparison meant to
    # catch it would be validated against a slowdown that is not there.
    tasks = [TaskSpec(f"t{i}", i % 3, 0.5 + (i % 4) * 0.25) for i in range(24)]

    def timings(slowdown: float) -> tuple[float, list[float]]:
        scheduler = Scheduler(mode, max_concurrent=4, inject_slowdown=slowdown)
        result = virtual_time.run(scheduler.run(tasks))
        return result.makespan_s, list(result.latencies_s)

    plain_makespan, plain_latencies = timings(0.0)
    slow_makespan, slow_latencies = timings(0.1)
    assert slow_makespan == pytest.approx(plain_makespan * 1.1, rel=1e-9)
    assert slow_latencies == pytest.approx([x * 1.1 for x in plain_latencies], rel=1e-9)


def test_cancelling_a_pooled_run_leaves_no_task() -> None:
    tasks = [TaskSpec(f"t{i}", 0, 10.0) for i in range(16)]

    async def main() -> None:
        scheduler = Scheduler(Mode.POOLED, time_scale=1.0)
        run = asyncio.ensure_future(scheduler.run(tasks))
        await asyncio.sleep(0.05)  # into the first batch (the tasks' work is 10 s)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        assert asyncio.all_tasks() == {asyncio.current_task()}
        pool_stats = scheduler.statistics().pool
        assert pool_stats is not None and pool_stats.active == 0

    asyncio.run(main())


def test_one_stream_at_a_time() -> None:
    async def main() -> None:
        scheduler = Scheduler(Mode.POOLED, time_scale=0)
        first = asyncio.ensure_future(scheduler.run([TaskSpec("a", 0, 0.0)]))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="already running"):
            await scheduler.run([])
        await first

    asyncio.run(main())


@pytest.mark.parametrize(
    "options",
    [
        {"max_concurrent": 0},
        {"window": 0},
        {"time_scale": -1.0},
        {"history_limit": -1},
        {"inject_slowdown": -0.1},
        {"evidence_key": b""},
    ],
)
def test_bad_configuration_is_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Scheduler(Mode.POOLED, **options)  # type: ignore[arg-type]  # deliberately loose


def test_bad_task_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="duration_s"):
        TaskSpec("t", 0, -1.0)


@pytest.mark.slow
def test_a_hundred_thousand_tasks_stay_within_the_pooled_bounds() -> None:
    total = 100_000
    window = 1024
    pulled = 0
    committed = 0
    max_in_flight = 0

    def stream() -> Iterator[TaskSpec]:
        nonlocal pulled
        for i in range(total):
            pulled += 1
            yield TaskSpec(f"t{i}", i % 7, 0.0)

    def on_record(record: TaskRecord) -> None:
        nonlocal committed, max_in_flight
        committed += 1
        max_in_flight = max(max_in_flight, pulled - committed)

    scheduler = Scheduler(Mode.POOLED, time_scale=0, window=window)
    result = asyncio.run(scheduler.run(stream(), on_record=on_record))

    assert result.records_count == total == committed
    assert len(result.records) == POOLED_HISTORY_LIMIT
    assert result.records[-1].seq == total - 1
    stats = scheduler.statistics()
    assert stats.history_length == POOLED_HISTORY_LIMIT
    assert stats.proof_imports == 1
    # The stream is read one window at a time: never more than a window waits.
    assert max_in_flight <= window
    assert len(result.latencies_s) == total
