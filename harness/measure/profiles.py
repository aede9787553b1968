"""pyinstrument profiles of the hot paths, captured by ``harness run`` into its bundle.

Each hot path runs once, as its workload runs it (same trace, mode and
concurrency), under a pyinstrument profiler:

* ``scheduler``: the pooled scheduler on kernel-small (``run_kernel``), trace
  durations scaled to zero, so the profile shows the runtime's own CPU cost
  rather than the simulated tool work it would otherwise mostly wait on;
* ``mcp_hooks``: the MCP adapter with cached pre/post hooks on the first calls
  of mcp-tools (``run_mcp``), tool work scaled to zero as in ``hook_latency``;
* ``pool``: the ordered pool committing no-op items at concurrency 16, as in
  ``pool_overhead``.

They are taken in the checkout being measured, so the report (a pure reader of
bundles) shows the profile of the measured commit. Each profile keeps
pyinstrument's *text* rendering and its call tree (:func:`call_tree`, bounded). Its HTML rendering
is a page whose stylesheet imports web fonts from the network, and the report
must not make a single request; :func:`html_is_offline` is the check, and
:func:`profile_hot_paths` records why the text was chosen.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import json
import re
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from pyinstrument import Profiler
from pyinstrument.renderers import HTMLRenderer

from harness.bundle.files import PROFILE_TREE_MAX_BYTES, HotPathProfile

__all__ = ["HotPath", "HotPathProfile", "html_is_offline", "profile_hot_paths"]

INTERVAL_S = 0.0005
# Frames under this share of a profile are folded into their parent (see call_tree).
TREE_FLOOR = 0.001
_EXTERNAL = re.compile(
    r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import\s+["']?(?:url\()?\s*["']?(?:https?:)?//""",
    re.IGNORECASE,
)


class HotPath(enum.StrEnum):
    """The hot paths the report profiles."""

    SCHEDULER = "scheduler"
    MCP_HOOKS = "mcp_hooks"
    POOL = "pool"


def html_is_offline(html: str) -> bool:
    """Whether an HTML page loads nothing from the network (no external src/href/url/@import)."""
    return _EXTERNAL.search(html) is None


async def _scheduler() -> None:
    from reference_impl.mode import Mode
    from workloads import scheduler_latency
    from workloads._traces import load_records
    from workloads.drivers import Setting, run_kernel

    records = load_records(scheduler_latency.TRACE)
    setting = Setting(Mode.POOLED, scheduler_latency.CONCURRENCY, time_scale=0.0)
    await run_kernel(records, setting, inject_slowdown=0.0)


async def _mcp_hooks() -> None:
    from reference_impl.mode import Mode
    from workloads import hook_latency
    from workloads._traces import load_records
    from workloads.drivers import Setting, run_mcp

    records = list(itertools.islice(load_records(hook_latency.TRACE), hook_latency.CALLS + 1))
    await run_mcp(records, Setting(Mode.POOLED, hook_latency.CONCURRENCY, time_scale=0.0))


async def _pool() -> None:
    from workloads import pool_overhead

    async def noop() -> int:
        return 1

    await pool_overhead.ordered_pool(pool_overhead.NOOP_ITEMS, 16, noop)


_PATHS: dict[HotPath, tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = {
    HotPath.SCHEDULER: (
        "Pooled scheduler, kernel-small, concurrency 8, trace durations scaled to 0 "
        "(run_kernel, as scheduler_latency)",
        _scheduler,
    ),
    HotPath.MCP_HOOKS: (
        "MCP adapter, cached pre/post hooks, first 96 calls of mcp-tools, concurrency 16, "
        "tool work scaled to 0 (run_mcp, as hook_latency)",
        _mcp_hooks,
    ),
    HotPath.POOL: (
        "Ordered pool, 20 000 no-op items at concurrency 16 (as pool_overhead)",
        _pool,
    ),
}


def _prepare(path: HotPath) -> None:
    """Load what the path reads before profiling, so the profile shows the run, not I/O."""
    from workloads import hook_latency, scheduler_latency
    from workloads._traces import load_records

    if path is HotPath.SCHEDULER:
        load_records(scheduler_latency.TRACE)
    elif path is HotPath.MCP_HOOKS:
        load_records(hook_latency.TRACE)


def call_tree(frame: Any, *, floor: float = TREE_FLOOR) -> dict[str, Any]:
    """A pyinstrument frame as a plain tree: function, ``file:line``, total and own seconds.

    Children below ``floor`` of the root's time are left out (their time stays in
    their parent's total), so the tree stays small whatever the run's length.
    """
    total = frame.time if frame is not None else 0.0

    def node(f: Any) -> dict[str, Any]:
        children = [node(c) for c in f.children if total and c.time / total >= floor]
        return {
            "function": f.function,
            "where": f"{f.file_path_short}:{f.line_no}",
            "time": f.time,
            "self": max(0.0, f.time - sum(c["time"] for c in children)),
            "children": children,
        }

    return node(frame) if frame is not None else {}


def profile_hot_paths(paths: Sequence[HotPath] = tuple(HotPath)) -> tuple[HotPathProfile, ...]:
    """Profile each of ``paths`` once, in this process, in the order given."""
    profiles = []
    for path in paths:
        description, coroutine = _PATHS[path]
        _prepare(path)
        profiler = Profiler(interval=INTERVAL_S, async_mode="enabled")
        start = time.perf_counter()
        profiler.start()
        try:
            asyncio.run(coroutine())
        finally:
            profiler.stop()
        duration_s = time.perf_counter() - start
        html = profiler.output(HTMLRenderer())
        note = (
            "pyinstrument's text view (its HTML view loads web fonts from the network, "
            "which this offline report never does)"
            if not html_is_offline(html)
            else "pyinstrument's text view"
        )
        text = profiler.output_text(unicode=True, color=False, show_all=False)
        session = profiler.last_session
        tree = json.dumps(call_tree(session.root_frame())) if session is not None else ""
        profiles.append(
            HotPathProfile(
                path=path.value,
                description=description,
                duration_s=duration_s,
                text=text.strip("\n"),
                note=note,
                tree=tree if len(tree) <= PROFILE_TREE_MAX_BYTES else "",
            )
        )
    return tuple(profiles)
