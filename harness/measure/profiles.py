"""pyinstrument profiles of the hot paths, captured by ``harness run`` into its bundle.

Each hot path (:data:`workloads.hot_paths.PATHS`: the pooled scheduler, the MCP
hooks, the pool, and the first two in legacy mode) runs once, as its workload
runs it, under a pyinstrument profiler. The workloads own what a path runs (its
trace, mode, concurrency, prefix); this module knows only the paths' names.

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
import json
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from pyinstrument import Profiler
from pyinstrument.renderers import HTMLRenderer

from harness.bundle.files import PROFILE_TREE_MAX_BYTES, HotPathProfile
from workloads import hot_paths

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
        return HotPath(self.value.removesuffix(hot_paths.LEGACY_SUFFIX))


def html_is_offline(html: str) -> bool:
    """Whether an HTML page loads nothing from the network (no external src/href/url/@import)."""
    return _EXTERNAL.search(html) is None


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
        hot_path = hot_paths.PATHS[path.value]
        hot_path.prepare()
        profiler = Profiler(interval=INTERVAL_S, async_mode="enabled")
        start = time.perf_counter()
        profiler.start()
        try:
            work = asyncio.run(hot_path.run())
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
        tree = json.dumps({**root, "work": work, "work_unit": hot_path.work_unit}) if root else ""
        profiles.append(
            HotPathProfile(
                path=path.value,
                description=hot_path.description,
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
