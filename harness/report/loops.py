"""The report's event-loop section: one commit's legacy and pooled figures on each loop.

A run is measured on one event loop (``harness run --loop``, recorded in the
fingerprint). This section puts the bundle's legacy/pooled pairs
(:func:`harness.report.sections.pair_groups`) beside those of the newest stored
run of the *same commit* on each other loop, read from the history store (its
bundle directory, or the store alone). Runs of another commit are never mixed
in: the section compares loops, not code.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.bundle.files import Bundle
from harness.errors import HarnessError
from harness.report.sections import PairGroup, pair_groups
from harness.store.db import HistoryStore
from harness.store.location import Location

__all__ = ["LoopRow", "LoopSection", "loop_name", "loop_section"]


@dataclass(frozen=True, slots=True)
class LoopRow:
    """One legacy/pooled pair of a workload, its medians on each loop (``-``: not measured)."""

    workload: str
    quantity: str
    figures: tuple[tuple[str, str, str], ...]  # per loop: legacy median, pooled median, change


@dataclass(frozen=True, slots=True)
class LoopSection:
    """The loops shown (this run's first) and the rows; ``message`` says what is missing."""

    loops: tuple[str, ...]
    runs: tuple[str, ...]
    rows: tuple[LoopRow, ...]
    message: str


def loop_name(bundle: Bundle) -> str:
    """The loop a bundle was measured on: ``asyncio`` or ``uvloop`` (its version dropped)."""
    return bundle.manifest.environment.fingerprint.event_loop.split(" ", 1)[0]


def _other_loops(bundle: Bundle, history: Location) -> dict[str, Bundle]:
    """The newest stored run of the bundle's commit on each other loop (whatever its
    targets said: the figures are what the section shows)."""
    sha = bundle.manifest.environment.git.sha
    store = HistoryStore(history)
    if not sha or not store.exists():
        return {}
    found: dict[str, Bundle] = {}
    own = loop_name(bundle)
    for run in store.runs_of_commit(sha, exclude=bundle.manifest.run_id):  # newest first
        if not run.loadable:
            continue
        try:
            other = store.run_bundle(run)
        except HarnessError:
            continue  # unreadable: the section shows what it can
        name = loop_name(other)
        if name != own:
            found.setdefault(name, other)
    return found


def _figures(groups: tuple[PairGroup, ...]) -> dict[tuple[str, str], tuple[str, str, str]]:
    return {
        (group.workload, row.quantity): (row.legacy_median, row.pooled_median, row.change)
        for group in groups
        if group.clock == "wall"  # the trace clock does not depend on the loop
        for row in group.rows
    }


def loop_section(bundle: Bundle, history: Location) -> LoopSection:
    """This bundle's wall-clock pairs beside the same commit's runs on the other loops."""
    own = loop_name(bundle)
    others = _other_loops(bundle, history)
    bundles = {own: bundle, **dict(sorted(others.items()))}
    figures = {name: _figures(pair_groups(b)) for name, b in bundles.items()}
    keys = sorted({key for by_pair in figures.values() for key in by_pair})
    missing = ("-", "-", "-")
    rows = tuple(
        LoopRow(key[0], key[1], tuple(figures[name].get(key, missing) for name in bundles))
        for key in keys
    )
    message = ""
    if not others:
        other = "uvloop" if own == "asyncio" else "asyncio"
        message = (
            f"This commit was measured on {own} only: `harness run --loop {other}` on the "
            "same commit (and the same history store) adds that loop's figures here."
        )
    return LoopSection(
        loops=tuple(bundles),
        runs=tuple(b.manifest.run_id for b in bundles.values()),
        rows=rows,
        message=message,
    )
