"""Wall rows and their instruction twins: the exact count decides what the noise cannot.

A CPU-bound path is measured twice: in wall time (what users feel, noisy on a
shared machine) and in instructions under cachegrind (exact run to run). The
registry names a wall metric's twin (:attr:`workloads.registry.Metric.twin`).
After every row of a comparison is judged, :func:`settle` reads each wall row
beside its twin's row:

* A wall row left **inconclusive** (its MDE above its threshold) whose twin is
  decided gets the verdict ``by instructions`` and a note naming the twin's
  verdict and ratio: the wall noise could not tell, the exact count of the same
  path can. Only CPU-bound paths have twins (a path that sleeps or waits does
  not), so no waiting is hidden this way; the note says the decision is on CPU
  work. The row keeps its own ratio, interval, noise and MDE.
* A **decided** wall row whose twin moved the other way, or not at all while
  the wall moved (or the reverse), keeps its verdict and gets a note saying the
  clocks disagree and what that usually means: wall slower with flat
  instructions is waiting or scheduling; more instructions with flat wall time
  is extra CPU work hidden in the wall noise.
* A twin that is missing (no instruction pass: valgrind absent, --no-instructions),
  an error or itself inconclusive changes nothing.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from harness.judge.stats import RowVerdict
from workloads.registry import INSTRUCTIONS

if TYPE_CHECKING:
    from harness.judge.compare import Row
    from workloads.registry import Metric

__all__ = ["MOVED", "settle"]

# Verdicts that say the metric moved, and which way (+1 worse, -1 better).
MOVED = {RowVerdict.REGRESSION: 1, RowVerdict.SLOWER: 1, RowVerdict.FASTER: -1}
_DECIDED = {*MOVED, RowVerdict.NO_CHANGE}
_WALL = "wall"
_MEDIAN = "median"


def _figure(row: Row) -> str:
    ratio = "-" if row.ratio is None else f"{row.ratio:.3f}"
    return f"{row.verdict.value} {ratio}"


def _percent(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if math.isfinite(value) else "unbounded"


def _disagreement(wall: Row, twin: Row) -> str:
    """The note of two decided rows that disagree; "" when they agree."""
    wall_way, twin_way = MOVED.get(wall.verdict, 0), MOVED.get(twin.verdict, 0)
    if wall_way == twin_way:
        return ""
    name = f"{INSTRUCTIONS}/{twin.metric}"
    if wall_way > 0 and twin_way <= 0:
        meaning = "the extra time is waiting or scheduling, not more CPU work on this path"
    elif wall_way < 0 and twin_way >= 0:
        meaning = "the time saved is waiting or scheduling, not less CPU work on this path"
    elif twin_way > 0:
        meaning = "more CPU work on this path, within the wall noise or hidden by waiting"
    else:
        meaning = "less CPU work on this path, within the wall noise or hidden by waiting"
    return f"clocks disagree: wall {_figure(wall)}, {name} {_figure(twin)}: {meaning}"


def settle(rows: Sequence[Row], describe: Callable[[str, str], Metric]) -> list[Row]:
    """``rows`` with each wall row read beside its instruction twin (see the module).

    ``describe(workload, metric)`` is the registry's description of a row's metric.
    """
    twins = {
        row.metric: row
        for row in rows
        if row.workload == INSTRUCTIONS and row.statistic == _MEDIAN and row.verdict in _DECIDED
    }
    settled: list[Row] = []
    for row in rows:
        twin_name = describe(row.workload, row.metric).twin if row.clock == _WALL else ""
        twin = twins.get(twin_name)
        if twin is None:
            settled.append(row)
        elif row.verdict is RowVerdict.INCONCLUSIVE:
            note = (
                f"wall undecided (MDE {_percent(row.mde)} > {row.threshold:.0%}); decided on "
                f"the CPU work of this path by {INSTRUCTIONS}/{twin.metric}: {_figure(twin)} "
                f"(MDE {_percent(twin.mde)})"
            )
            settled.append(dataclasses.replace(row, verdict=RowVerdict.BY_INSTRUCTIONS, note=note))
        elif row.verdict in _DECIDED and (note := _disagreement(row, twin)):
            settled.append(dataclasses.replace(row, note=note))
        else:
            settled.append(row)
    return settled
