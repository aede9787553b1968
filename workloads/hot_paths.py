"""The hot paths the harness profiles, each run as its workload runs it.

A hot path is a named piece of work (:data:`PATHS`): its description, the unit its
work is counted in (task, call, item), how to load what it reads beforehand (so
a profile shows the run, not I/O) and the run itself, which returns how many
units it did. Each one reads its workload's own constants (trace, concurrency,
items), so a profile is of what the workload measures, and the harness's
profiler (:mod:`harness.measure.profiles`) knows only the paths' names:

* ``scheduler``: the pooled scheduler on kernel-small (``run_kernel``), trace
  durations scaled to zero, so the profile shows the runtime's own CPU cost
  rather than the simulated tool work it would otherwise mostly wait on;
* ``mcp_hooks``: the MCP adapter with cached pre/post hooks on the first calls
  of mcp-tools (``run_mcp``), tool work scaled to zero as in ``hook_latency``;
* ``pool``: the ordered pool committing no-op items at concurrency 16, as in
  ``pool_overhead``;
* ``scheduler_legacy`` and ``mcp_hooks_legacy``: the first two in legacy mode, on
  a prefix of their input (:data:`LEGACY_TASKS`, :data:`LEGACY_CALLS`), for the
  report's legacy/pooled pairs.

A planted slowdown (``$AGENTBENCH_INJECT_SLOWDOWN``, ``$AGENTBENCH_INJECT_CPU``)
is read as the workload reads it, so a side measured with it is profiled with it.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

__all__ = ["LEGACY_CALLS", "LEGACY_SUFFIX", "LEGACY_TASKS", "PATHS", "HotPathRun"]

# The legacy paths run a prefix of the pooled paths' input: whole, they would add
# about 7 s to every run (legacy is sequential and rebuilds its hooks per call);
# these prefixes add about 1.5 s. Their trees record their work, so a reader
# compares them per task or call (harness.judge.where).
LEGACY_SUFFIX = "_legacy"
LEGACY_TASKS = 25
LEGACY_CALLS = 12


@dataclass(frozen=True, slots=True)
class HotPathRun:
    """One hot path: what it is, its unit of work, what to load first, and the run."""

    description: str
    work_unit: str
    prepare: Callable[[], None]
    run: Callable[[], Coroutine[Any, Any, int]]


def _load_scheduler_trace() -> None:
    from workloads import scheduler_latency
    from workloads._traces import load_records

    load_records(scheduler_latency.TRACE)


def _load_mcp_trace() -> None:
    from workloads import hook_latency
    from workloads._traces import load_records

    load_records(hook_latency.TRACE)


def _import_pool_overhead() -> None:
    # Its imports (aiometer, anyio) are a quarter of the profile when left to the run.
    importlib.import_module("workloads.pool_overhead")


async def _scheduler(mode_name: str = "pooled", tasks: int | None = None) -> int:
    from reference_impl.mode import Mode
    from workloads import scheduler_latency
    from workloads._traces import load_records
    from workloads.drivers import Setting, run_kernel

    records = load_records(scheduler_latency.TRACE)[:tasks]
    setting = Setting(Mode(mode_name), scheduler_latency.CONCURRENCY, time_scale=0.0)
    await run_kernel(records, setting)
    return len(records)


async def _mcp_hooks(mode_name: str = "pooled", calls: int | None = None) -> int:
    from reference_impl.mode import Mode
    from workloads import hook_latency
    from workloads._traces import load_records
    from workloads.drivers import Setting, run_mcp

    wanted = hook_latency.CALLS if calls is None else calls
    records = list(itertools.islice(load_records(hook_latency.TRACE), wanted + 1))
    await run_mcp(records, Setting(Mode(mode_name), hook_latency.CONCURRENCY, time_scale=0.0))
    return len(records) - 1  # the first record is the adapter's configuration


async def _pool() -> int:
    from workloads import pool_overhead

    async def noop() -> int:
        return 1

    await pool_overhead.ordered_pool(pool_overhead.NOOP_ITEMS, 16, noop)
    return pool_overhead.NOOP_ITEMS


PATHS: dict[str, HotPathRun] = {
    "scheduler": HotPathRun(
        "Pooled scheduler, kernel-small, concurrency 8, trace durations scaled to 0 "
        "(run_kernel, as scheduler_latency)",
        "task",
        _load_scheduler_trace,
        _scheduler,
    ),
    "mcp_hooks": HotPathRun(
        "MCP adapter, cached pre/post hooks, first 96 calls of mcp-tools, concurrency 16, "
        "tool work scaled to 0 (run_mcp, as hook_latency)",
        "call",
        _load_mcp_trace,
        _mcp_hooks,
    ),
    "pool": HotPathRun(
        "Ordered pool, 20 000 no-op items at concurrency 16 (as pool_overhead)",
        "item",
        _import_pool_overhead,
        _pool,
    ),
    "scheduler_legacy": HotPathRun(
        f"Legacy scheduler (one task at a time), first {LEGACY_TASKS} tasks of kernel-small, "
        "trace durations scaled to 0 (run_kernel)",
        "task",
        _load_scheduler_trace,
        lambda: _scheduler("legacy", LEGACY_TASKS),
    ),
    "mcp_hooks_legacy": HotPathRun(
        f"Legacy MCP adapter (hooks rebuilt on every call), first {LEGACY_CALLS} calls of "
        "mcp-tools, tool work scaled to 0 (run_mcp)",
        "call",
        _load_mcp_trace,
        lambda: _mcp_hooks("legacy", LEGACY_CALLS),
    ),
}
