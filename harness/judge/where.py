"""Where the time went: which functions' own time changed between two profiles of one hot path.

A comparison row says *that* a workload got slower; the hot path's profiles on the
two sides (``profiles.json``, captured by ``harness run`` and ``harness interleave``)
say *where*. For one hot path, :func:`attribute` sets the base's call tree against
the candidate's and lists the functions whose own (self) time changed most, each
with its share of the total change; :func:`diff_tree` lays the same change over
the candidate's call tree, for a differential flame graph.

What a function is: its name and its file, not its line. A branch that adds a few
lines above a function moves its ``def``; keyed by line, every such function would
read as deleted and re-added.

Guarantees:

* The call trees are read from the bundle format of
  :class:`harness.bundle.files.HotPathProfile` (nested ``{"function", "where",
  "time", "self", "children"}``, seconds, optionally ``"work"`` and ``"work_unit"``
  at the root); anything else is a :class:`~harness.errors.BundleError` naming the
  profile and the node.
* pyinstrument's synthetic ``[self]`` frames, and built-in (C) functions, are
  folded into their caller's own time: a loop calling ``time.thread_time`` spends
  its time in the loop's function, the code one can change. Siblings naming one
  function are merged. The tree's total is unchanged, and the own times of all
  functions add up to it (within pyinstrument's rounding).
* Per unit of work: when the two profiles record different amounts of work of one
  unit (``"work"``: tasks, calls, items), every time is divided by the work first,
  so a profile of 200 tasks and one of 100 compare per task. Otherwise both runs
  did the hot path's fixed input, and times compare as they are.
* Shares: a function's change over the net change of the total (they add up to
  100 %); none when the changes cancel out (a net change under a tenth of the
  changes' absolute sum), where a share would mean nothing.
* Deterministic: ties are broken by name, never by dict or hash order.

Which hot path explains which workload is the workload registry's
(:attr:`workloads.registry.WorkloadInfo.hot_path`, read as :data:`HOT_PATH_OF_WORKLOAD`).

Why one module: reading and comparing are one computation. The own times that
:func:`attribute` and :func:`diff_tree` divide up add up to the total only because the reader
folded ``[self]`` frames and C functions and merged siblings (``_node``, ``_merged``), and the
two comparisons share the private scaling per unit of work (``_scales``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.bundle.files import HotPathProfile
from harness.errors import BundleError
from workloads import registry

__all__ = [
    "ACTIONABLE_VERDICTS",
    "HOT_PATH_OF_WORKLOAD",
    "Attribution",
    "CallNode",
    "CallTree",
    "DiffNode",
    "FunctionChange",
    "HotPathWhere",
    "Work",
    "attribute",
    "diff_tree",
    "format_seconds",
    "parse_tree",
    "where_of_rows",
]

# The hot path whose profile shows where a workload's time goes (harness.measure.profiles).
HOT_PATH_OF_WORKLOAD: Mapping[str, str] = {
    name: info.hot_path for name, info in registry.WORKLOADS.items() if info.hot_path
}
# Row verdicts (harness.judge.stats.RowVerdict values) whose "where" is worth reading.
ACTIONABLE_VERDICTS = ("regression", "slower", "faster")
SELF_FRAME = "[self]"
# pyinstrument's file of a C function (time.thread_time, epoll.poll, lock.acquire).
BUILTIN = "<built-in>"
# A tree deeper than this is refused (pyinstrument's trees are a few dozen deep).
MAX_DEPTH = 400
# Changes cancelling out: the net change is under this fraction of their absolute sum.
CANCELLED = 0.1
_EXPECTED = 'a call tree: nested {"function", "where", "time", "self", "children"}'


@dataclass(frozen=True, slots=True)
class CallNode:
    """One frame of a call tree: its function, where it is, its total and own seconds."""

    function: str
    file: str
    line: str
    time_s: float
    self_s: float
    children: tuple[CallNode, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        """What identifies the function across two commits: its name and file, not its line."""
        return (self.function, self.file)

    @property
    def where(self) -> str:
        """``file:line`` (the file alone when the line is unknown)."""
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True, slots=True)
class Work:
    """How much work a profile did: ``count`` of ``unit`` (tasks, calls, items)."""

    count: float
    unit: str


@dataclass(frozen=True, slots=True)
class CallTree:
    """One hot path's call tree (``[self]`` folded, siblings merged) and its work."""

    path: str
    root: CallNode
    work: Work | None = None

    @property
    def total_s(self) -> float:
        """The profile's total wall seconds."""
        return self.root.time_s


@dataclass(frozen=True, slots=True)
class FunctionChange:
    """One function's own time on each side (per ``Attribution.scale``) and its share."""

    function: str
    where: str
    base_s: float
    candidate_s: float
    share: float | None

    @property
    def delta_s(self) -> float:
        """Candidate minus base: positive is more own time in the candidate."""
        return self.candidate_s - self.base_s


@dataclass(frozen=True, slots=True)
class Attribution:
    """The change of one hot path's time, function by function, largest change first.

    Times are seconds per :attr:`scale` (``"run"`` or a unit of work); ``note``
    says how the two profiles were made comparable.
    """

    path: str
    scale: str
    base_total_s: float
    candidate_total_s: float
    changes: tuple[FunctionChange, ...]
    note: str

    @property
    def change_s(self) -> float:
        """The net change of the total, candidate minus base."""
        return self.candidate_total_s - self.base_total_s

    @property
    def ratio(self) -> float | None:
        """Candidate total over base total (None when the base is empty)."""
        return self.candidate_total_s / self.base_total_s if self.base_total_s > 0 else None

    def top(self, limit: int = 5) -> tuple[FunctionChange, ...]:
        """The ``limit`` functions whose own time changed most (either way)."""
        return self.changes[:limit]


@dataclass(frozen=True, slots=True)
class DiffNode:
    """A frame of the candidate's tree with the base's own time of the same stack.

    Seconds per the attribution's scale; ``base_self_s`` is 0 for a stack the base
    never reached.
    """

    function: str
    where: str
    time_s: float
    self_s: float
    base_self_s: float
    children: tuple[DiffNode, ...] = ()

    @property
    def delta_s(self) -> float:
        """Own time, candidate minus base."""
        return self.self_s - self.base_self_s


@dataclass(frozen=True, slots=True)
class HotPathWhere:
    """One hot path in a comparison: the rows it explains and where their time went.

    ``attribution`` (and ``diff``) are None when a side has no usable profile of
    the path; ``note`` then says why.
    """

    path: str
    rows: tuple[str, ...]
    attribution: Attribution | None = None
    diff: DiffNode | None = None
    note: str = ""


def format_seconds(seconds: float) -> str:
    """``seconds`` in s, ms or µs, three significant digits (``-1.25 ms``)."""
    magnitude = abs(seconds)
    if magnitude >= 1.0:
        return f"{seconds:.3g} s"
    if magnitude >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


# -- reading ---------------------------------------------------------------------------


def _number(value: object, field: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BundleError(
            f"field {field} is {value!r}", where=where, expected="a finite number of seconds"
        )
    return max(0.0, float(value))


def _node(data: object, where: str, depth: int) -> CallNode:
    if depth > MAX_DEPTH:
        raise BundleError(f"call tree deeper than {MAX_DEPTH}", where=where, expected=_EXPECTED)
    if not isinstance(data, dict):
        raise BundleError(f"a node is {type(data).__name__}", where=where, expected=_EXPECTED)
    function, location, children = data.get("function"), data.get("where"), data.get("children")
    if not isinstance(function, str) or not isinstance(location, str):
        raise BundleError("a node without function or where", where=where, expected=_EXPECTED)
    here = f"{where} > {function}"
    if not isinstance(children, list):
        raise BundleError("children is not a list", where=here, expected=_EXPECTED)
    file, _, line = location.rpartition(":")
    if not file:
        file, line = location, ""
    nodes = [_node(child, here, depth + 1) for child in children]
    own = _number(data.get("self"), "self", here)
    kept: list[CallNode] = []
    for child in nodes:
        if child.function == SELF_FRAME:
            own += child.time_s  # pyinstrument's own-time frame: the parent's self time
        elif child.file == BUILTIN:
            own += child.self_s  # C code runs on its caller's behalf
            kept.extend(child.children)
        else:
            kept.append(child)
    return CallNode(
        function=function,
        file=file,
        line="" if line == "None" else line,
        time_s=_number(data.get("time"), "time", here),
        self_s=own,
        children=_merged(kept),
    )


def _merged(nodes: Sequence[CallNode]) -> tuple[CallNode, ...]:
    """Siblings of one function merged (times added, children merged), largest first."""
    groups: dict[tuple[str, str], list[CallNode]] = {}
    for node in nodes:
        groups.setdefault(node.key, []).append(node)
    merged = [
        group[0]
        if len(group) == 1
        else CallNode(
            function=group[0].function,
            file=group[0].file,
            line=group[0].line,
            time_s=sum(node.time_s for node in group),
            self_s=sum(node.self_s for node in group),
            children=_merged([child for node in group for child in node.children]),
        )
        for group in groups.values()
    ]
    return tuple(sorted(merged, key=lambda n: (-n.time_s, n.function, n.file)))


def parse_tree(text: str, *, path: str, where: str) -> CallTree:
    """The call tree of a :class:`~harness.bundle.files.HotPathProfile` (its ``tree`` JSON).

    ``where`` names it in errors (the bundle and the path). Raises
    :class:`~harness.errors.BundleError` when it is not a call tree.
    """
    try:
        data: Any = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BundleError(
            f"call tree is not JSON: {exc}", where=where, expected=_EXPECTED
        ) from None
    root = _node(data, where, 0)
    work = None
    count, unit = data.get("work"), data.get("work_unit")
    if count is not None or unit is not None:
        if not isinstance(unit, str) or not unit or _number(count, "work", where) <= 0:
            raise BundleError(
                f"work {count!r} {unit!r}", where=where, expected="work > 0 and a work_unit name"
            )
        work = Work(float(count), unit)
    return CallTree(path=path, root=root, work=work)


# -- comparing -------------------------------------------------------------------------


def _self_times(root: CallNode) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], str]]:
    """Each function's own seconds over the whole tree, and its ``file:line``."""
    seconds: dict[tuple[str, str], float] = {}
    where: dict[tuple[str, str], str] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        seconds[node.key] = seconds.get(node.key, 0.0) + node.self_s
        where.setdefault(node.key, node.where)
        stack.extend(node.children)
    return seconds, where


def _scales(base: CallTree, candidate: CallTree) -> tuple[str, float, float, str]:
    """The unit times are expressed in, each side's divisor, and a sentence saying so."""
    if base.work is not None and candidate.work is not None:
        if base.work.unit == candidate.work.unit and base.work.count != candidate.work.count:
            return (
                base.work.unit,
                base.work.count,
                candidate.work.count,
                f"per {base.work.unit}: the base profiled {base.work.count:g} "
                f"{base.work.unit}s, the candidate {candidate.work.count:g}",
            )
        if base.work.unit == candidate.work.unit:
            return (
                "run",
                1.0,
                1.0,
                f"both runs did the same work ({base.work.count:g} {base.work.unit}s)",
            )
        return (
            "run",
            1.0,
            1.0,
            f"the runs counted different work ({base.work.unit}s vs {candidate.work.unit}s): "
            "compared per run",
        )
    return (
        "run",
        1.0,
        1.0,
        "work not recorded by a side: both runs taken as the hot path's fixed input",
    )


def attribute(base: CallTree, candidate: CallTree) -> Attribution:
    """The functions of one hot path whose own time changed, largest change first."""
    scale, base_work, candidate_work, note = _scales(base, candidate)
    base_times, base_where = _self_times(base.root)
    candidate_times, candidate_where = _self_times(candidate.root)
    keys = sorted(set(base_times) | set(candidate_times))
    before = {key: base_times.get(key, 0.0) / base_work for key in keys}
    after = {key: candidate_times.get(key, 0.0) / candidate_work for key in keys}
    deltas = {key: after[key] - before[key] for key in keys}
    net = sum(deltas.values())
    gross = sum(abs(delta) for delta in deltas.values())
    meaningful = gross > 0 and abs(net) >= CANCELLED * gross
    changes = [
        FunctionChange(
            function=key[0],
            where=candidate_where.get(key) or base_where[key],
            base_s=before[key],
            candidate_s=after[key],
            share=deltas[key] / net if meaningful else None,
        )
        for key in keys
    ]
    changes.sort(key=lambda c: (-abs(c.delta_s), c.function, c.where))
    if gross > 0 and not meaningful:
        note += "; the changes cancel out (no net change to share)"
    return Attribution(
        path=candidate.path,
        scale=scale,
        base_total_s=base.total_s / base_work,
        candidate_total_s=candidate.total_s / candidate_work,
        changes=tuple(changes),
        note=note,
    )


def diff_tree(base: CallTree, candidate: CallTree) -> DiffNode:
    """The candidate's tree, each frame with the base's own time of the same stack.

    Stacks match by function and file from the root down (the roots match whatever
    they are: the profiler's own entry point may have moved); times per unit of
    work as in :func:`attribute`.
    """
    _, base_work, candidate_work, _ = _scales(base, candidate)

    def node(frame: CallNode, match: CallNode | None) -> DiffNode:
        below = {child.key: child for child in match.children} if match is not None else {}
        return DiffNode(
            function=frame.function,
            where=frame.where,
            time_s=frame.time_s / candidate_work,
            self_s=frame.self_s / candidate_work,
            base_self_s=match.self_s / base_work if match is not None else 0.0,
            children=tuple(node(child, below.get(child.key)) for child in frame.children),
        )

    return node(candidate.root, base.root)


def _trees(
    profiles: Iterable[HotPathProfile], side: str
) -> tuple[dict[str, CallTree], dict[str, str]]:
    """Each profile's call tree by hot path, and why a tree could not be read."""
    trees: dict[str, CallTree] = {}
    problems: dict[str, str] = {}
    for profile in profiles:
        if not profile.tree:
            continue
        try:
            trees[profile.path] = parse_tree(
                profile.tree, path=profile.path, where=f"{side} profile {profile.path}"
            )
        except BundleError as exc:
            problems[profile.path] = str(exc)
    return trees, problems


def _missing(
    path: str,
    base_problem: str | None,
    candidate_problem: str | None,
    base_missing: bool,
    candidate_missing: bool,
) -> str:
    """Why there is no "where" for ``path``: the unreadable trees, or the sides without one."""
    problems = [p for p in (base_problem, candidate_problem) if p]
    absent = [
        side
        for side, missing, problem in (
            ("base", base_missing, base_problem),
            ("candidate", candidate_missing, candidate_problem),
        )
        if missing and not problem
    ]
    if absent:
        sides = "neither bundle has a" if len(absent) == 2 else f"the {absent[0]} bundle has no"
        problems.append(
            f"{sides} call tree of {path} (a run with --no-profile, or by a harness "
            "without profiles or call trees)"
        )
    return "; ".join(problems)


def where_of_rows(
    rows: Iterable[tuple[str, str, str]],
    base_profiles: Sequence[HotPathProfile],
    candidate_profiles: Sequence[HotPathProfile],
) -> tuple[HotPathWhere, ...]:
    """For each hot path behind an actionable row, where its time went.

    ``rows`` are ``(workload, label, verdict)``; a row counts when its verdict is
    one of :data:`ACTIONABLE_VERDICTS` and its workload has a hot path
    (:data:`HOT_PATH_OF_WORKLOAD`). One entry per hot path, in the order of the
    first row naming it; without a usable profile on both sides its note says why.
    """
    wanted: dict[str, list[str]] = {}
    for workload, label, verdict in rows:
        path = HOT_PATH_OF_WORKLOAD.get(workload)
        if path is not None and verdict.lower() in ACTIONABLE_VERDICTS:
            wanted.setdefault(path, []).append(f"{label} ({verdict})")
    if not wanted:
        return ()
    base_trees, base_problems = _trees(base_profiles, "base")
    candidate_trees, candidate_problems = _trees(candidate_profiles, "candidate")
    found: list[HotPathWhere] = []
    for path, labels in wanted.items():
        base, candidate = base_trees.get(path), candidate_trees.get(path)
        if base is None or candidate is None:
            found.append(
                HotPathWhere(
                    path,
                    tuple(labels),
                    note=_missing(
                        path,
                        base_problems.get(path) if base is None else None,
                        candidate_problems.get(path) if candidate is None else None,
                        base is None,
                        candidate is None,
                    ),
                )
            )
            continue
        found.append(
            HotPathWhere(
                path,
                tuple(labels),
                attribution=attribute(base, candidate),
                diff=diff_tree(base, candidate),
            )
        )
    return tuple(found)
