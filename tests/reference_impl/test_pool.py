"""Each guarantee of the ordered pool's docstring, as a test."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reference_impl.pool import (
    ItemTimeout,
    OrderedPool,
    Outcome,
    OutcomeStatus,
    PoolItemError,
)


class Boom(Exception):
    pass


async def yields(n: int) -> None:
    """Let the loop run ``n`` times: timing jitter without wall-clock sleeps."""
    for _ in range(n):
        await asyncio.sleep(0)


def make_job(
    index: int, delay: int, fail: bool, log: list[tuple[str, int]]
) -> Callable[[], Awaitable[int]]:
    async def job() -> int:
        log.append(("start", index))
        await yields(delay)
        if fail:
            raise Boom(index)
        log.append(("end", index))
        return index * 10

    return job


def sequential_reference(fails: list[bool]) -> tuple[list[int], int | None]:
    committed: list[int] = []
    for index, fail in enumerate(fails):
        if fail:
            return committed, index
        committed.append(index * 10)
    return committed, None


def run_pool(
    delays: list[int], fails: list[bool], concurrency: int, *, timed: bool = False
) -> tuple[list[int], int | None, list[tuple[str, int]]]:
    log: list[tuple[str, int]] = []
    committed: list[int] = []
    error_index: int | None = None

    async def main() -> None:
        nonlocal error_index
        pool: OrderedPool[int] = OrderedPool(concurrency, timed=timed)
        jobs = [make_job(i, d, f, log) for i, (d, f) in enumerate(zip(delays, fails, strict=True))]
        try:
            await pool.run(jobs, lambda index, value: committed.append(value))
        except PoolItemError as exc:
            error_index = exc.index
            cause = exc.cause
            assert isinstance(cause, Boom)
        leftover = asyncio.all_tasks() - {asyncio.current_task()}
        assert not leftover, f"leaked tasks: {leftover}"

    asyncio.run(main())
    return committed, error_index, log


@settings(max_examples=150, deadline=None)
@given(
    # Half the jobs never suspend (delay 0): runs of them take the fast path, and a
    # job that suspends lets the other workers in, which must end it.
    st.lists(st.tuples(st.just(0) | st.integers(1, 12), st.booleans()), max_size=40),
    st.integers(1, 32),
    st.booleans(),
)
@example([(0, False), (3, False), (0, False), (0, False), (0, False)], 2, False)
def test_commits_equal_sequential_loop_under_jitter(
    jobs: list[tuple[int, bool]], concurrency: int, timed: bool
) -> None:
    delays = [d for d, _ in jobs]
    # Failures are rarer than successes, as in real runs. A delay of 0 never
    # suspends: such jobs take the workers' fast path when they finish in order.
    fails = [f and d % 3 == 0 for d, f in jobs]
    committed, error_index, _ = run_pool(delays, fails, concurrency, timed=timed)
    assert (committed, error_index) == sequential_reference(fails)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10), min_size=1, max_size=40), st.integers(1, 8), st.booleans())
def test_never_more_than_concurrency_running(
    delays: list[int], concurrency: int, timed: bool
) -> None:
    _, _, log = run_pool(delays, [False] * len(delays), concurrency, timed=timed)
    running = peak = 0
    starts: list[int] = []
    for kind, index in log:
        if kind == "start":
            running += 1
            starts.append(index)
        else:
            running -= 1
        peak = max(peak, running)
    assert peak <= concurrency
    assert starts == sorted(starts), "jobs start in input order"


def test_commit_happens_as_soon_as_the_head_is_done() -> None:
    """Job 1 is quick, job 0 slow: 1 commits right after 0, before slow job 2 ends."""
    events: list[str] = []

    async def main() -> None:
        gate0 = asyncio.Event()
        gate2 = asyncio.Event()

        async def job0() -> str:
            await gate0.wait()
            return "a"

        async def job1() -> str:
            return "b"

        async def job2() -> str:
            await gate2.wait()
            events.append("job2 done")
            return "c"

        def on_commit(index: int, value: str) -> None:
            events.append(f"commit {index}")
            if index == 1:
                gate2.set()

        async def release() -> None:
            await yields(5)
            assert events == [], "nothing commits while the head is running"
            gate0.set()

        pool: OrderedPool[str] = OrderedPool(3)
        await asyncio.gather(pool.run([job0, job1, job2], on_commit), release())

    asyncio.run(main())
    assert events == ["commit 0", "commit 1", "job2 done", "commit 2"]


def test_fail_fast_cancels_later_jobs_and_waits_for_earlier() -> None:
    cancelled: list[int] = []
    finished: list[int] = []

    async def main() -> None:
        async def slow(index: int) -> int:
            try:
                await yields(50)
            except asyncio.CancelledError:
                cancelled.append(index)
                raise
            finished.append(index)
            return index

        async def fail() -> int:
            await yields(2)
            raise Boom("job 1")

        jobs: list[Callable[[], Awaitable[int]]] = [
            lambda: slow(0),
            fail,
            lambda: slow(2),
            lambda: slow(3),
        ]
        pool: OrderedPool[int] = OrderedPool(4)
        committed: list[int] = []
        with pytest.raises(PoolItemError) as info:
            await pool.run(jobs, lambda i, v: committed.append(i))
        assert info.value.index == 1
        assert committed == [0]
        assert not asyncio.all_tasks() - {asyncio.current_task()}

    asyncio.run(main())
    assert finished == [0], "the job before the failure runs to its end"
    assert sorted(cancelled) == [2, 3], "jobs after the failure are cancelled"


def test_earlier_failure_wins_even_when_it_happens_later() -> None:
    async def main() -> None:
        async def late_fail() -> int:
            await yields(20)
            raise Boom("first in input order")

        async def early_fail() -> int:
            raise Boom("first in time")

        pool: OrderedPool[int] = OrderedPool(2)
        with pytest.raises(PoolItemError) as info:
            await pool.run([late_fail, early_fail])
        assert info.value.index == 0
        assert str(info.value.cause) == "first in input order"

    asyncio.run(main())


def test_settled_mode_commits_every_outcome_in_order() -> None:
    async def main() -> list[Outcome[int]]:
        async def job(i: int) -> int:
            await yields(random.Random(i).randint(0, 10))
            if i % 3 == 1:
                raise Boom(i)
            return i

        outcomes: list[Outcome[int]] = []
        pool: OrderedPool[int] = OrderedPool(4, fail_fast=False)
        run = await pool.run_settled([lambda i=i: job(i) for i in range(10)], outcomes.append)
        assert run.committed == 10 and run.failed == 3
        return outcomes

    outcomes = asyncio.run(main())
    assert [o.index for o in outcomes] == list(range(10))
    assert [o.status for o in outcomes] == [
        OutcomeStatus.FAILED if i % 3 == 1 else OutcomeStatus.OK for i in range(10)
    ]
    assert [o.value for o in outcomes if o.status is OutcomeStatus.OK] == [0, 2, 3, 5, 6, 8, 9]


def test_item_timeout_is_a_failure_with_its_index() -> None:
    async def main() -> None:
        never = asyncio.Event()

        async def hang() -> int:
            await never.wait()
            return 0

        async def quick() -> int:
            return 1

        pool: OrderedPool[int] = OrderedPool(2, item_timeout_s=0.01)
        with pytest.raises(PoolItemError) as info:
            await pool.run([quick, hang, quick])
        assert info.value.index == 1
        assert isinstance(info.value.cause, ItemTimeout)

        settled: OrderedPool[int] = OrderedPool(2, fail_fast=False, item_timeout_s=0.01)
        outcomes: list[Outcome[int]] = []
        await settled.run_settled([quick, hang], outcomes.append)
        assert [o.status for o in outcomes] == [OutcomeStatus.OK, OutcomeStatus.TIMED_OUT]

    asyncio.run(main())


@pytest.mark.parametrize("concurrency", [1, 4])
def test_caller_cancellation_cancels_every_job_and_leaks_nothing(concurrency: int) -> None:
    started: list[int] = []
    cancelled: list[int] = []

    async def main() -> None:
        never = asyncio.Event()

        async def hang(i: int) -> int:
            started.append(i)
            try:
                await never.wait()
            except asyncio.CancelledError:
                cancelled.append(i)
                raise
            return i

        pool: OrderedPool[int] = OrderedPool(concurrency)
        runner = asyncio.create_task(pool.run([lambda i=i: hang(i) for i in range(10)]))
        await yields(5)
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        assert not asyncio.all_tasks() - {asyncio.current_task()}
        assert pool.statistics().active == 0

    asyncio.run(main())
    assert sorted(cancelled) == sorted(started) == list(range(concurrency))


def test_concurrency_one_runs_in_the_callers_task() -> None:
    async def main() -> None:
        caller = asyncio.current_task()
        seen: list[asyncio.Task[object] | None] = []

        async def job() -> int:
            seen.append(asyncio.current_task())
            return 1

        await OrderedPool[int](1).run([job, job, job])
        assert seen == [caller] * 3

    asyncio.run(main())


def test_timings_measure_head_of_line_commit_wait() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    async def main() -> None:
        gate = asyncio.Event()

        async def slow() -> int:
            await gate.wait()
            now[0] = 5.0
            return 0

        async def fast() -> int:
            now[0] = 2.0
            return 1

        async def release() -> None:
            await yields(3)
            gate.set()

        pool: OrderedPool[int] = OrderedPool(2, record_timings=True, clock=clock)
        run, _ = await asyncio.gather(pool.run([slow, fast]), release())
        slow_t, fast_t = run.timings
        assert (slow_t.run_s, slow_t.commit_wait_s) == (5.0, 0.0)
        assert fast_t.run_s == 2.0
        assert fast_t.commit_wait_s == 3.0, "the fast job waited from 2.0 to 5.0 for the head"
        stats = pool.statistics()
        assert stats.committed == 2 and stats.commit_wait_max_s == 3.0
        assert stats.active == 0 and stats.queued == 0

    asyncio.run(main())


def test_statistics_report_levels_while_running() -> None:
    async def main() -> None:
        gate = asyncio.Event()

        async def job() -> int:
            await gate.wait()
            return 0

        pool: OrderedPool[int] = OrderedPool(3)
        runner = asyncio.create_task(pool.run([job] * 10))
        await yields(3)
        stats = pool.statistics()
        assert (stats.active, stats.queued) == (3, 7)
        gate.set()
        await runner
        assert pool.statistics().committed == 10

    asyncio.run(main())


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        OrderedPool[int](0)
    with pytest.raises(ValueError, match="item_timeout_s"):
        OrderedPool[int](1, item_timeout_s=0)


def test_a_slow_head_bounds_how_far_the_pool_runs_ahead() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        started: list[int] = []

        def job(index: int) -> Callable[[], Awaitable[int]]:
            async def run() -> int:
                started.append(index)
                if index == 0:
                    await gate.wait()
                return index

            return run

        pool: OrderedPool[int] = OrderedPool(4, max_ahead=16)
        committed: list[int] = []
        runner = asyncio.create_task(
            pool.run((job(i) for i in range(20_000)), lambda i, v: committed.append(v))
        )
        await yields(200)
        assert len(started) == 16, "no job starts more than max_ahead past the commit head"
        assert committed == []
        gate.set()
        await runner
        assert committed == list(range(20_000))

    asyncio.run(main())


def test_a_failure_releases_workers_held_by_the_run_ahead_bound() -> None:
    async def main() -> None:
        gate = asyncio.Event()

        async def head() -> int:
            await gate.wait()
            raise Boom("head")

        async def quick() -> int:
            return 1

        pool: OrderedPool[int] = OrderedPool(2, max_ahead=4)
        runner = asyncio.create_task(pool.run([head] + [quick] * 100))
        await yields(20)
        gate.set()
        with pytest.raises(PoolItemError) as info:
            await runner
        assert info.value.index == 0
        assert not asyncio.all_tasks() - {asyncio.current_task()}

    asyncio.run(main())


def test_a_single_job_batch_runs_in_the_callers_task_and_small_batches_get_few_workers() -> None:
    async def main() -> None:
        caller = asyncio.current_task()
        seen: list[asyncio.Task[object] | None] = []

        async def job() -> int:
            seen.append(asyncio.current_task())
            await asyncio.sleep(0)
            return 1

        await OrderedPool[int](8).run([job])
        assert seen == [caller]
        seen.clear()
        await OrderedPool[int](8).run([job, job, job])
        assert len(set(seen)) == 3
        assert caller not in seen

    asyncio.run(main())


def test_a_one_job_generator_runs_in_the_callers_task() -> None:
    async def main() -> None:
        caller = asyncio.current_task()
        seen: list[asyncio.Task[object] | None] = []

        async def job() -> int:
            seen.append(asyncio.current_task())
            return 1

        assert await OrderedPool[int](8).map(job for _ in range(1)) == [1]
        assert seen == [caller]

    asyncio.run(main())


def test_time_is_measured_only_when_asked_and_counts_are_kept_either_way() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0  # every read one second later
        return now[0]

    async def job() -> int:
        await asyncio.sleep(0)
        return 1

    async def main() -> None:
        plain: OrderedPool[int] = OrderedPool(4, clock=clock)
        await plain.run([job] * 12)
        stats = plain.statistics()
        assert (stats.started, stats.committed, stats.failed) == (12, 12, 0)
        assert stats.run_total_s == stats.queue_wait_total_s == 0.0
        assert now[0] == 0.0, "an untimed pool never reads its clock"
        timed: OrderedPool[int] = OrderedPool(4, clock=clock, timed=True)
        await timed.run([job] * 12)
        stats = timed.statistics()
        assert stats.committed == 12 and stats.run_total_s >= 12.0
        assert stats.queue_wait_total_s > 0.0

    asyncio.run(main())


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_pool_reused_for_many_batches_counts_every_one(concurrency: int) -> None:
    async def quick(i: int) -> int:
        return i

    async def main() -> None:
        pool: OrderedPool[int] = OrderedPool(concurrency)
        for size in (5, 0, 7):
            assert await pool.map([lambda i=i: quick(i) for i in range(size)]) == list(range(size))
        stats = pool.statistics()
        assert (stats.started, stats.committed, stats.active, stats.queued) == (12, 12, 0, 0)

    asyncio.run(main())


class BadInput(Exception):
    pass


@pytest.mark.parametrize("concurrency", [1, 4])
def test_counts_stay_exact_when_the_fast_path_ends_in_an_error(concurrency: int) -> None:
    """The fast path moves the head when it takes the next job: an input that raises
    right after a commit, a commit callback that raises, and a cancelled job each
    leave the committed count equal to the commits made."""

    async def quick() -> int:
        return 1

    def failing_input() -> Iterator[Callable[[], Awaitable[int]]]:
        yield from [quick] * 6
        raise BadInput("the seventh job cannot be read")

    async def main() -> None:
        committed: list[int] = []
        pool: OrderedPool[int] = OrderedPool(concurrency)
        with pytest.raises(BadInput):
            await pool.run(failing_input(), lambda index, _value: committed.append(index))
        assert committed == list(range(6))
        stats = pool.statistics()
        assert (stats.started, stats.committed) == (6, 6)

        def refuse_third(index: int, _value: int) -> None:
            if index == 3:
                raise BadInput("commit 3 refused")
            committed.append(index)

        committed.clear()
        pool = OrderedPool(concurrency)
        with pytest.raises(BadInput):
            await pool.run([quick] * 10, refuse_third)
        assert committed == [0, 1, 2]
        assert pool.statistics().committed == 3, "the refused commit is not counted"

        stuck = asyncio.Event()

        async def hangs() -> int:
            await stuck.wait()
            return 1

        committed.clear()
        pool = OrderedPool(concurrency)
        runner = asyncio.create_task(
            pool.run([quick] * 5 + [hangs] + [quick] * 5, lambda i, _v: committed.append(i))
        )
        for _ in range(20):
            await asyncio.sleep(0)
        assert committed == list(range(5))
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        assert pool.statistics().committed == 5, "the cancelled job is not committed"

    asyncio.run(main())


@pytest.mark.parametrize("concurrency", [1, 4])
def test_statistics_taken_by_a_job_on_the_fast_path_see_it_running(concurrency: int) -> None:
    seen: dict[str, int] = {}
    pool: OrderedPool[int] = OrderedPool(concurrency)

    async def quick() -> int:
        return 1

    async def looks() -> int:
        stats = pool.statistics()
        seen.update(started=stats.started, committed=stats.committed, active=stats.active)
        return 1

    async def main() -> None:
        await pool.run([quick] * 5 + [looks] + [quick] * 4)

    asyncio.run(main())
    assert seen == {"started": 6, "committed": 5, "active": 1}
    assert pool.statistics().committed == 10
