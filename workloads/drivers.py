"""Drivers: run a trace's input records through the reference implementation.

One driver per trace kind (``kernel``: the scheduler, ``mcp``: the MCP adapter,
``prp``: the PRP runner). A driver takes the input records (a stream), a
:class:`Setting` (mode, concurrency, timing jitter and its seed, time scale)
and returns an :class:`Outcome`: the three digests the trace footer holds, the
counts, and a short digest of every committed event so that a replay can name
the first event that diverged.

The same drivers serve ``harness record`` (the canonical run that writes the
footer), ``harness replay`` (the determinism check) and the workloads (the
measured runs), so that what is measured is what is checked.

Jitter perturbs every simulated duration by a factor drawn from
``1 ± jitter``, from ``random.Random(seed)``: it changes the timing (and so the
interleaving of concurrent work), never the inputs' meaning.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import os
import random
from array import array
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from reference_impl.events import EvidenceChain, canonical_json
from reference_impl.kernel.mcp import (
    CallOutcome,
    HookConfig,
    HookPhase,
    HookSpec,
    McpAdapter,
    ToolCallResult,
)
from reference_impl.kernel.scheduler import Scheduler, SchedulerError, TaskRecord, TaskSpec
from reference_impl.mode import Mode
from reference_impl.pool import OrderedPool
from reference_impl.telemetry import Telemetry, mcp_source, scheduler_source
from workloads.trace import (
    HookConfigRecord,
    InputRecord,
    ToolCallRecord,
)
from workloads.trace import (
    TaskRecord as TraceTask,
)

__all__ = [
    "CANONICAL",
    "Outcome",
    "Recorder",
    "Setting",
    "run_kernel",
    "run_mcp",
    "run_trace_records",
]

EVENT_DIGEST_SIZE = 8


@dataclass(frozen=True, slots=True)
class Setting:
    """How one replay runs: mode, concurrency, jitter (a fraction) and its seed."""

    mode: Mode = Mode.LEGACY
    concurrency: int = 1
    jitter: float = 0.0
    seed: int = 0
    time_scale: float = 1.0

    def label(self) -> str:
        """A short, copyable description (``--mode pooled --concurrency 4 ...``)."""
        return (
            f"--mode {self.mode.value} --concurrency {self.concurrency} "
            f"--jitter {self.jitter:g} --seed {self.seed}"
        )


# The canonical setting: how `harness record` computes a trace's footer.
CANONICAL = Setting(Mode.LEGACY, 1, 0.0, 0)


@dataclass(slots=True)
class Recorder:
    """For drivers: the committed-sequence digest, a short digest per event, one captured event."""

    capture_index: int | None = None
    committed: Any = field(default_factory=hashlib.sha256)
    event_digests: bytearray = field(default_factory=bytearray)
    captured: dict[str, Any] | None = None
    count: int = 0

    def commit(self, event: Mapping[str, Any]) -> None:
        line = canonical_json(event)
        self.committed.update(line)
        self.committed.update(b"\n")
        self.event_digests += hashlib.blake2b(line, digest_size=EVENT_DIGEST_SIZE).digest()
        if self.count == self.capture_index:
            self.captured = dict(event)
        self.count += 1

    def outcome(
        self,
        events_digest: str,
        evidence_digest: str,
        counts: Mapping[str, int],
        makespan_s: float,
        latencies_s: array[float],
        metrics: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """The run's :class:`Outcome`: the driver's digests and figures, and what was recorded."""
        return Outcome(
            self.committed.hexdigest(),
            events_digest,
            evidence_digest,
            counts,
            bytes(self.event_digests),
            self.captured,
            makespan_s,
            latencies_s,
            metrics or {},
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one run of a trace produced (compared against the footer by replay)."""

    committed_digest: str
    events_digest: str
    evidence_digest: str
    counts: Mapping[str, int]
    event_digests: bytes
    captured_event: Mapping[str, Any] | None
    makespan_s: float
    latencies_s: array[float]
    metrics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def events(self) -> int:
        """How many events were committed."""
        return len(self.event_digests) // EVENT_DIGEST_SIZE

    def event_digest(self, index: int) -> bytes:
        """The short digest of event ``index``."""
        return self.event_digests[index * EVENT_DIGEST_SIZE : (index + 1) * EVENT_DIGEST_SIZE]


def _jittered(setting: Setting) -> Callable[[float], float]:
    if setting.jitter <= 0:
        return lambda duration: duration
    rng = random.Random(setting.seed)
    spread = setting.jitter
    return lambda duration: duration * (1.0 + rng.uniform(-spread, spread))


PoolFactory = Callable[[int], OrderedPool[Any]]


async def run_kernel(
    records: Iterable[InputRecord],
    setting: Setting,
    *,
    capture_index: int | None = None,
    pool_factory: PoolFactory | None = None,
    inject_slowdown: float | None = None,
    telemetry: Telemetry | None = None,
) -> Outcome:
    """Run a kernel trace's tasks through the scheduler.

    ``setting.concurrency`` is the scheduler's batch size and pool width; the
    legacy mode runs each batch one task at a time whatever it is.
    ``inject_slowdown`` defaults to ``$AGENTBENCH_INJECT_SLOWDOWN`` (off when
    unset): a planted slowdown of the scheduler path, only to validate comparisons.
    """
    if inject_slowdown is None:
        inject_slowdown = injected_slowdown()
    recorder = Recorder(capture_index)
    jitter = _jittered(setting)

    def tasks() -> Iterator[TaskSpec]:
        for record in records:
            if not isinstance(record, TraceTask):
                raise TypeError(f"a kernel trace holds task records, not {type(record).__name__}")
            yield TaskSpec(
                record.id, record.priority, jitter(record.duration_s), record.fails, record.payload
            )

    scheduler = Scheduler(
        setting.mode,
        max_concurrent=setting.concurrency,
        time_scale=setting.time_scale,
        inject_slowdown=inject_slowdown,
        pool_factory=pool_factory,
    )

    def on_record(record: TaskRecord) -> None:
        recorder.commit({"kind": "task.committed", **record.as_json()})

    source = scheduler_source(scheduler)
    if telemetry is not None:
        telemetry.add_source(source)
    failed = 0
    try:
        result = await scheduler.run(tasks(), on_record)
    except SchedulerError as exc:
        result = exc.result
        failed = 1
        recorder.commit({"kind": "task.failed", "task_id": exc.task_id, "index": exc.index})
    if telemetry is not None:
        # Every latency counted into exact buckets: the hot path never calls the SDK.
        attrs = {"mode": setting.mode.value}
        telemetry.record_samples("kernel.scheduler.task_duration", result.latencies_s, attrs)
        telemetry.collect()
        telemetry.remove_source(source)
    counts = {"committed": result.records_count, "failed": failed}
    return recorder.outcome(
        result.event_digest, result.evidence_digest, counts, result.makespan_s, result.latencies_s
    )


INJECT_SLOWDOWN_ENV = "AGENTBENCH_INJECT_SLOWDOWN"


def injected_slowdown() -> float:
    """The planted slowdown fraction from ``$AGENTBENCH_INJECT_SLOWDOWN`` (0 when unset).

    ``ValueError`` naming the variable for a value that is not a fraction >= 0.
    """
    text = os.environ.get(INJECT_SLOWDOWN_ENV, "").strip()
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 10.0:
        raise ValueError(f"{INJECT_SLOWDOWN_ENV}={text!r}: expected a fraction >= 0 (0.1 = 10 %)")
    return value


def _hook_config(record: HookConfigRecord) -> HookConfig:
    return HookConfig.of(
        HookSpec(
            h.name,
            HookPhase.PRE if h.phase == "pre" else HookPhase.POST,
            h.build_cost,
            h.duration_s,
            h.independent,
            h.deny_if,
        )
        for h in record.hooks
    )


# The simulated work of the tool call running in this task: (seconds, fails).
_CALL_WORK: contextvars.ContextVar[tuple[float, bool]] = contextvars.ContextVar("call_work")


def _simulated_tool(name: str) -> Callable[[Mapping[str, Any]], Awaitable[Any]]:
    """A tool whose work is the trace's duration; its value is a digest of its arguments."""

    async def call(args: Mapping[str, Any]) -> str:
        duration_s, fails = _CALL_WORK.get()
        await asyncio.sleep(duration_s)
        if fails:
            raise RuntimeError(f"{name}: simulated failure")
        return hashlib.sha256(canonical_json({"tool": name, **args})).hexdigest()[:16]

    return call


def _result_event(index: int, call: ToolCallRecord, result: ToolCallResult) -> dict[str, Any]:
    return {
        "kind": "tool.call",
        "index": index,
        "run_id": call.run_id,
        "tool": result.tool,
        "outcome": result.outcome.value,
        "denied_by": result.denied_by,
        "value_digest": result.value_digest,
    }


async def run_mcp(
    records: Iterable[InputRecord],
    setting: Setting,
    *,
    capture_index: int | None = None,
    pool_factory: PoolFactory | None = None,
    telemetry: Telemetry | None = None,
) -> Outcome:
    """Run an MCP trace's tool calls through the adapter.

    Pooled mode issues calls through an ordered pool of ``setting.concurrency``
    and commits their results in trace order (a call's decision depends only on
    its own arguments and the hook configuration, so overlapping calls changes
    no decision); legacy issues them one at a time.
    The evidence digest chains the committed results; hook latencies per call
    are returned as ``latencies_s``.
    """
    recorder = Recorder(capture_index)
    chain = EvidenceChain()
    jitter = _jittered(setting)
    loop = asyncio.get_running_loop()
    started = loop.time()
    adapter: McpAdapter | None = None
    counts = {"calls": 0, "ok": 0, "denied": 0, "failed": 0}
    hook_samples: array[float] = array("d")
    make_pool = pool_factory or (lambda width: OrderedPool[ToolCallResult](width))
    # Legacy issues calls one at a time, whatever the concurrency (today's behaviour).
    width = setting.concurrency if setting.mode is Mode.POOLED else 1
    pending: list[ToolCallRecord] = []

    async def flush() -> None:
        assert adapter is not None
        current = adapter
        calls = list(pending)
        pending.clear()

        def job(call: ToolCallRecord) -> Callable[[], Awaitable[ToolCallResult]]:
            work = (jitter(call.duration_s) * setting.time_scale, call.fails)

            async def run() -> ToolCallResult:
                _CALL_WORK.set(work)  # what the simulated tool does for this call
                return await current.call_tool(call.run_id, call.tool, call.args)

            return run

        def commit(index: int, result: ToolCallResult) -> None:
            call = calls[index]
            counts["calls"] += 1
            key = {CallOutcome.OK: "ok", CallOutcome.DENIED: "denied"}.get(result.outcome, "failed")
            counts[key] += 1
            event = _result_event(counts["calls"] - 1, call, result)
            recorder.commit(event)
            chain.append(event)
            hook_samples.append(result.hook_s)

        await make_pool(width).run([job(c) for c in calls], commit)

    for record in records:
        if isinstance(record, HookConfigRecord):
            if pending:
                await flush()
            config = _hook_config(record)
            tools = {name: _simulated_tool(name) for name in record.tools}
            # A new tool set is a new adapter (as a runtime restart would be).
            adapter = McpAdapter(setting.mode, tools=tools, hook_config=config)
            if telemetry is not None:
                telemetry.add_source(mcp_source(adapter))
        elif isinstance(record, ToolCallRecord):
            if adapter is None:
                raise TypeError("a tool_call record before any hook_config record")
            pending.append(record)
            if len(pending) >= 256:
                await flush()
        else:
            raise TypeError(
                f"an MCP trace holds hook_config/tool_call, not {type(record).__name__}"
            )
    if pending:
        await flush()
    if telemetry is not None:
        attrs = {"mode": setting.mode.value}
        telemetry.record_samples("kernel.mcp.hook.duration", hook_samples, attrs)
    events_digest = hashlib.sha256(bytes(recorder.event_digests)).hexdigest()
    return recorder.outcome(
        events_digest, chain.digest(), counts, loop.time() - started, hook_samples
    )
    return Outcome(
        recorder.committed.hexdigest(),
        events_digest,
        chain.digest(),
        counts,
        bytes(recorder.event_digests),
        recorder.captured,
        loop.time() - started,
        hook_samples,
    )


Driver = Callable[..., Coroutine[Any, Any, Outcome]]


def run_trace_records(kind: str) -> Driver:
    """The driver of a trace kind (``kernel``, ``mcp``, ``prp``)."""
    if kind == "kernel":
        return run_kernel
    if kind == "mcp":
        return run_mcp
    if kind == "prp":
        from workloads.prp_driver import run_prp

        return run_prp
    raise ValueError(f"unknown trace kind {kind!r}; expected kernel, mcp or prp")
