"""Drivers: run a trace's input records through the reference implementation.

One driver per trace kind (``kernel``: the scheduler, ``mcp``: the MCP adapter,
``prp``: the PRP runner). A driver takes the input records (a stream), a
:class:`Setting` (mode, concurrency, timing jitter and its seed, time scale)
and returns an :class:`TraceOutcome`: the three digests the trace footer holds, the
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
from array import array
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
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
from workloads.driving import (
    CANONICAL,
    PoolFactory,
    Recorder,
    Setting,
    TraceOutcome,
    jittered,
)
from workloads.errors import SettingError, TraceKindError
from workloads.prp_driver import run_prp
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
    "PoolFactory",
    "Recorder",
    "Setting",
    "TraceOutcome",
    "hook_config",
    "run_kernel",
    "run_mcp",
    "run_trace_records",
]


async def run_kernel(
    records: Iterable[InputRecord],
    setting: Setting,
    *,
    capture_index: int | None = None,
    pool_factory: PoolFactory | None = None,
    inject_slowdown: float | None = None,
    telemetry: Telemetry | None = None,
) -> TraceOutcome:
    """Run a kernel trace's tasks through the scheduler.

    ``setting.concurrency`` is the scheduler's batch size and pool width; the
    legacy mode runs each batch one task at a time whatever it is.
    ``inject_slowdown`` defaults to ``$AGENTBENCH_INJECT_SLOWDOWN`` (off when
    unset): a planted slowdown of the scheduler path, only to validate comparisons.
    """
    if inject_slowdown is None:
        inject_slowdown = injected_slowdown()
    recorder = Recorder(capture_index)
    jitter = jittered(setting)

    def tasks() -> Iterator[TaskSpec]:
        for record in records:
            if not isinstance(record, TraceTask):
                raise TraceKindError(
                    f"a kernel trace holds task records, not {type(record).__name__}"
                )
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
        raise SettingError(f"{INJECT_SLOWDOWN_ENV}={text!r}: expected a fraction >= 0 (0.1 = 10 %)")
    return value


def hook_config(record: HookConfigRecord) -> HookConfig:
    """The adapter's hook configuration as a trace's config record describes it."""
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
) -> TraceOutcome:
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
    jitter = jittered(setting)
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
            config = hook_config(record)
            tools = {name: _simulated_tool(name) for name in record.tools}
            # A new tool set is a new adapter (as a runtime restart would be).
            adapter = McpAdapter(setting.mode, tools=tools, hook_config=config)
            if telemetry is not None:
                telemetry.add_source(mcp_source(adapter))
        elif isinstance(record, ToolCallRecord):
            if adapter is None:
                raise TraceKindError("a tool_call record before any hook_config record")
            pending.append(record)
            if len(pending) >= 256:
                await flush()
        else:
            raise TraceKindError(
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


Driver = Callable[..., Coroutine[Any, Any, TraceOutcome]]


def run_trace_records(kind: str) -> Driver:
    """The driver of a trace kind (``kernel``, ``mcp``, ``prp``)."""
    if kind == "kernel":
        return run_kernel
    if kind == "mcp":
        return run_mcp
    if kind == "prp":
        return run_prp
    raise TraceKindError(f"unknown trace kind {kind!r}; expected kernel, mcp or prp")
