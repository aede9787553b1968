"""The ordered bounded pool: overlap the work, commit the results in input order.

Guarantees (each one is a test in ``tests/reference_impl/test_pool.py``):

* **Bound.** At most ``concurrency`` jobs run at once. Jobs are started in input
  order; job *k* is never started before job *k-1*, nor before job
  *k - max_ahead* is committed (default ``max(64, 4 x concurrency)``): a slow
  head of the line never makes the pool read and buffer the whole input.
* **Commit order.** Results are committed strictly in input order: job *k* is
  committed as soon as it and every job before it are done, through the
  ``on_commit`` callback, in the task that finished the head of the line. A
  commit never waits for a later job.
* **Fail-fast** (the default). When job *k* fails, no job after *k* is started
  and the running jobs after *k* are cancelled; jobs before *k* run to their end,
  because one of them may fail too, and the first failure *in input order* is the
  one reported. Every success before it is committed, nothing after it is, and
  :class:`PoolItemError` is raised with its index. This is exactly what a plain
  sequential loop commits and raises, whatever the concurrency.
* **Settled mode** (``fail_fast=False``). Every job runs; each one's
  :class:`Outcome` (value, error or timeout) is committed in input order.
* **Cancellation.** Cancelling the caller cancels every job the pool started,
  and waits for them: no task the pool created outlives :meth:`OrderedPool.run`.
* **Timeout.** With ``item_timeout_s``, a job that runs longer is cancelled and
  counts as a failure (:class:`ItemTimeout`).
* **Concurrency 1** (or a batch of a single job) is a plain sequential loop in
  the caller's task: no task is created, each job is committed right after it
  returns. A sized batch never gets more worker tasks than it has jobs.

Measurement: per job, *queue wait* (from the run's start to the job's start),
*run time* and *commit wait* (done, but waiting for an earlier job: the
head-of-line cost of ordering). Totals and maxima are always kept in
:class:`PoolStatistics`; per-job :class:`ItemTiming` rows are kept only with
``record_timings=True`` (they cost memory, one row per job).
"""

from __future__ import annotations

import asyncio
import enum
import functools
import itertools
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from typing import Generic, TypeVar

from reference_impl.errors import ConfigError, ReferenceImplError

__all__ = [
    "INJECT_CPU_ENV",
    "ItemTimeout",
    "ItemTiming",
    "OrderedPool",
    "Outcome",
    "OutcomeStatus",
    "PoolItemError",
    "PoolRun",
    "PoolStatistics",
    "injected_cpu",
]

T = TypeVar("T")
Job = Callable[[], Awaitable[T]]
TimeSource = Callable[[], float]


# -- Planted CPU slowdown (AGENTBENCH_INJECT_CPU) -- begin ---------------------------
# Exists only to validate the instruction clock (workloads.instructions): a known,
# deterministic regression of the pool's per-item path. Off (0) by default.
INJECT_CPU_ENV = "AGENTBENCH_INJECT_CPU"
# Measured under cachegrind (CPython 3.11.7, x86-64; workloads.instructions): the
# pool's own instructions per no-op item at concurrency 1 (switch off), and what one
# step of run_one's count-down costs. A step is about 1.8 % of an item: 0.01 burns one
# step (+1.7 %), 0.1 six (+10.7 %).
_ITEM_INSTRUCTIONS = 10_173
_BURN_STEP_INSTRUCTIONS = 184


def injected_cpu() -> float:
    """The planted CPU slowdown from ``$AGENTBENCH_INJECT_CPU``: a fraction (0.1 = 10 %).

    0 when unset or empty; :class:`ConfigError` naming the variable for anything
    but a finite number in [0, 10).
    """
    text = os.environ.get(INJECT_CPU_ENV, "").strip()
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value < 10.0:
        raise ConfigError(INJECT_CPU_ENV, f"{text!r}: expected a fraction >= 0 (0.1 = 10 %)")
    return value


@functools.cache
def _cpu_burn() -> int:
    """The steps run_one counts down per item: ``injected_cpu()`` x the item's instructions.

    Read once per process (a pool is made per MCP hook segment: that path never
    reads the environment); 0 when the switch is off. Up to 256 steps (fractions up
    to about 4) every step costs the same (a small int: nothing is allocated).
    """
    return round(injected_cpu() * _ITEM_INSTRUCTIONS / _BURN_STEP_INSTRUCTIONS)


# -- Planted CPU slowdown -- end -------------------------------------------------------


class PoolItemError(ReferenceImplError):
    """Job ``index`` failed; the original exception is ``cause`` (and ``__cause__``)."""

    def __init__(self, index: int, cause: BaseException) -> None:
        super().__init__(f"pool job {index} failed: {cause!r}")
        self.index = index
        self.cause = cause


class ItemTimeout(ReferenceImplError):
    """A job ran longer than the pool's ``item_timeout_s``."""

    def __init__(self, index: int, timeout_s: float) -> None:
        super().__init__(f"pool job {index} exceeded its timeout of {timeout_s} s")
        self.index = index
        self.timeout_s = timeout_s


class OutcomeStatus(enum.Enum):
    """How one job ended, in settled mode."""

    OK = "ok"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """The committed result of one job in settled mode."""

    index: int
    status: OutcomeStatus
    value: T | None = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class ItemTiming:
    """Where one job's time went, in seconds of the pool's clock."""

    index: int
    queue_wait_s: float
    run_s: float
    commit_wait_s: float


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    """A snapshot of a pool's counters; levels are those of the moment it was taken."""

    concurrency: int
    active: int
    queued: int
    started: int
    committed: int
    failed: int
    cancelled: int
    queue_wait_total_s: float
    run_total_s: float
    commit_wait_total_s: float
    commit_wait_max_s: float


@dataclass(frozen=True, slots=True)
class PoolRun:
    """What one :meth:`OrderedPool.run` did."""

    started: int
    committed: int
    failed: int
    cancelled: int
    timings: tuple[ItemTiming, ...]


class _Failure:
    """A failed job waiting for its turn (only in fail-fast bookkeeping)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


@dataclass(slots=True)
class _RunCounts:
    """What one ``run`` has done so far: items started, committed, failed, cancelled."""

    started: int = 0
    committed: int = 0
    failed: int = 0
    cancelled: int = 0


class OrderedPool(Generic[T]):
    """Run jobs ``concurrency`` at a time and commit their results in input order.

    A job is a zero-argument callable returning an awaitable (``lambda: work(x)``),
    so that nothing starts before the pool starts it. One pool object may run
    many batches one after another; its statistics accumulate over them.
    """

    def __init__(
        self,
        concurrency: int,
        *,
        fail_fast: bool = True,
        item_timeout_s: float | None = None,
        record_timings: bool = False,
        clock: TimeSource = time.perf_counter,
        max_ahead: int | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be a positive integer, got {concurrency}")
        if max_ahead is not None and max_ahead < concurrency:
            raise ValueError(f"max_ahead must be >= concurrency ({concurrency}), got {max_ahead}")
        if item_timeout_s is not None and item_timeout_s <= 0:
            raise ValueError(f"item_timeout_s must be positive, got {item_timeout_s}")
        self.concurrency = concurrency
        self.fail_fast = fail_fast
        self.item_timeout_s = item_timeout_s
        self.record_timings = record_timings
        self.max_ahead = max_ahead if max_ahead is not None else max(64, 4 * concurrency)
        self._clock = clock
        self._cpu_burn = _cpu_burn()  # planted CPU slowdown: 0 unless AGENTBENCH_INJECT_CPU
        # Levels of the run in progress.
        self._active = 0
        self._total = 0
        self._started = 0
        # Accumulated over every run.
        self._started_total = 0
        self._committed = 0
        self._failed = 0
        self._cancelled = 0
        self._queue_wait_total = 0.0
        self._run_total = 0.0
        self._commit_wait_total = 0.0
        self._commit_wait_max = 0.0

    def statistics(self) -> PoolStatistics:
        """A frozen snapshot: levels now, totals since the pool was made."""
        return PoolStatistics(
            concurrency=self.concurrency,
            active=self._active,
            queued=max(self._total - self._started, 0),
            started=self._started_total,
            committed=self._committed,
            failed=self._failed,
            cancelled=self._cancelled,
            queue_wait_total_s=self._queue_wait_total,
            run_total_s=self._run_total,
            commit_wait_total_s=self._commit_wait_total,
            commit_wait_max_s=self._commit_wait_max,
        )

    async def run(
        self,
        jobs: Iterable[Job[T]],
        on_commit: Callable[[int, T], object] | None = None,
    ) -> PoolRun:
        """Run ``jobs``; commit each success through ``on_commit(index, value)`` in order.

        In fail-fast mode, raises :class:`PoolItemError` for the first failure in
        input order, after committing every success before it.
        """
        if not self.fail_fast:
            raise TypeError("run() is the fail-fast face; use run_settled() in settled mode")
        return await self._execute(jobs, on_commit)

    async def run_settled(
        self,
        jobs: Iterable[Job[T]],
        on_commit: Callable[[Outcome[T]], object],
    ) -> PoolRun:
        """Run every job; commit each :class:`Outcome` in input order. Never raises for a job."""
        if self.fail_fast:
            raise TypeError("run_settled() needs a pool made with fail_fast=False")

        def commit(index: int, value: object) -> None:
            if isinstance(value, _Failure):
                status = (
                    OutcomeStatus.TIMED_OUT
                    if isinstance(value.error, ItemTimeout)
                    else OutcomeStatus.FAILED
                )
                on_commit(Outcome(index, status, error=value.error))
            else:
                on_commit(Outcome(index, OutcomeStatus.OK, value=value))  # type: ignore[arg-type]  # value is a T here

        return await self._execute(jobs, commit, settle=True)

    async def map(self, jobs: Iterable[Job[T]]) -> list[T]:
        """Convenience: run fail-fast and return the values in input order."""
        values: list[T] = []
        await self.run(jobs, lambda _index, value: values.append(value))
        return values

    async def _execute(
        self,
        jobs: Iterable[Job[T]],
        on_commit: Callable[[int, T], object] | None,
        *,
        settle: bool = False,
    ) -> PoolRun:
        clock = self._clock
        timeout_s = self.item_timeout_s
        record = self.record_timings
        burn = self._cpu_burn  # planted CPU slowdown: 0 unless AGENTBENCH_INJECT_CPU
        timings: list[ItemTiming] = []
        # Jobs done but not yet committed: index -> (value or _Failure, done time).
        pending: dict[int, tuple[object, float]] = {}
        # Per job run by a worker task: index -> task, for fail-fast cancellation.
        running: dict[int, asyncio.Task[None]] = {}
        state = _RunState()
        source: Iterator[tuple[int, Job[T]]] = iter(enumerate(jobs))
        self._total = len(jobs) if isinstance(jobs, Sized) else 0
        self._started = 0
        started_at = clock()
        counts = _RunCounts()

        def commit_ready() -> None:
            # Commit the head of the line and everything ready behind it.
            nxt = state.next_commit
            now = -1.0
            while nxt in pending:
                if state.failure_index is not None and nxt >= state.failure_index:
                    break
                value, done_at = pending.pop(nxt)
                if now < 0:
                    now = clock()
                wait = now - done_at
                self._commit_wait_total += wait
                if wait > self._commit_wait_max:
                    self._commit_wait_max = wait
                if record:
                    state.commit_waits[nxt] = wait
                if not settle and isinstance(value, _Failure):
                    break
                if on_commit is not None:
                    on_commit(nxt, value)  # type: ignore[arg-type]  # a T, or _Failure in settled mode
                self._committed += 1
                counts.committed += 1
                nxt += 1
            state.next_commit = nxt
            state.wake()

        def finish(index: int, value: object, start: float, done: float) -> None:
            self._run_total += done - start
            if record:
                state.runs[index] = (start - started_at, done - start)
            if isinstance(value, _Failure):
                self._failed += 1
                counts.failed += 1
                if not settle and (state.failure_index is None or index < state.failure_index):
                    state.failure_index = index
                    state.failure = value.error
                    state.wake()
                    # Jobs after the failure are not needed: cancel them.
                    for later, task in list(running.items()):
                        if later > index:
                            task.cancel()
            if index == state.next_commit:
                if not isinstance(value, _Failure) or settle:
                    # Fast path: the head of the line commits with no wait.
                    if record:
                        state.commit_waits[index] = 0.0
                    if on_commit is not None:
                        on_commit(index, value)  # type: ignore[arg-type]  # see commit_ready
                    self._committed += 1
                    counts.committed += 1
                    state.next_commit = index + 1
                    state.wake()
                    if pending:
                        commit_ready()
            else:
                pending[index] = (value, done)

        async def run_one(index: int, job: Job[T]) -> None:
            start = clock()
            self._queue_wait_total += start - started_at
            self._active += 1
            try:
                if timeout_s is None:
                    value: object = await job()
                else:
                    try:
                        async with asyncio.timeout(timeout_s):
                            value = await job()
                    except TimeoutError as exc:
                        raise ItemTimeout(index, timeout_s) from exc
            except asyncio.CancelledError:
                self._active -= 1
                raise
            except Exception as exc:  # a job's failure is data: reported in order, never lost
                value = _Failure(exc)
            self._active -= 1
            steps = burn  # planted CPU slowdown (AGENTBENCH_INJECT_CPU): 0 when off
            while steps:
                steps -= 1
            finish(index, value, start, clock())

        def next_job() -> tuple[int, Job[T]] | None:
            if state.failure_index is not None:
                return None
            item = next(source, None)
            if item is None:
                return None
            self._started += 1
            self._started_total += 1
            counts.started += 1
            return item

        max_ahead = self.max_ahead

        async def worker() -> None:
            while True:
                # Bounded run-ahead: never more than max_ahead jobs started past the
                # commit head, so a slow head cannot make the pool buffer everything.
                while (
                    counts.started - state.next_commit >= max_ahead and state.failure_index is None
                ):
                    if state.advanced is None:
                        state.advanced = asyncio.get_running_loop().create_future()
                    await asyncio.shield(state.advanced)
                if (item := next_job()) is None:
                    return
                index, job = item
                task = asyncio.current_task()
                assert task is not None
                running[index] = task
                try:
                    await run_one(index, job)
                finally:
                    running.pop(index, None)

        try:
            # Never more workers than jobs: a batch of one job is a plain call. An
            # unsized input is peeked two jobs ahead to tell a single job apart.
            if isinstance(jobs, Sized):
                width = min(self.concurrency, self._total) or self.concurrency
            else:
                head = list(itertools.islice(source, 2))
                source = itertools.chain(head, source)
                width = self.concurrency if len(head) > 1 else 1
            if width == 1:
                # A plain sequential loop: no task, no bookkeeping of running jobs.
                while (item := next_job()) is not None:
                    await run_one(*item)
            else:
                workers = [asyncio.ensure_future(worker()) for _ in range(width)]
                try:
                    await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
                finally:
                    still = [w for w in workers if not w.done()]
                    for w in still:
                        w.cancel()
                    if still:
                        # Wait for the cancelled jobs: nothing the pool started outlives it.
                        await asyncio.wait(still)
                for w in workers:
                    if w.cancelled():
                        counts.cancelled += 1
                        self._cancelled += 1
                    elif (exc := w.exception()) is not None:
                        raise exc
        finally:
            self._active = 0
            self._total = 0
            self._started = 0
        if state.failure_index is not None:
            # Everything before the failure is done and committed; report the failure.
            commit_ready()
            error = state.failure
            assert error is not None
            raise PoolItemError(state.failure_index, error) from error
        if record:
            timings = [
                ItemTiming(i, q, r, state.commit_waits.get(i, 0.0))
                for i, (q, r) in sorted(state.runs.items())
            ]
        return PoolRun(
            counts.started, counts.committed, counts.failed, counts.cancelled, tuple(timings)
        )


class _RunState:
    """Mutable bookkeeping of one run (kept off the pool so runs never share it)."""

    __slots__ = ("advanced", "commit_waits", "failure", "failure_index", "next_commit", "runs")

    def __init__(self) -> None:
        self.next_commit = 0
        # Set when the commit head moves or a job fails: wakes workers held back by
        # the run-ahead bound. Created only when a worker has to wait.
        self.advanced: asyncio.Future[None] | None = None
        self.failure_index: int | None = None
        self.failure: BaseException | None = None
        self.runs: dict[int, tuple[float, float]] = {}
        self.commit_waits: dict[int, float] = {}

    def wake(self) -> None:
        """Release the workers waiting for the commit head to move."""
        if self.advanced is not None:
            if not self.advanced.done():
                self.advanced.set_result(None)
            self.advanced = None
