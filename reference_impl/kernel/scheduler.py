"""The deterministic kernel scheduler: ordered windows of tasks, committed as evidence.

Guarantees (each one is a test in ``tests/reference_impl/kernel/test_scheduler.py``):

* **Order.** Tasks are read from the input iterable in consecutive windows of
  ``window`` tasks (so a stream of a million tasks never sits in memory). Within
  a window they run in the order of ``(priority, stable_hash(task_id, seed=seed))``,
  lower first, ties kept in input order; priority orders tasks *within a window
  only*. The ordered window is cut into batches of ``max_concurrent`` tasks,
  numbered from 0 across the whole run. :func:`scheduled_order` gives that order
  without running anything.
* **Same commits in both modes.** ``Mode.LEGACY`` runs each batch one task at a
  time; ``Mode.POOLED`` runs it through an :class:`~reference_impl.pool.OrderedPool`
  of ``max_concurrent``, which commits in batch order. Either way, the committed
  :class:`TaskRecord` sequence, the event digest and the evidence digest are the
  same, whatever the timing jitter: every record is built at commit, from data
  that depends only on the task and its position.
* **Commit.** For each committed record, in commit order: a ``task.committed``
  event is committed to an :class:`~reference_impl.events.EventLog`, the record
  is appended to an :class:`~reference_impl.events.EvidenceChain`, it is kept in
  the history, its latency is sampled, and ``on_record`` is called.
* **Fail-fast.** A task that raises (:class:`TaskFailed` for a ``fails=True``
  spec, or any other ``Exception``) stops the run: every task ordered before it
  is committed, none after it is, a ``task.failed`` event is committed, and
  :meth:`Scheduler.run` **raises** :class:`SchedulerError` naming the task and
  its index in the committed order. The error carries the partial
  :class:`SchedulerResult` (``error.result``, its ``failure`` set), so digests
  and latencies of the committed prefix are never lost. A returned result
  therefore always has ``failure is None``.
* **Proof import.** Legacy re-imports the proof module, for real
  (``sys.modules.pop`` then ``importlib.import_module``), at the start of every
  task it invokes, failing ones included. Pooled imports it once per scheduler,
  through a :class:`~reference_impl.cache.LazyImporter` (in a worker thread, off
  the loop), before its first batch.
* **Memory.** Pooled keeps the last ``history_limit`` records, events and
  evidence links (default 1024); legacy keeps all of them, like today's runtime.
  The latency samples grow with the stream in both modes, 8 bytes per task in an
  ``array('d')`` (what p50/p95/p99 need); so do ``service_times_s`` with
  ``record_timings=True``.
* **No leaked task.** Nothing the scheduler starts outlives :meth:`Scheduler.run`,
  on success, on failure or on cancellation (the pool's own guarantee).

Why one module: it is one class whose two modes share one private commit path (``_execute``,
``_Done`` and the ``commit`` closure of ``_run``): that is what makes the commits identical in
both modes, so the legacy and pooled paths stay side by side. The guarantees above are a good
part of the length.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib
import itertools
import math
import sys
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, MutableSequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from reference_impl.cache import LazyImporter
from reference_impl.errors import ReferenceImplError
from reference_impl.events import DEFAULT_KEY, EventLog, EvidenceChain, canonical_json, stable_hash
from reference_impl.mode import Mode
from reference_impl.pool import OrderedPool, PoolItemError, PoolStatistics

__all__ = [
    "DEFAULT_PROOF_MODULE",
    "POOLED_HISTORY_LIMIT",
    "Scheduler",
    "SchedulerError",
    "SchedulerResult",
    "SchedulerStatistics",
    "TaskFailed",
    "TaskFailure",
    "TaskRecord",
    "TaskSpec",
    "scheduled_order",
]

DEFAULT_PROOF_MODULE = "reference_impl.kernel.proofs"
POOLED_HISTORY_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One task of a trace: ``duration_s`` of simulated work, then success or ``TaskFailed``.

    ``ValueError`` for a negative or non-finite duration.
    """

    task_id: str
    priority: int
    duration_s: float
    fails: bool = False
    payload: str = ""

    def __post_init__(self) -> None:
        if not math.isfinite(self.duration_s) or self.duration_s < 0:
            raise ValueError(
                f"task {self.task_id!r}: duration_s must be finite and >= 0, got {self.duration_s}"
            )


class TaskFailed(ReferenceImplError):
    """The simulated work of task ``task_id`` failed (its spec says ``fails=True``)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id!r} failed")
        self.task_id = task_id


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One committed task: what the event log and the evidence chain record.

    ``seq`` is the commit sequence number (0, 1, 2, ... in commit order);
    ``result_digest`` is sha256 of the canonical JSON of the task id and payload;
    ``proof_digest``/``proof_signature`` come from the proof module.
    """

    seq: int
    task_id: str
    priority: int
    batch: int
    result_digest: str
    proof_digest: str
    proof_signature: str

    def as_json(self) -> dict[str, Any]:
        """The record as plain JSON data (an event payload and an evidence link)."""
        return {
            "seq": self.seq,
            "task_id": self.task_id,
            "priority": self.priority,
            "result_digest": self.result_digest,
            "proof_digest": self.proof_digest,
            "proof_signature": self.proof_signature,
        }


@dataclass(frozen=True, slots=True)
class TaskFailure:
    """The first failure of a run: task, index in commit order, batch, error type name."""

    task_id: str
    index: int
    batch: int
    error: str


@dataclass(frozen=True, slots=True)
class SchedulerResult:
    """What one :meth:`Scheduler.run` committed.

    ``records`` holds the kept records only (pooled: the last ``history_limit``),
    ``records_count`` counts all of them. ``latencies_s[i]`` is the time from the
    start of record *i*'s batch (when it became runnable) to its commit (loop
    clock): the task's scheduling latency; ``service_times_s[i]``
    (only with ``record_timings=True``, else empty) is the time record *i*'s own
    task took, from its start to its end. ``makespan_s`` is the loop-clock time of
    the whole run.
    """

    records_count: int
    records: tuple[TaskRecord, ...]
    event_digest: str
    evidence_digest: str
    failure: TaskFailure | None
    makespan_s: float
    latencies_s: array[float]
    service_times_s: array[float]


class SchedulerError(ReferenceImplError):
    """Task ``task_id``, at ``index`` in commit order, failed; the run stopped there.

    ``cause`` is the task's exception (also ``__cause__``); ``result`` is the
    partial result of the committed prefix, with ``failure`` set.
    """

    def __init__(
        self, task_id: str, index: int, cause: BaseException, result: SchedulerResult
    ) -> None:
        super().__init__(f"task {task_id!r} (index {index}) failed: {cause!r}")
        self.task_id = task_id
        self.index = index
        self.cause = cause
        self.result = result


@dataclass(frozen=True, slots=True)
class SchedulerStatistics:
    """A snapshot of a scheduler's counters, accumulated over its runs.

    ``history_length`` is the number of records held by the current (or last)
    run; ``proof_imports`` counts real imports of the proof module; ``pool`` is
    the pool's own snapshot (``None`` in legacy mode, which has no pool).
    """

    mode: Mode
    runs: int
    tasks_committed: int
    tasks_failed: int
    batches: int
    windows: int
    history_length: int
    proof_imports: int
    pool: PoolStatistics | None


def _order_key(seed: int) -> Callable[[TaskSpec], tuple[int, int]]:
    def key(task: TaskSpec) -> tuple[int, int]:
        return (task.priority, stable_hash(task.task_id, seed=seed))

    return key


def _windows(tasks: Iterable[TaskSpec], window: int, seed: int) -> Iterator[list[TaskSpec]]:
    source = iter(tasks)
    key = _order_key(seed)
    while chunk := list(itertools.islice(source, window)):
        chunk.sort(key=key)  # stable: equal keys keep their input order
        yield chunk


def scheduled_order(
    tasks: Iterable[TaskSpec], *, seed: int = 0, window: int = 1024
) -> Iterator[TaskSpec]:
    """The order in which a scheduler with this ``seed`` and ``window`` runs ``tasks`` (lazy)."""
    if window < 1:
        raise ValueError(f"window must be a positive integer, got {window}")
    for chunk in _windows(tasks, window, seed):
        yield from chunk


@dataclass(frozen=True, slots=True)
class _Done:
    """A finished task waiting for its commit."""

    task: TaskSpec
    batch: int
    result_digest: str
    proof_digest: str
    proof_signature: str
    service_s: float
    cpu_s: float


class Scheduler:
    """Run streams of :class:`TaskSpec` in a deterministic order, committing evidence.

    One scheduler runs one stream at a time (``RuntimeError`` for a second
    concurrent :meth:`run`); it may run many streams one after another, each
    with a fresh event log and evidence chain, its statistics accumulating.

    ``pool_factory`` replaces the ordered pool (tests plant a broken one with it).

    ``inject_slowdown`` exists only to validate the comparison tooling: when
    > 0, every task takes that fraction (0.1 = 10 %) longer, in each of its
    parts: its wait (the scaled duration) is stretched by it, and the CPU time
    its scheduling work took (proof import, digests, commit) is burnt again by
    it in a busy loop. A known regression of the whole path (latency, makespan)
    can then be planted. It is 0 (off) by default.
    """

    def __init__(
        self,
        mode: Mode,
        *,
        max_concurrent: int = 8,
        seed: int = 0,
        window: int = 1024,
        time_scale: float = 1.0,
        evidence_key: bytes = DEFAULT_KEY,
        history_limit: int | None = None,
        proof_module: str = DEFAULT_PROOF_MODULE,
        record_timings: bool = False,
        inject_slowdown: float = 0.0,
        pool_factory: Callable[[int], OrderedPool[Any]] | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be a positive integer, got {max_concurrent}")
        if window < 1:
            raise ValueError(f"window must be a positive integer, got {window}")
        if not math.isfinite(time_scale) or time_scale < 0:
            raise ValueError(f"time_scale must be finite and >= 0, got {time_scale}")
        if history_limit is not None and history_limit < 0:
            raise ValueError(f"history_limit must be >= 0 or None, got {history_limit}")
        if not math.isfinite(inject_slowdown) or inject_slowdown < 0:
            raise ValueError(f"inject_slowdown must be finite and >= 0, got {inject_slowdown}")
        if not evidence_key:
            raise ValueError("the evidence key must not be empty")
        self.mode = mode
        self.max_concurrent = max_concurrent
        self.seed = seed
        self.window = window
        self.time_scale = time_scale
        self.evidence_key = evidence_key
        self.proof_module = proof_module
        self.record_timings = record_timings
        self.inject_slowdown = inject_slowdown
        pooled = mode is Mode.POOLED
        if history_limit is None and pooled:
            history_limit = POOLED_HISTORY_LIMIT
        self.history_limit = history_limit
        make_pool = pool_factory or OrderedPool
        self._pool: OrderedPool[_Done] | None = make_pool(max_concurrent) if pooled else None
        self._importer = LazyImporter(name="kernel.scheduler.proofs")
        self._legacy_imports = 0
        self._running = False
        self._history: MutableSequence[TaskRecord] = []
        self._runs = 0
        self._committed = 0
        self._failed = 0
        self._batches = 0
        self._windows = 0

    def statistics(self) -> SchedulerStatistics:
        """A frozen snapshot of the counters (see :class:`SchedulerStatistics`)."""
        pooled = self._pool is not None
        return SchedulerStatistics(
            mode=self.mode,
            runs=self._runs,
            tasks_committed=self._committed,
            tasks_failed=self._failed,
            batches=self._batches,
            windows=self._windows,
            history_length=len(self._history),
            proof_imports=self._importer.import_count if pooled else self._legacy_imports,
            pool=self._pool.statistics() if self._pool is not None else None,
        )

    async def run(
        self,
        tasks: Iterable[TaskSpec],
        on_record: Callable[[TaskRecord], object] | None = None,
    ) -> SchedulerResult:
        """Run ``tasks``; return what was committed, or raise :class:`SchedulerError`.

        See the module docstring for the order, commit and failure guarantees.
        """
        if self._running:
            raise RuntimeError("this scheduler is already running a stream")
        self._running = True
        try:
            return await self._run(tasks, on_record)
        finally:
            self._running = False

    async def _run(
        self,
        tasks: Iterable[TaskSpec],
        on_record: Callable[[TaskRecord], object] | None,
    ) -> SchedulerResult:
        loop = asyncio.get_running_loop()
        clock = loop.time
        started = clock()
        limit = self.history_limit
        events = EventLog(max_events=limit)
        chain = EvidenceChain(self.evidence_key, max_records=limit)
        history: MutableSequence[TaskRecord] = [] if limit is None else deque(maxlen=limit)
        self._history = history
        latencies: array[float] = array("d")
        service_times: array[float] = array("d")
        record_timings = self.record_timings
        slowdown = self.inject_slowdown
        self._runs += 1

        def commit(done: _Done) -> None:
            cpu_start = time.thread_time() if slowdown else 0.0
            record = TaskRecord(
                seq=len(latencies),
                task_id=done.task.task_id,
                priority=done.task.priority,
                batch=done.batch,
                result_digest=done.result_digest,
                proof_digest=done.proof_digest,
                proof_signature=done.proof_signature,
            )
            payload = record.as_json()
            # No batch field: batches are cut by max_concurrent, and the committed
            # events must be the same whatever the concurrency (determinism contract).
            events.commit("task.committed", payload)
            chain.append(payload)
            history.append(record)
            latencies.append(clock() - batch_started[0])
            if record_timings:
                service_times.append(done.service_s)
            self._committed += 1
            if on_record is not None:
                on_record(record)
            if slowdown:
                self._burn(done.cpu_s + time.thread_time() - cpu_start)

        def result(failure: TaskFailure | None) -> SchedulerResult:
            return SchedulerResult(
                records_count=len(latencies),
                records=tuple(history),
                event_digest=events.digest(),
                evidence_digest=chain.digest(),
                failure=failure,
                makespan_s=clock() - started,
                latencies_s=latencies,
                service_times_s=service_times,
            )

        batch_no = 0
        batch_started = [started]
        proofs: ModuleType | None = None
        for chunk in _windows(tasks, self.window, self.seed):
            self._windows += 1
            for start in range(0, len(chunk), self.max_concurrent):
                batch = chunk[start : start + self.max_concurrent]
                self._batches += 1
                batch_started[0] = clock()
                failed: tuple[TaskSpec, BaseException] | None = None
                if self._pool is None:
                    for task in batch:
                        try:
                            done = await self._execute(task, batch_no, None)
                        except Exception as exc:  # a task's failure is data: reported in order
                            failed = (task, exc)
                            break
                        commit(done)
                else:
                    if proofs is None:
                        proofs = await self._importer.get(self.proof_module)
                    jobs = (functools.partial(self._execute, t, batch_no, proofs) for t in batch)
                    try:
                        await self._pool.run(jobs, lambda _index, done: commit(done))
                    except PoolItemError as exc:
                        failed = (batch[exc.index], exc.cause)
                if failed is not None:
                    task, cause = failed
                    failure = TaskFailure(
                        task.task_id, len(latencies), batch_no, type(cause).__name__
                    )
                    events.commit(
                        "task.failed",
                        {
                            "task_id": failure.task_id,
                            "index": failure.index,
                            "error": failure.error,
                        },
                    )
                    self._failed += 1
                    raise SchedulerError(
                        task.task_id, failure.index, cause, result(failure)
                    ) from cause
                batch_no += 1
        return result(None)

    async def _execute(self, task: TaskSpec, batch: int, proofs: ModuleType | None) -> _Done:
        # Everything here depends only on the task and its batch, never on timing:
        # that is what makes the commits identical in both modes.
        measure_cpu = bool(self.inject_slowdown)
        cpu_s = 0.0
        loop = asyncio.get_running_loop()
        started = loop.time()
        if proofs is None:
            cpu_start = time.thread_time() if measure_cpu else 0.0
            proofs = self._reimport_proofs()
            if measure_cpu:
                cpu_s += time.thread_time() - cpu_start
        await asyncio.sleep(task.duration_s * self.time_scale * (1.0 + self.inject_slowdown))
        if task.fails:
            raise TaskFailed(task.task_id)
        cpu_start = time.thread_time() if measure_cpu else 0.0
        result_digest = hashlib.sha256(
            canonical_json({"task_id": task.task_id, "payload": task.payload})
        ).hexdigest()
        proof = proofs.make_proof(
            canonical_json(
                {"task_id": task.task_id, "priority": task.priority, "result": result_digest}
            ),
            self.evidence_key,
        )
        proof_digest: str = proof.digest
        proof_signature: str = proof.signature
        if measure_cpu:
            cpu_s += time.thread_time() - cpu_start
        return _Done(
            task, batch, result_digest, proof_digest, proof_signature, loop.time() - started, cpu_s
        )

    def _reimport_proofs(self) -> ModuleType:
        # Today's behaviour, on purpose: the import work really happens every time.
        sys.modules.pop(self.proof_module, None)
        module = importlib.import_module(self.proof_module)
        self._legacy_imports += 1
        return module

    def _burn(self, cpu_s: float) -> None:
        deadline = time.thread_time() + cpu_s * self.inject_slowdown
        while time.thread_time() < deadline:
            pass
