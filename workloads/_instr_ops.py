"""The entry points the instruction clock runs under cachegrind: one operation per process.

``python -m workloads._instr_ops <op> <n>`` sets operation ``op`` up, runs it
:data:`WARMUP` times, then ``n`` times, and exits. :mod:`workloads.instructions`
runs it at two sizes (``n`` and 0) and divides the difference of the two
processes' instruction counts by ``n``. So everything but the ``n`` measured
units is paid by both processes and cancels out, which each op guarantees:

* the set-up (imports, trace reading, building the pool, scheduler or adapter)
  does not depend on ``n``;
* the warm-up units are the same in both processes: first-call costs (a
  module's first import, CPython's specialisation of new code, a lazy
  importer's first load) fall in the warm-up, not in the measured units;
* no branch depends on timing: nothing sleeps (simulated work is a zero-length
  or virtual-clock wait, and where jobs finish out of order, the scheduler's,
  the pool times itself on the virtual clock too), and no thread is ever
  started (a thread's scheduling under valgrind depends on timing: the proof
  import and the SDK's resource detection run inline);
* nothing depends on a random draw or on the machine's state, but for one
  thing: the telemetry op's SDK imports psutil, which parses the machine's CPU
  times (a few instructions more or less in a whole process).

Each op imports only what it needs, inside its function, so that a process
pays (in wall time under cachegrind) for its own op's imports only. Several ops
(``<op>,<op> 0``) run one after another: the native warm-up of a whole pass.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import sys
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

__all__ = ["OPS", "WARMUP", "main"]

# Units every process runs before the measured ones (see the module docstring).
WARMUP = 3

T = TypeVar("T")


async def _noop() -> int:
    return 1


def _ignore(_index: int, _value: object) -> None:
    return None


def _pool(concurrency: int) -> Callable[[int], None]:
    def run(n: int) -> None:
        """The ordered pool: one batch of ``n`` no-op jobs, committed in order."""
        from reference_impl.pool import OrderedPool

        async def main() -> None:
            pool: OrderedPool[int] = OrderedPool(concurrency)
            for items in (WARMUP, n):
                await pool.run([_noop] * items, _ignore)

        asyncio.run(main())

    return run


def _sequential(n: int) -> None:
    """Today's sequential path: each job awaited, then committed, one after another."""

    async def batch(items: int) -> None:
        jobs = [_noop] * items
        for index, job in enumerate(jobs):
            _ignore(index, await job())

    async def main() -> None:
        for items in (WARMUP, n):
            await batch(items)

    asyncio.run(main())


def _proof_import_legacy(n: int) -> None:
    """Today's proof import per invocation: ``sys.modules.pop`` then a real import."""
    import importlib

    from reference_impl.kernel.scheduler import DEFAULT_PROOF_MODULE

    for _ in range(WARMUP + n):
        sys.modules.pop(DEFAULT_PROOF_MODULE, None)
        importlib.import_module(DEFAULT_PROOF_MODULE)


def _proof_import_cached(n: int) -> None:
    """The lazy importer's cost per invocation once the module is loaded."""
    from reference_impl.cache import LazyImporter
    from reference_impl.kernel.scheduler import DEFAULT_PROOF_MODULE

    importer = LazyImporter()
    # The one real import, in this thread: a worker thread's scheduling is not
    # deterministic under valgrind, and the per-invocation cost is the hit path.
    importer.get_sync(DEFAULT_PROOF_MODULE)

    async def main() -> None:
        for _ in range(WARMUP + n):
            await importer.get(DEFAULT_PROOF_MODULE)

    asyncio.run(main())


def _mcp(mode_name: str) -> Callable[[int], None]:
    def run(n: int) -> None:
        """Tool calls of mcp-tools through the adapter: hooks built (or cached) and judged.

        The tools and the hooks' own run time are instantaneous: what is counted
        is hook construction, judging, the pool of independent hooks and the
        adapter's bookkeeping.
        """
        import hashlib

        from reference_impl.events import canonical_json
        from reference_impl.kernel.mcp import HookSpec, McpAdapter
        from reference_impl.mode import Mode
        from workloads._traces import load_records
        from workloads.drivers import hook_config
        from workloads.trace import HookConfigRecord, ToolCallRecord

        records = load_records("mcp-tools")
        config_record = next(r for r in records if isinstance(r, HookConfigRecord))
        calls = [r for r in records if isinstance(r, ToolCallRecord)]
        config = hook_config(config_record)  # as workloads.drivers builds it from the trace
        failing: dict[str, bool] = {}

        def tool(name: str) -> Callable[[Mapping[str, Any]], Any]:
            async def call(args: Mapping[str, Any]) -> str:
                if failing[name]:
                    raise RuntimeError(f"{name}: simulated failure")
                return hashlib.sha256(canonical_json({"tool": name, **args})).hexdigest()[:16]

            return call

        async def instant(_spec: HookSpec) -> None:
            return None

        adapter = McpAdapter(
            Mode(mode_name),
            tools={name: tool(name) for name in config_record.tools},
            hook_config=config,
            hook_wait=instant,
        )

        async def main() -> None:
            for call in itertools.islice(itertools.cycle(calls), WARMUP + n):
                failing[call.tool] = call.fails
                await adapter.call_tool(call.run_id, call.tool, call.args)

        asyncio.run(main())

    return run


def _scheduler(mode_name: str, concurrency: int) -> Callable[[int], None]:
    def run(n: int) -> None:
        """Tasks of kernel-small through the scheduler, on the virtual clock (no waiting)."""
        from reference_impl.kernel.scheduler import Scheduler, TaskSpec
        from reference_impl.mode import Mode
        from reference_impl.pool import OrderedPool
        from reference_impl.virtual_time import VirtualTimeLoop
        from workloads._traces import load_records
        from workloads.trace import TaskRecord

        tasks = [
            TaskSpec(r.id, r.priority, r.duration_s, r.fails, r.payload)
            for r in load_records("kernel-small")
            if isinstance(r, TaskRecord) and not r.fails
        ]
        loop = VirtualTimeLoop()
        # The pool's own timings on the virtual clock too: which of two real durations
        # is the longer (its commit-wait maximum) would take a different branch from
        # run to run.
        scheduler = Scheduler(
            Mode(mode_name),
            max_concurrent=concurrency,
            pool_factory=lambda width: OrderedPool(width, clock=loop.time),
        )
        # The pooled scheduler's one proof import, done here in this thread: its lazy
        # importer would load it in a worker thread, whose scheduling under valgrind
        # is not deterministic (Scheduler has no public way to preload it).
        scheduler._importer.get_sync(scheduler.proof_module)

        async def main() -> None:
            # The warm-up run pays the other one-time costs; the measured run starts
            # with nothing new.
            for count in (WARMUP, n):
                await scheduler.run(itertools.islice(itertools.cycle(tasks), count))

        with asyncio.Runner(loop_factory=lambda: loop) as runner:
            runner.run(main())

    return run


def _graph(mode_name: str) -> Callable[[int], None]:
    def run(n: int) -> None:
        """Graph runs (one build unit, one evaluation sample, instant nodes)."""
        from reference_impl.kernel.graph import GraphRunner, GraphSpec
        from reference_impl.mode import Mode

        runner = GraphRunner(Mode(mode_name), GraphSpec(build_units=1, evaluation_samples=1))

        async def main() -> None:
            for index in range(WARMUP + n):
                await runner.run(f"run-{index:06d}")

        asyncio.run(main())

    return run


class _InlineExecutor(concurrent.futures.Executor):
    """Runs each submitted call at once, in the calling thread: no worker thread."""

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        super().__init__()

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the caller through the future, as a pool does
            future.set_exception(exc)
        return future


def _telemetry_record(n: int) -> None:
    """One histogram value recorded through the telemetry's public API (memory exporter)."""
    # The SDK draws random UUIDs (context keys when imported, service.instance.id when
    # made) and the text of a UUID costs a few instructions more or less by its value:
    # in this process they come from a counter, patched before the SDK is imported.
    drawn = itertools.count(1)
    uuid.uuid4 = lambda: uuid.UUID(int=0x5EED << 64 | next(drawn), version=4)
    from reference_impl.telemetry import Exporter, Telemetry, TelemetryConfig

    # The SDK detects its resource in a thread pool (threads: see the module
    # docstring): the detectors run inline while the telemetry is made.
    thread_pool = concurrent.futures.ThreadPoolExecutor
    concurrent.futures.ThreadPoolExecutor = _InlineExecutor  # type: ignore[misc, assignment]  # set-up only
    try:
        telemetry = Telemetry(TelemetryConfig(exporter=Exporter.MEMORY))
    finally:
        concurrent.futures.ThreadPoolExecutor = thread_pool  # type: ignore[misc]  # restored
    attributes = {"mode": "pooled"}
    for index in range(WARMUP + n):
        telemetry.record_samples("kernel.pool.run_time", (0.0005 * (index % 64),), attributes)
    telemetry.shutdown()


OPS: Mapping[str, Callable[[int], None]] = {
    "pool_item_c1": _pool(1),
    "pool_item_c4": _pool(4),
    "pool_item_c16": _pool(16),
    "pool_item_c64": _pool(64),
    "sequential_item": _sequential,
    "proof_import_legacy": _proof_import_legacy,
    "proof_import_cached": _proof_import_cached,
    "hook_call_legacy": _mcp("legacy"),
    "hook_call_pooled": _mcp("pooled"),
    "scheduler_task_pooled": _scheduler("pooled", 8),
    "graph_run_pooled": _graph("pooled"),
    "telemetry_record": _telemetry_record,
}


def main(argv: list[str]) -> int:
    """``<op>[,<op>...] <n>``: run each op ``n`` times after its warm-up; 2 for bad arguments."""
    names = argv[0].split(",") if argv else []
    if len(argv) != 2 or not argv[1].isdigit() or not names or not set(names) <= set(OPS):
        print(
            f"usage: python -m workloads._instr_ops <op>[,<op>...] <n>; op one of {', '.join(OPS)}",
            file=sys.stderr,
        )
        return 2
    for name in names:
        OPS[name](int(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
