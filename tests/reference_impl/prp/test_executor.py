"""The concurrent executor: deterministic backoff, adaptive timeouts, reuse within a cycle."""

from __future__ import annotations

import asyncio

import pytest

from reference_impl import virtual_time
from reference_impl.prp import (
    ConcurrentExecutor,
    ExecutorPolicy,
    TaskFailedError,
    TransientError,
)


class Flaky:
    """Fails transiently ``failures`` times, then returns ``value`` after ``duration_s``."""

    def __init__(self, failures: int, duration_s: float = 1.0, value: str = "ok") -> None:
        self.failures = failures
        self.duration_s = duration_s
        self.value = value
        self.calls: list[float] = []

    async def __call__(self) -> str:
        self.calls.append(asyncio.get_running_loop().time())
        await asyncio.sleep(self.duration_s)
        if len(self.calls) <= self.failures:
            raise TransientError(f"attempt {len(self.calls)}")
        return self.value


def test_backoff_is_exponential_with_seeded_jitter() -> None:
    policy = ExecutorPolicy(backoff_base_s=1.0, backoff_factor=2.0, jitter_ratio=0.5, seed=7)
    executor = ConcurrentExecutor(policy)
    delays = [executor.backoff_s("task", r) for r in (1, 2, 3, 4)]
    for retry, delay in enumerate(delays, start=1):
        base = 2.0 ** (retry - 1)
        assert base <= delay < base * 1.5
    assert delays == [ConcurrentExecutor(policy).backoff_s("task", r) for r in (1, 2, 3, 4)]
    other_seed = ConcurrentExecutor(ExecutorPolicy(jitter_ratio=0.5, seed=8))
    assert delays != [other_seed.backoff_s("task", r) for r in (1, 2, 3, 4)]
    capped = ConcurrentExecutor(ExecutorPolicy(backoff_max_s=3.0, jitter_ratio=0.0))
    assert capped.backoff_s("task", 10) == 3.0


def test_transient_failures_are_retried_after_the_backoff() -> None:
    executor = ConcurrentExecutor(ExecutorPolicy(max_attempts=3, seed=1))
    flaky = Flaky(failures=2, duration_s=1.0)
    assert virtual_time.run(executor.run("lint", "k", flaky)) == "ok"
    first, second, third = flaky.calls
    assert second - first == pytest.approx(1.0 + executor.backoff_s("k", 1))
    assert third - second == pytest.approx(1.0 + executor.backoff_s("k", 2))
    stats = executor.statistics()
    assert (stats.attempts, stats.retries, stats.failures) == (3, 2, 0)


def test_exhausted_retries_raise_task_failed_with_the_last_cause() -> None:
    executor = ConcurrentExecutor(ExecutorPolicy(max_attempts=2))
    with pytest.raises(TaskFailedError, match=r"'k' \(lint\) failed 2 time") as caught:
        virtual_time.run(executor.run("lint", "k", Flaky(failures=5)))
    assert isinstance(caught.value.__cause__, TransientError)
    assert str(caught.value.__cause__) == "attempt 2"
    assert executor.statistics().failures == 1


def test_other_errors_are_not_retried() -> None:
    executor = ConcurrentExecutor()
    calls = 0

    async def broken() -> str:
        nonlocal calls
        calls += 1
        raise KeyError("bug")

    with pytest.raises(KeyError):
        virtual_time.run(executor.run("lint", "k", broken))
    assert calls == 1


def test_the_timeout_adapts_to_the_classes_p95_within_bounds() -> None:
    policy = ExecutorPolicy(
        timeout_min_s=2.0, timeout_max_s=100.0, timeout_headroom=1.5, min_samples=5
    )
    executor = ConcurrentExecutor(policy)
    assert executor.timeout_for("tests") == 100.0  # too few samples yet

    async def durations(values: list[float]) -> None:
        for i, value in enumerate(values):
            await executor.run("tests", f"t{i}", Flaky(0, value))

    virtual_time.run(durations([10.0] * 19))
    assert executor.timeout_for("tests") == pytest.approx(15.0)
    executor.record_sample("tests", 40.0)
    # p95 by nearest rank of 20 samples is the 19th: 10 s; with headroom, 15 s.
    assert executor.timeout_for("tests") == pytest.approx(15.0)
    executor.record_sample("tests", 40.0)
    assert executor.timeout_for("tests") == pytest.approx(60.0)
    assert executor.timeout_for("lint") == 100.0  # per class
    for value in (0.1, 0.1, 0.1, 0.1, 0.1):
        executor.record_sample("fast", value)
    assert executor.timeout_for("fast") == 2.0  # the lower bound
    for value in (500.0,) * 5:
        executor.record_sample("slow", value)
    assert executor.timeout_for("slow") == 100.0  # the upper bound
    assert dict(executor.statistics().class_timeouts_s)["tests"] == pytest.approx(60.0)


def test_an_attempt_past_the_adapted_timeout_is_retried() -> None:
    executor = ConcurrentExecutor(
        ExecutorPolicy(timeout_min_s=1.0, timeout_max_s=100.0, min_samples=3, max_attempts=2)
    )
    for _ in range(3):
        executor.record_sample("tests", 10.0)
    slow_once = Flaky(0, 30.0)

    async def scenario() -> str:
        return await executor.run("tests", "k", slow_once)

    with pytest.raises(TaskFailedError) as caught:
        virtual_time.run(scenario())
    assert isinstance(caught.value.__cause__, TimeoutError)
    assert executor.statistics().timeouts == 2


def test_results_are_reused_within_a_cycle_only() -> None:
    executor = ConcurrentExecutor()
    work = Flaky(0, 5.0, value="v")

    async def scenario() -> list[str]:
        # Three concurrent asks of one key: one execution.
        together = await asyncio.gather(*(executor.run("c", "key", work) for _ in range(3)))
        again = await executor.run("c", "key", work)
        executor.new_cycle()
        fresh = await executor.run("c", "key", work)
        return [*together, again, fresh]

    assert virtual_time.run(scenario()) == ["v"] * 5
    assert len(work.calls) == 2
    stats = executor.statistics()
    assert (stats.submitted, stats.executed, stats.reused, stats.cycle) == (5, 2, 3, 1)


def test_a_failure_is_shared_with_waiters_but_not_kept() -> None:
    executor = ConcurrentExecutor(ExecutorPolicy(max_attempts=1))
    failing = Flaky(failures=1, duration_s=1.0)

    async def scenario() -> str:
        results = await asyncio.gather(
            executor.run("c", "key", failing),
            executor.run("c", "key", failing),
            return_exceptions=True,
        )
        assert all(isinstance(r, TaskFailedError) for r in results)
        return await executor.run("c", "key", failing)  # runs again, and succeeds

    assert virtual_time.run(scenario()) == "ok"
    assert len(failing.calls) == 2


def test_without_reuse_every_ask_runs() -> None:
    executor = ConcurrentExecutor(reuse_results=False)
    work = Flaky(0, 1.0)

    async def scenario() -> None:
        for _ in range(3):
            await executor.run("c", "key", work)

    virtual_time.run(scenario())
    assert len(work.calls) == 3


def test_a_nonsense_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="timeout_min_s <= timeout_max_s"):
        ExecutorPolicy(timeout_min_s=10.0, timeout_max_s=5.0)
    with pytest.raises(ValueError, match="must be positive"):
        ExecutorPolicy(max_attempts=0)
