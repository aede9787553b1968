"""pyinstrument profiles of the hot paths, captured by ``harness run`` into its bundle.

Each hot path runs once, as its workload runs it (same trace, mode and
concurrency), under a pyinstrument profiler:

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

They are taken in the checkout being measured (``harness interleave``: in each
side's environment, after its rounds), so the report (a pure reader of bundles)
shows the profile of the measured commit, planted slowdowns included
(``$AGENTBENCH_INJECT_SLOWDOWN`` as the workload reads it). Each profile keeps
pyinstrument's *text* rendering and its call tree (:func:`call_tree`, bounded),
whose root also records the work done (``"work"``: how many ``"work_unit"``: task,
call, item), so profiles of different lengths compare per unit. Its HTML rendering
is a page whose stylesheet imports web fonts from the network, and the report
must not make a single request; :func:`html_is_offline` is the check, and
:func:`profile_hot_paths` records why the text was chosen.
"""

from __future__ import annotations

import asyncio
import enum
import importlib
import itertools
import json
import re
import subprocess
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from pyinstrument import Profiler
from pyinstrument.renderers import HTMLRenderer

from harness.bundle.files import PROFILE_TREE_MAX_BYTES, HotPathProfile

__all__ = [
    "Capture",
    "HotPath",
    "HotPathProfile",
    "capture_in",
    "html_is_offline",
    "profile_hot_paths",
]

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
    SCHEDULER_LEGACY = "scheduler_legacy"
    MCP_HOOKS_LEGACY = "mcp_hooks_legacy"

    @property
    def pooled(self) -> HotPath:
        """The pooled path a legacy one is the counterpart of (itself when pooled)."""
        return HotPath(self.value.removesuffix(LEGACY_SUFFIX))


def html_is_offline(html: str) -> bool:
    """Whether an HTML page loads nothing from the network (no external src/href/url/@import)."""
    return _EXTERNAL.search(html) is None


async def _scheduler(mode_name: str = "pooled", tasks: int | None = None) -> int:
    from reference_impl.mode import Mode
    from workloads import scheduler_latency
    from workloads._traces import load_records
    from workloads.drivers import Setting, run_kernel

    records = load_records(scheduler_latency.TRACE)[:tasks]
    setting = Setting(Mode(mode_name), scheduler_latency.CONCURRENCY, time_scale=0.0)
    # inject_slowdown as the workload has it ($AGENTBENCH_INJECT_SLOWDOWN, off when
    # unset): a side measured with the planted slowdown is profiled with it too.
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


# The legacy paths run a prefix of the pooled paths' input: whole, they would add
# about 7 s to every run (legacy is sequential and rebuilds its hooks per call);
# these prefixes add about 1.5 s. Their trees record their work, so a reader
# compares them per task or call (harness.judge.where).
LEGACY_SUFFIX = "_legacy"
LEGACY_TASKS = 25
LEGACY_CALLS = 12

_PATHS: dict[HotPath, tuple[str, str, Callable[[], Coroutine[Any, Any, int]]]] = {
    HotPath.SCHEDULER: (
        "Pooled scheduler, kernel-small, concurrency 8, trace durations scaled to 0 "
        "(run_kernel, as scheduler_latency)",
        "task",
        _scheduler,
    ),
    HotPath.MCP_HOOKS: (
        "MCP adapter, cached pre/post hooks, first 96 calls of mcp-tools, concurrency 16, "
        "tool work scaled to 0 (run_mcp, as hook_latency)",
        "call",
        _mcp_hooks,
    ),
    HotPath.POOL: (
        "Ordered pool, 20 000 no-op items at concurrency 16 (as pool_overhead)",
        "item",
        _pool,
    ),
    HotPath.SCHEDULER_LEGACY: (
        f"Legacy scheduler (one task at a time), first {LEGACY_TASKS} tasks of kernel-small, "
        "trace durations scaled to 0 (run_kernel)",
        "task",
        lambda: _scheduler("legacy", LEGACY_TASKS),
    ),
    HotPath.MCP_HOOKS_LEGACY: (
        f"Legacy MCP adapter (hooks rebuilt on every call), first {LEGACY_CALLS} calls of "
        "mcp-tools, tool work scaled to 0 (run_mcp)",
        "call",
        lambda: _mcp_hooks("legacy", LEGACY_CALLS),
    ),
}


def _prepare(path: HotPath) -> None:
    """Load what the path reads before profiling, so the profile shows the run, not I/O."""
    from workloads import hook_latency, scheduler_latency
    from workloads._traces import load_records

    if path.pooled is HotPath.SCHEDULER:
        load_records(scheduler_latency.TRACE)
    elif path.pooled is HotPath.MCP_HOOKS:
        load_records(hook_latency.TRACE)
    elif path is HotPath.POOL:
        # Its imports (aiometer, anyio) are a quarter of the profile when left to the run.
        importlib.import_module("workloads.pool_overhead")


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
        description, work_unit, coroutine = _PATHS[path]
        _prepare(path)
        profiler = Profiler(interval=INTERVAL_S, async_mode="enabled")
        start = time.perf_counter()
        profiler.start()
        try:
            work = asyncio.run(coroutine())
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
        root = call_tree(session.root_frame()) if session is not None else {}
        tree = json.dumps({**root, "work": work, "work_unit": work_unit}) if root else ""
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


# -- another interpreter's profiles (a side of `harness interleave`) --------------------

CAPTURE_TIMEOUT_S = 300.0
CAPTURE_OUTPUT_MAX_BYTES = 32_000_000
_MARKER = "agentbench-profiles:"
# Run by the other interpreter: its own harness's capture, wherever its version keeps
# it (harness.measure.profiles; harness.profiles before the packages, text views
# only). A harness with neither answers {"module": null}; anything else missing
# (pyinstrument itself) is a failure, reported with its last line.
_CAPTURE_SCRIPT = """\
import importlib, json, sys
found = None
for name in ("harness.measure.profiles", "harness.profiles"):
    try:
        found = importlib.import_module(name)
        break
    except ModuleNotFoundError as exc:
        if not exc.name or not name.startswith(exc.name):
            raise
if found is None:
    print(sys.argv[1] + json.dumps({"module": None}))
else:
    import msgspec
    profiles = msgspec.json.encode(list(found.profile_hot_paths())).decode()
    print(sys.argv[1] + '{"module": ' + json.dumps(name) + ', "profiles": ' + profiles + "}")
"""


class _CaptureOutput(msgspec.Struct, frozen=True):
    module: str | None
    profiles: list[HotPathProfile] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Capture:
    """What a capture in another interpreter brought back: its profiles, and a note.

    The note is "" when every profile came back with its call tree; otherwise it
    says what is missing and why (no profiles, or text views only).
    """

    profiles: tuple[HotPathProfile, ...]
    note: str = ""


def capture_in(
    python: Path,
    *,
    env: Mapping[str, str],
    cwd: Path,
    timeout_s: float = CAPTURE_TIMEOUT_S,
) -> Capture:
    """The hot paths' profiles as ``python``'s own installed harness captures them.

    Runs ``python`` once (from ``cwd``, with exactly ``env``), so that a checkout's
    profiles show its own code. Never raises for the capture itself: profiles are
    optional, so a failure, a timeout, a harness without profiles or an answer
    that is not one are an empty :class:`Capture` whose note says which. A tree
    above :data:`~harness.bundle.files.PROFILE_TREE_MAX_BYTES` is dropped (its
    text view kept), as :func:`profile_hot_paths` does.
    """
    try:
        completed = subprocess.run(
            [str(python), "-c", _CAPTURE_SCRIPT, _MARKER],
            capture_output=True,
            timeout=timeout_s,
            check=False,
            env=dict(env),
            cwd=cwd,
        )
    except subprocess.TimeoutExpired:
        return Capture((), f"no profiles: the capture took longer than {timeout_s:g} s")
    except OSError as exc:
        return Capture((), f"no profiles: {python} could not run: {exc.strerror or exc}")
    if completed.returncode != 0:
        lines = completed.stderr.decode(errors="replace").strip().splitlines()
        last = lines[-1] if lines else f"exit status {completed.returncode}"
        return Capture((), f"no profiles: the capture failed: {last}")
    if len(completed.stdout) > CAPTURE_OUTPUT_MAX_BYTES:
        return Capture((), f"no profiles: the capture wrote over {CAPTURE_OUTPUT_MAX_BYTES} bytes")
    answer = next(
        (
            line[len(_MARKER) :]
            for line in reversed(completed.stdout.decode(errors="replace").splitlines())
            if line.startswith(_MARKER)
        ),
        None,
    )
    try:
        if answer is None:
            raise msgspec.DecodeError("no answer line")
        output = msgspec.json.decode(answer, type=_CaptureOutput)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return Capture((), f"no profiles: the capture's answer is not profiles: {exc}")
    if output.module is None:
        return Capture((), "no profiles: its harness has no profile capture")
    profiles = tuple(
        msgspec.structs.replace(p, tree="") if len(p.tree) > PROFILE_TREE_MAX_BYTES else p
        for p in output.profiles
    )
    without = [p.path for p in profiles if not p.tree]
    note = (
        f"text views only for {', '.join(without)}: no call tree (from {output.module})"
        if without
        else ""
    )
    return Capture(profiles, note)
