"""Change points over the stored nights: every target and metric of one branch and machine.

Reads the history store only (:func:`harness.store.queries.night_series`), so a runner
that kept nothing but the store finds them. Per series (a target's value, or a
metric's median, one a night, of one branch, machine fingerprint and profile) it asks
:mod:`harness.judge.changepoints`:

* wall-clock series statistically, with the noise of this machine's calibration
  (``harness calibrate``; its per-round A/A noise over ``sqrt(2)``), or, with no
  calibration, :data:`ASSUMED_NOISE`, said in the notes; the rounds behind a night
  are its profile's processes;
* trace-clock series exactly: the runtime's virtual clock is deterministic, so any
  step that persists is a change, without statistics;
* only the last :data:`WINDOW` nights (the test's bound grows with the history).

The direction and the offset of a metric come from the workload registry; a target
is better lower when its bound is a maximum.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from harness.judge.changepoints import (
    ChangePoint,
    NotEnoughNights,
    commit_range,
    detect,
    opens_regression,
)
from harness.store.db import HistoryStore
from harness.store.queries import night_series, target_directions
from workloads import registry

__all__ = ["ASSUMED_NOISE", "WINDOW", "NightChange", "Nights", "night_changes"]

WINDOW = 90
ASSUMED_NOISE = 0.01  # a round's relative noise when this machine has no calibration
INSTRUCTION_NOISE = 0.001  # the instruction clock's: an unrelated edit moves it ~0.1 %


@dataclass(frozen=True, slots=True)
class NightChange:
    """One change point of one series, with the commits and runs it lies between."""

    kind: str  # "target" or "metric"
    name: str
    workload: str
    metric: str
    clock: str
    change: ChangePoint
    before_sha: str
    after_sha: str
    after_run: str
    tonight: bool

    def describe(self) -> str:
        """One line: the series, the step with its interval, the commits, the verdict."""
        label = f"target {self.name}" if self.kind == "target" else f"{self.workload}/{self.name}"
        cp = self.change
        step = f"{cp.direction.value} x{cp.ratio:.3f}"
        if self.clock != "trace":
            step += f" [{cp.ratio_low:.3f}, {cp.ratio_high:.3f}]"
        verdict = (
            "REGRESSION"
            if cp.regression
            else ("beyond the threshold" if cp.beyond_threshold else "within the threshold")
        )
        exact = " (trace clock, exact: any step is a change)" if self.clock == "trace" else ""
        return (
            f"{label}: {step}{exact} from run {self.after_run}, commits "
            f"{self.before_sha[:12] or '?'}..{self.after_sha[:12] or '?'}: {verdict}"
        )


@dataclass(frozen=True, slots=True)
class Nights:
    """What the search found, and what it could not judge (one line each)."""

    changes: tuple[NightChange, ...]
    notes: tuple[str, ...]
    nights: int

    @property
    def tonight_regressions(self) -> tuple[NightChange, ...]:
        """Regressions the latest night opens (a change point first shown tonight)."""
        return tuple(c for c in self.changes if c.tonight and c.change.regression)


def _better(kind: str, workload: str, metric: str, direction: str) -> Literal["lower", "higher"]:
    if kind == "target":
        return "lower" if direction == "max" else "higher"
    described = registry.describe(workload, metric)
    return "higher" if described is not None and described.better == "higher" else "lower"


def _offset(workload: str, metric: str) -> float:
    described = registry.describe(workload, metric)
    return described.offset if described is not None else 0.0


def night_changes(
    store: HistoryStore,
    *,
    branch: str,
    fingerprint: str,
    profile: str,
    thresholds: Mapping[str, float],
    threshold: float = 0.05,
    target: str | None = None,
) -> Nights:
    """The change points of every series (or of ``target`` alone) over the stored nights."""
    frame = night_series(store, branch=branch, fingerprint=fingerprint, profile=profile)
    if target is not None:
        frame = frame[(frame["kind"] == "target") & (frame["name"] == target)]
    calibration = {
        (row.workload, row.metric): row.noise
        for row in store.latest_calibration(fingerprint)
        if row.statistic == "median" and row.noise is not None and row.noise > 0
    }
    known_profile = registry.PROFILES.get(profile)
    rounds = known_profile.processes if known_profile is not None else 1
    directions = target_directions(store)
    changes: list[NightChange] = []
    notes: list[str] = []
    assumed = 0
    runs = frame.drop_duplicates("run_id")["run_id"].tolist()[-WINDOW:]
    frame = frame[frame["run_id"].isin(runs)]
    for (kind, name, workload, metric, clock), series in frame.groupby(
        ["kind", "name", "workload", "metric", "clock"], sort=True
    ):
        series = series.sort_values(["started_utc", "run_id"])
        values = [float(v) + _offset(str(workload), str(metric)) for v in series["value"]]
        if not all(math.isfinite(v) and v > 0.0 for v in values):
            notes.append(f"{kind} {name}: left out: a night's value is 0 or less (no ratio)")
            continue
        exact = clock == "trace"
        noise = calibration.get((str(workload), str(metric)))
        guessed = False
        if clock == "instructions":
            noise = INSTRUCTION_NOISE  # counts repeat but for memory layout
        elif noise is not None:
            noise /= math.sqrt(2.0)  # an A/A log ratio's spread is two rounds'
        elif not exact:
            noise, guessed = ASSUMED_NOISE, True
        arguments = {
            "threshold": thresholds.get(str(workload), threshold),
            "better": _better(str(kind), str(workload), str(metric), directions.get(str(name), "")),
            "noise": noise,
            "rounds": rounds,
            "exact": exact,
        }
        try:
            found = detect(values, **arguments)  # type: ignore[arg-type]
            opened = opens_regression(values, **arguments)  # type: ignore[arg-type]
        except NotEnoughNights as short:
            notes.append(f"{kind} {name}: {short}")
            continue
        assumed += guessed
        shas = [str(sha) for sha in series["git_sha"]]
        run_ids = [str(run) for run in series["run_id"]]
        for cp in found:
            before, after = commit_range(shas, cp)
            changes.append(
                NightChange(
                    kind=str(kind),
                    name=str(name),
                    workload=str(workload),
                    metric=str(metric),
                    clock=str(clock),
                    change=cp,
                    before_sha=before,
                    after_sha=after,
                    after_run=run_ids[cp.index],
                    tonight=opened is not None and opened.index == cp.index,
                )
            )
    if assumed:
        notes.append(
            f"{assumed} wall-clock series judged with an assumed round noise of "
            f"{ASSUMED_NOISE:.0%}: no calibration of this machine (`harness calibrate`)"
        )
    return Nights(tuple(changes), tuple(_one_line_per_kind(notes)), len(runs))


def _one_line_per_kind(notes: list[str]) -> list[str]:
    """The "needs N nights" notes folded into one line; the others as they are."""
    short = [note for note in notes if "needs " in note and " nights, has " in note]
    rest = [note for note in notes if note not in short]
    by_reason: dict[str, int] = {}
    for note in short:
        reason = note.split(": ", 1)[1]
        by_reason[reason] = by_reason.get(reason, 0) + 1
    for reason, count in sorted(by_reason.items(), reverse=True):
        rest.insert(0, f"{count} series not judged yet: {reason}")
    return rest
