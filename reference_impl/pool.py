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
* **Concurrency 1** (or a batch of a single job) is one worker's loop run in
  the caller's task: no task is created, each job is committed right after it
  returns. A sized batch never gets more worker tasks than it has jobs.

Cost: while one worker has the batch to itself (every job that never suspends
does, and any run of jobs none of which overlaps another), each job is committed
on its fast path: no clock read, no counter, no dict, one store a job. Its
per-job cost is within a small factor of plain worker tasks pulling from one
iterator (``pool_overhead``'s ``item_cost_ratio_vs_floor``). Levels and counts
(:class:`PoolStatistics`) are read off the run's state when asked.

Measurement, when asked (``timed=True``; implied by ``record_timings`` and
``item_timeout_s``): per job, *queue wait* (from the run's start to the job's
start), *run time* and *commit wait* (done, but waiting for an earlier job: the
head-of-line cost of ordering), two clock reads a job. Totals and maxima are kept
in :class:`PoolStatistics` (0 in an untimed pool); per-job :class:`ItemTiming`
rows only with ``record_timings=True`` (they cost memory, one row per job).

Why one module: the pool and its run state are one mechanism. ``_Run`` is the
private state of one :meth:`OrderedPool.run`, whose fast path is correct only
because of invariants the slow path keeps (a fail-fast failure stays pending; the
run-ahead bound is checked before a worker's first job and after every job off the
fast path), and :meth:`OrderedPool.statistics` reads its levels off that state.
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
# Measured under cachegrind (CPython 3.11.7, x86-64; workloads.instructions): what
# one step of the count-down costs (``for _ in repeat(None, k)``: no int is made), and
# the instructions a job's steps are sized for: the pool's own per no-op item at
# concurrency 64, the costliest (2,021 with the switch off, n = 2000; 1,967-1,971 at
# concurrency 1, 4, 16), plus 10 %, so that 0.01 clears the instruction rows' 1 %
# threshold at every concurrency with a margin. Measured: 0.01 adds 1.23-1.26 % and
# 0.1 adds 10.9-11.2 % (c64 to c1).
_ITEM_INSTRUCTIONS = 2_200
_BURN_STEP_INSTRUCTIONS = 74


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
def _cpu_burn() -> float:
    """Steps of a count-down per job: ``injected_cpu()`` x a job's instructions / a step's.

    Read once per process (a pool is made per MCP hook segment: that path never
    reads the environment); 0 when the switch is off. A batch pays its jobs' steps
    when it ends (``ceil(steps x jobs started)``), not job by job: a step is a
    sizeable part of a fast-path job, so a per-job count-down could not plant 1 %.
    """
    return injected_cpu() * _ITEM_INSTRUCTIONS / _BURN_STEP_INSTRUCTIONS


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
        timed: bool = False,
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
        # Two clock reads a job: only when asked (or needed, for per-job rows or a timeout).
        self.timed = timed or record_timings or item_timeout_s is not None
        self.max_ahead = max_ahead if max_ahead is not None else max(64, 4 * concurrency)
        self._clock = clock
        self._cpu_burn = _cpu_burn()  # planted CPU slowdown: 0 unless AGENTBENCH_INJECT_CPU
        # The run in progress (its levels are read off it) and its input's size.
        self._run: _Run[T] | None = None
        self._total = 0
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
        run = self._run
        active = queued = started = committed = failed = 0
        if run is not None:
            started, committed, failed = run.started(), run.head, run.failed
            active, queued = run.active(), max(self._total - started, 0)
        return PoolStatistics(
            concurrency=self.concurrency,
            active=active,
            queued=queued,
            started=self._started_total + started,
            committed=self._committed + committed,
            failed=self._failed + failed,
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
        run = _Run(self, on_commit, settle)
        source: Iterator[tuple[int, Job[T]]] = enumerate(jobs)
        # Never more workers than jobs: a batch of one job is a plain call. An
        # unsized input is peeked two jobs ahead to tell a single job apart.
        if isinstance(jobs, Sized):
            total = len(jobs)
            width = min(self.concurrency, total) or self.concurrency
        else:
            total = 0
            head = list(itertools.islice(source, 2))
            source = itertools.chain(head, source)
            width = self.concurrency if len(head) > 1 else 1
        run.slots = [-1] * width
        if run.timed:
            timed_job = run.timed_job
            source = ((i, functools.partial(timed_job, i, job)) for i, job in source)
        self._run, self._total = run, total
        try:
            if width == 1:
                await run.worker(source, 0)  # in the caller's task: a plain loop
            else:
                await run.workers(source, width)
        finally:
            self._run, self._total = None, 0
            self._fold(run)
            if self._cpu_burn:  # planted CPU slowdown: 0 unless AGENTBENCH_INJECT_CPU
                for _ in itertools.repeat(None, math.ceil(self._cpu_burn * run.started())):
                    pass
        if run.failure_index is not None:
            # Everything before the failure is done and committed; report the failure.
            error = run.failure
            assert error is not None
            raise PoolItemError(run.failure_index, error) from error
        timings: tuple[ItemTiming, ...] = ()
        if self.record_timings:
            timings = tuple(
                ItemTiming(i, q, r, run.commit_waits.get(i, 0.0))
                for i, (q, r) in sorted(run.runs.items())
            )
        return PoolRun(run.started(), run.head, run.failed, run.cancelled, timings)

    def _fold(self, run: _Run[T]) -> None:
        """Add a finished run's counts to the pool's totals."""
        self._started_total += run.started()
        self._committed += run.head
        self._failed += run.failed
        self._cancelled += run.cancelled


class _Run(Generic[T]):
    """One :meth:`OrderedPool.run`: its commit head, the results waiting for it, its workers.

    The hot path is the *fast path* of a worker's loop (:meth:`worker`). A worker
    that commits the head with nothing pending, and that took the last job taken
    (``taker``), is alone: every other job is committed, none runs, none waits. So
    the next job it takes is the head's successor: it stores that job's index as
    the head (an int the source already made, not a new one) and runs it; when the
    job is done and no other worker took a job meanwhile, it is the head with
    nothing behind it: committed, and on to the next. One attribute load and one
    store a job, no clock, no counter, no dict. While it runs, ``streaking`` tells
    :meth:`started` that the head's job is running. The fast path needs no check
    before a job: with nothing pending, no failure is pending (a fail-fast failure
    stays in ``pending`` for good) and fewer than ``concurrency`` jobs are past the
    head, so the run-ahead bound cannot bind. It ends when another worker took a
    job (its job may finish out of order), when a job fails, or with the input;
    everything off it (a job done out of order, a failure, the run-ahead bound)
    goes through :meth:`_finish` and :meth:`_may_start`. Levels are read off this
    state when asked (:meth:`OrderedPool.statistics`), never counted per job. (From
    a fast-path commit to the next take the head still reads the committed job; only
    code run by taking from the input, a generator's body, can look then: its
    statistics count one commit fewer. A commit callback sees what it always did.)
    """

    __slots__ = (
        "advanced",
        "cancelled",
        "clock",
        "commit_waits",
        "done_at",
        "failed",
        "failure",
        "failure_index",
        "head",
        "on_commit",
        "pending",
        "pool",
        "runs",
        "settle",
        "slots",
        "started_at",
        "started_floor",
        "streaking",
        "taker",
        "tasks",
        "timed",
    )

    def __init__(
        self, pool: OrderedPool[T], on_commit: Callable[[int, T], object] | None, settle: bool
    ) -> None:
        self.pool = pool
        self.on_commit = on_commit
        self.settle = settle
        self.timed = pool.timed
        self.clock = pool._clock
        self.started_at = self.clock() if self.timed else 0.0
        # The next index to commit; every index below it is committed.
        self.head = 0
        # Jobs done but not committed (a value, or a _Failure), by index.
        self.pending: dict[int, object] = {}
        # Each worker's job (its index; -1 when it holds none): what a failure
        # cancels, and how many jobs were started (the highest index + 1).
        self.slots: list[int] = []
        self.started_floor = 0  # started jobs of workers whose slot was cleared
        # Whether a worker is on the fast path: the head is its job (its slot, set
        # before, is stale), running, or committed until it takes the next one.
        self.streaking = False
        # The worker that took a job last (off the fast path): when it is the one
        # holding the head, with nothing pending, no other job runs or waits.
        self.taker = -1
        self.tasks: list[asyncio.Task[None]] = []
        self.failed = 0
        self.cancelled = 0
        self.failure_index: int | None = None
        self.failure: BaseException | None = None
        # Set when the commit head moves or a job fails: wakes workers held back by
        # the run-ahead bound. Created only when a worker has to wait.
        self.advanced: asyncio.Future[None] | None = None
        # Timed runs only: when each job waiting for its turn was done; per-job rows.
        self.done_at: dict[int, float] = {}
        self.runs: dict[int, tuple[float, float]] = {}
        self.commit_waits: dict[int, float] = {}

    def started(self) -> int:
        """How many jobs this run has started (they start in input order)."""
        started = max(self.started_floor, max(self.slots, default=-1) + 1, self.head)
        if self.streaking and started == self.head:
            return started + 1  # the head's job is running, on the fast path
        return started

    def active(self) -> int:
        """Jobs started and not yet done."""
        return self.started() - self.head - len(self.pending)

    async def workers(self, source: Iterator[tuple[int, Job[T]]], width: int) -> None:
        """``width`` worker tasks over one shared source; none outlives this call."""
        self.tasks = tasks = [asyncio.ensure_future(self.worker(source, w)) for w in range(width)]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            still = [task for task in tasks if not task.done()]
            for task in still:
                task.cancel()
            if still:
                # Wait for the cancelled jobs: nothing the pool started outlives it.
                await asyncio.wait(still)
        for task in tasks:
            if task.cancelled():
                self.cancelled += 1
            elif (exc := task.exception()) is not None:
                raise exc

    async def worker(self, source: Iterator[tuple[int, Job[T]]], w: int) -> None:
        """Run jobs from ``source`` until it ends, a failure stops the run, or the
        run-ahead bound holds this worker back; the fast path while it lasts."""
        slots = self.slots
        pending = self.pending
        on_commit = self.on_commit
        last = self.pool._total - 1  # a sized input's last index (-1: unsized, no such index)
        # A worker's first run may come late (after the others ran far ahead).
        if not await self._may_start(w):
            return
        for index, job in source:
            slots[w] = index
            self.taker = w
            try:
                value: object = await job()
            except Exception as exc:  # a job's failure is data: reported in order, never lost
                value = _Failure(exc)
            else:
                if index == self.head and not pending:
                    # The head, nothing waiting behind it: commit it.
                    if on_commit is not None:
                        on_commit(index, value)  # type: ignore[arg-type]  # a T here
                    if self.taker is not w or index == last:
                        # A later job runs (the next job is not the head), or none is left.
                        self.head = index + 1
                        continue
                    # Alone: the fast path, while it lasts (see the class docstring).
                    self.streaking = True  # the head says which job this worker holds
                    after_commit = True  # until an exception says otherwise
                    try:
                        for index, job in source:
                            self.head = index  # the job after the last commit
                            try:
                                value = await job()
                            except Exception as exc:  # reported in order, never lost
                                value = _Failure(exc)
                                break
                            except BaseException:  # cancelled while it runs
                                after_commit = False
                                raise
                            if self.taker is not w:
                                break  # another worker took a job meanwhile: off the fast path
                            if on_commit is not None:
                                try:
                                    on_commit(index, value)
                                except BaseException:
                                    after_commit = False
                                    raise
                        else:
                            self.head = index + 1  # the input ended after a commit
                            return
                    except BaseException:
                        if after_commit:  # reading the input raised, after a commit
                            self.head = index + 1
                        raise
                    finally:
                        self.streaking = False
                    slots[w] = index
            self._finish(index, value)
            if not await self._may_start(w):
                return

    def _finish(self, index: int, value: object) -> None:
        """A job done off the fast path: keep it for its turn, commit what is ready."""
        if isinstance(value, _Failure):
            self.failed += 1
            if not self.settle and (self.failure_index is None or index < self.failure_index):
                self.failure_index, self.failure = index, value.error
                # Jobs after the failure are not needed: cancel them.
                current = asyncio.current_task()
                for w, task in enumerate(self.tasks):
                    if self.slots[w] > index and task is not current:
                        task.cancel()
                self._wake()
        self.pending[index] = value
        self._commit_ready()

    def _commit_ready(self) -> None:
        """Commit the head of the line and everything ready behind it."""
        pending = self.pending
        nxt = self.head
        if nxt not in pending:
            return
        pool = self.pool
        now = self.clock() if self.timed else 0.0
        while nxt in pending:
            value = pending[nxt]
            if not self.settle and isinstance(value, _Failure):
                break  # fail-fast: the failure is never committed, nor anything after it
            del pending[nxt]
            if self.timed:
                wait = now - self.done_at.pop(nxt, now)
                pool._commit_wait_total += wait
                pool._commit_wait_max = max(pool._commit_wait_max, wait)
                if pool.record_timings:
                    self.commit_waits[nxt] = wait
            if self.on_commit is not None:
                self.on_commit(nxt, value)  # type: ignore[arg-type]  # a T, or _Failure settled
            nxt += 1
            self.head = nxt
        self._wake()

    async def _may_start(self, w: int) -> bool:
        """Whether worker ``w`` may take the next job: none after a failure, and none more
        than ``max_ahead`` past the commit head (it waits for the head to move)."""
        ahead = self.pool.max_ahead
        while self.failure_index is None:
            if self.started() - self.head < ahead:
                return True
            # Held back: the worker holds no job while it waits (a failure spares it).
            self.started_floor = max(self.started_floor, self.slots[w] + 1)
            self.slots[w] = -1
            if self.advanced is None:
                self.advanced = asyncio.get_running_loop().create_future()
            await asyncio.shield(self.advanced)
        return False

    def _wake(self) -> None:
        """Release the workers waiting for the commit head to move."""
        if self.advanced is not None:
            if not self.advanced.done():
                self.advanced.set_result(None)
            self.advanced = None

    async def timed_job(self, index: int, job: Job[T]) -> T:
        """``job`` with its queue wait and run time measured, under the item timeout."""
        pool = self.pool
        start = self.clock()
        pool._queue_wait_total += start - self.started_at
        timeout_s = pool.item_timeout_s
        try:
            if timeout_s is None:
                value = await job()
            else:
                try:
                    async with asyncio.timeout(timeout_s):
                        value = await job()
                except TimeoutError as exc:
                    raise ItemTimeout(index, timeout_s) from exc
        except asyncio.CancelledError:
            raise
        except Exception:
            self._timed_done(index, start)
            raise
        self._timed_done(index, start)
        return value

    def _timed_done(self, index: int, start: float) -> None:
        pool = self.pool
        done = self.clock()
        pool._run_total += done - start
        if pool.record_timings:
            self.runs[index] = (start - self.started_at, done - start)
        if index != self.head or self.pending:
            self.done_at[index] = done  # it will wait for its turn: measure how long
