"""``harness compare``: is the candidate faster, slower, or the same as the base, and how sure?

A comparison reads two run bundles (never re-runs anything) and produces one row
per workload x metric x statistic, each with its ratio candidate/base, interval,
raw and adjusted p-value, noise, minimum detectable effect and verdict, and one
verdict for the whole comparison (:class:`ComparisonVerdict`).

What is compared, per workload: its pyperf values (one round per pyperf run, the
round's statistic is the median of the run's values) and every metric of its
samples. A metric with many values per round (a per-operation latency) is
compared on p50, p95 and p99 each; any other on the median.

Guarantees:

* The unit of evidence is the round (see :mod:`harness.judge.stats`). Rounds are
  *paired* when both bundles come from one interleaved run: sample round ids
  ``r<k>:...`` and, for pyperf values, each benchmark's ``k``-th run (the
  contract of :class:`harness.bundle.files.Interleaving`); a row is paired over the
  rounds ``k`` both sides have, otherwise unpaired. Every row says which.
* Trace-clock metrics are deterministic: compared exactly (no test, no noise);
  equal is "no change", a worse value beyond the threshold a regression.
* Benjamini-Hochberg over all the tests of the comparison (``fdr_q``); every
  row carries its raw and its adjusted p-value.
* A regression is significant after adjustment *and* beyond the threshold (5 %
  by default, per-workload overrides in ``targets.toml``'s ``[thresholds]``);
  a row whose minimum detectable effect exceeds its threshold is never "no
  change" but "inconclusive" (:func:`harness.judge.stats.classify`).
* Bundles whose machine fingerprints differ are refused
  (:class:`~harness.errors.EnvironmentRefused`, one line naming each differing
  field) unless ``allow_different_environments``; then a warning is carried.
  Bundles of different workload sets are refused (:class:`~harness.errors.BundleError`).
* Deterministic: the same bundles and seed give the same numbers.

Around it: :mod:`~harness.judge.rounds` groups each side's values into rounds,
:mod:`~harness.judge.stats` holds the per-row statistics, :mod:`~harness.judge.twins`
reads wall rows beside their instruction twins, :mod:`~harness.judge.readout` prints
a finished comparison. What stays here (about 900 lines) is one computation: the
rows are judged together (one Benjamini-Hochberg family, one per-test level for
every MDE), so the row builder, the family and the verdict share one module.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from harness.bundle import comparison as contract
from harness.bundle.environment import Environment
from harness.bundle.files import Bundle, DeterminismStatus, load_bundle
from harness.bundle.verdicts import (
    PYPERF_METRIC,
    Statistic,
    TargetOutcome,
    statistic_of,
)
from harness.errors import BundleError, EnvironmentRefused, ExitCode
from harness.judge import stats, twins
from harness.judge.rounds import MetricRounds, metric_rounds
from harness.judge.stats import RowVerdict
from harness.store.db import CalibrationRow, HistoryStore
from harness.store.location import Location
from workloads import registry
from workloads.registry import Better

__all__ = [
    "JSON_SCHEMA",
    "Calibration",
    "CompareOptions",
    "Comparison",
    "ComparisonVerdict",
    "Row",
    "SideRef",
    "compare_bundles",
    "compare_rounds",
    "exit_status",
    "fingerprint_differences",
    "last_good_bundle",
    "resolve_bundle",
    "verdict_table",
]

# Schema history of Comparison.as_json():
# 1: schema, verdict, method, fdr_q, threshold, paired, base, candidate, warnings,
#    calibration, rows (workload ... direction, plus paired, scale, noise_source, error;
#    later note, the row beside its instruction twin: an added key, readers default it).
JSON_SCHEMA = contract.SCHEMA_VERSION
# A metric with at least this many values in a typical round is a per-operation
# distribution: compared on its p50, p95 and p99.
LATENCY_MIN_VALUES = 5
LATENCY_STATISTICS = (Statistic.P50, Statistic.P95, Statistic.P99)
# The instruction clock (cachegrind, seed fixed, ASLR off) repeats to the digit for one
# checkout; the same commit in two worktrees (other paths, other memory layout) or an
# unrelated edit moves a count by up to 0.2 % (measured: telemetry_record 1.002 and
# sequential_item 0.998 in an A/A of one commit). A change within INSTRUCTION_FLOOR is
# no change; the default threshold is INSTRUCTION_THRESHOLD.
INSTRUCTION_FLOOR = 0.005
INSTRUCTION_THRESHOLD = 0.01
# A per-round percentile needs values enough to have a few beyond it: 1 / (1 - p).
MIN_VALUES_A_ROUND = {Statistic.P95: 20, Statistic.P99: 100}
_TUNING_STATES = {"tuned", "errors", "not tuned for benchmarking"}

# pyperf's own values of a workload: wall seconds of one batch, lower is better.
_PYPERF = registry.cost(PYPERF_METRIC)


class ComparisonVerdict(enum.StrEnum):
    """The verdict of a whole comparison; :func:`exit_status` maps it to the exit code."""

    PASS = "pass"
    REGRESSION = "regression"
    TARGET_MISSED = "target missed"
    NONDETERMINISTIC = "nondeterministic"
    INCONCLUSIVE = "inconclusive"
    HARNESS_ERROR = "harness error"


_EXIT = {
    ComparisonVerdict.PASS: ExitCode.OK,
    ComparisonVerdict.INCONCLUSIVE: ExitCode.OK,
    ComparisonVerdict.REGRESSION: ExitCode.WORSE,
    ComparisonVerdict.TARGET_MISSED: ExitCode.WORSE,
    ComparisonVerdict.NONDETERMINISTIC: ExitCode.WORSE,
    ComparisonVerdict.HARNESS_ERROR: ExitCode.BAD_INPUT,
}
_MEANING = {
    ComparisonVerdict.PASS: "no regression, every target met, replay deterministic",
    ComparisonVerdict.INCONCLUSIVE: "no regression seen, but a row's MDE exceeds its threshold",
    ComparisonVerdict.REGRESSION: "a row significantly worse (after BH) beyond its threshold",
    ComparisonVerdict.TARGET_MISSED: "a target of the candidate's bundle failed",
    ComparisonVerdict.NONDETERMINISTIC: "the candidate's replay diverged",
    ComparisonVerdict.HARNESS_ERROR: "a row could not be compared (its error is shown)",
}
_ROW_MEANING = {
    RowVerdict.FASTER: "significantly better (after BH), any size",
    RowVerdict.SLOWER: "significantly worse, within the threshold",
    RowVerdict.REGRESSION: "significantly worse and beyond the threshold",
    RowVerdict.NO_CHANGE: "not significant, and the MDE is within the threshold",
    RowVerdict.INCONCLUSIVE: "not significant, but the MDE exceeds the threshold",
    RowVerdict.ERROR: "could not be compared (missing or non-positive values)",
    RowVerdict.REFERENCE: "a peer's or a baseline's own figure: shown, never judged",
    RowVerdict.BY_INSTRUCTIONS: "wall inconclusive, decided by its CPU path's instruction count",
}


def exit_status(verdict: ComparisonVerdict, *, fail_on_inconclusive: bool = False) -> int:
    """0 pass/inconclusive, 1 regression/target missed/nondeterministic, 2 harness error."""
    if verdict is ComparisonVerdict.INCONCLUSIVE and fail_on_inconclusive:
        return ExitCode.WORSE
    return _EXIT[verdict]


def verdict_table() -> str:
    """The table of verdicts and exit codes (``--help`` and the README show it)."""
    lines = ["comparison verdict  exit  meaning"]
    for verdict in ComparisonVerdict:
        code = f"{int(_EXIT[verdict])}{' *' if verdict is ComparisonVerdict.INCONCLUSIVE else ''}"
        lines.append(f"{verdict.value:<18}  {code:<4}  {_MEANING[verdict]}")
    lines.append(
        f"{'(bad input)':<18}  {int(ExitCode.BAD_INPUT):<4}  "
        "missing bundle, other workloads, other machine"
    )
    lines.append(
        f"{'(interrupted)':<18}  {int(ExitCode.INTERRUPTED):<4}  "
        "Ctrl-C or SIGTERM; worktrees and partial files removed"
    )
    lines.append("* 1 with --fail-on-inconclusive")
    lines.append("")
    lines.append("row verdict         meaning")
    for row in RowVerdict:
        lines.append(f"{row.value:<18}  {_ROW_MEANING[row]}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Calibration:
    """A stored A/A calibration: per (workload, metric, statistic), its noise and rounds."""

    calibration_id: str
    fingerprint: str
    created: str
    profile: str
    rows: Mapping[tuple[str, str, str], CalibrationRow]

    @classmethod
    def of(cls, rows: Sequence[CalibrationRow]) -> Calibration | None:
        """The calibration of ``rows`` (all of one calibration id), or None when empty."""
        if not rows:
            return None
        first = rows[0]
        return cls(
            calibration_id=first.calibration_id,
            fingerprint=first.fingerprint,
            created=first.created,
            profile=first.profile,
            rows={(r.workload, r.metric, r.statistic): r for r in rows},
        )

    @property
    def rounds(self) -> int:
        """The rounds of the calibration (its smallest row's)."""
        return min(row.rounds for row in self.rows.values())


@dataclass(frozen=True, slots=True)
class CompareOptions:
    """How to compare. ``thresholds`` overrides ``threshold`` per workload."""

    fdr_q: float = 0.05
    threshold: float = 0.05
    thresholds: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0
    resamples: int = stats.RESAMPLES
    confidence: float = stats.CONFIDENCE
    power: float = stats.POWER
    allow_different_environments: bool = False
    calibration: Calibration | None = None

    def threshold_of(self, workload: str) -> float:
        """The threshold of ``workload`` (the instruction clock's own default: 1 %)."""
        if workload == registry.INSTRUCTIONS:
            return self.thresholds.get(workload, INSTRUCTION_THRESHOLD)
        return self.thresholds.get(workload, self.threshold)


@dataclass(frozen=True, slots=True)
class SideRef:
    """Which run a side is, and where its bundle lives."""

    run_id: str
    path: str


@dataclass(frozen=True, slots=True)
class Row:
    """One compared workload x metric x statistic (see :meth:`Comparison.as_json`).

    ``ratio`` is candidate/base (of ``1 + value`` when ``scale`` says so);
    ``noise`` the standard deviation of a one-round log ratio; ``mde`` the
    relative minimum detectable effect (inf when unreachable); ``p_raw`` and
    ``p_adjusted`` are None for trace-clock (exact) and error rows.
    """

    workload: str
    metric: str
    statistic: str
    unit: str
    clock: str
    rounds: int
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    p_raw: float | None
    p_adjusted: float | None
    noise: float | None
    mde: float | None
    rounds_needed: int | None
    threshold: float
    verdict: RowVerdict
    direction: Better
    paired: bool
    scale: str = "value"
    noise_source: str = "this comparison"
    error: str | None = None
    note: str = ""  # what the row's instruction twin says (harness.judge.twins)

    def as_json(self) -> dict[str, Any]:
        """The row as JSON data (infinities as null)."""
        data: dict[str, Any] = msgspec.to_builtins(self.to_contract())
        return data

    def to_contract(self) -> contract.ComparisonRow:
        """The row as the comparison JSON declares it (:mod:`harness.bundle.comparison`)."""

        def finite(value: float | None) -> float | None:
            return value if value is not None and math.isfinite(value) else None

        return contract.ComparisonRow(
            workload=self.workload,
            metric=self.metric,
            statistic=self.statistic,
            unit=self.unit,
            clock=self.clock,
            rounds=self.rounds,
            ratio=finite(self.ratio),
            ci_low=finite(self.ci_low),
            ci_high=finite(self.ci_high),
            p_raw=finite(self.p_raw),
            p_adjusted=finite(self.p_adjusted),
            noise=finite(self.noise),
            mde=finite(self.mde),
            rounds_needed=self.rounds_needed,
            threshold=self.threshold,
            verdict=self.verdict.value,
            direction=self.direction.value,
            paired=self.paired,
            scale=self.scale,
            noise_source=self.noise_source,
            error=self.error,
            note=self.note,
        )


@dataclass(frozen=True, slots=True)
class Comparison:
    """A finished comparison: its verdict, its method, its rows."""

    verdict: ComparisonVerdict
    method: str
    fdr_q: float
    threshold: float
    paired: bool
    base: SideRef
    candidate: SideRef
    warnings: tuple[str, ...]
    calibration: Calibration | None
    rows: tuple[Row, ...]
    tests: int
    reasons: tuple[str, ...] = ()

    def exit_status(self, *, fail_on_inconclusive: bool = False) -> int:
        """The exit code of :attr:`verdict` (see :func:`exit_status`)."""
        return exit_status(self.verdict, fail_on_inconclusive=fail_on_inconclusive)

    def as_json(self) -> dict[str, Any]:
        """The comparison as JSON data, schema :data:`JSON_SCHEMA` (the report reads it)."""
        calibration = None
        if self.calibration is not None:
            calibration = {
                "id": self.calibration.calibration_id,
                "fingerprint": self.calibration.fingerprint,
                "created": self.calibration.created,
                "profile": self.calibration.profile,
                "rounds": self.calibration.rounds,
                "rows_used": sum(row.noise_source != "this comparison" for row in self.rows),
            }
        data: dict[str, Any] = msgspec.to_builtins(
            contract.Comparison(
                schema=JSON_SCHEMA,
                verdict=self.verdict.value,
                method=self.method,
                fdr_q=self.fdr_q,
                threshold=self.threshold,
                paired=self.paired,
                base=contract.ComparisonSide(self.base.run_id, self.base.path),
                candidate=contract.ComparisonSide(self.candidate.run_id, self.candidate.path),
                warnings=list(self.warnings),
                calibration=calibration,
                tests=self.tests,
                reasons=list(self.reasons),
                rows=[row.to_contract() for row in self.rows],
            )
        )
        return data


def describe(workload: str, metric: str) -> registry.Metric:
    """The workload registry's description of ``metric``: its direction, offset, role.

    Nothing is guessed from a name: a metric the registry does not describe is a
    :class:`~harness.errors.BundleError` naming it.
    """
    if metric == PYPERF_METRIC or metric.startswith(f"{PYPERF_METRIC}:"):
        info = registry.WORKLOADS.get(workload)
        return _PYPERF if info is None else dataclasses.replace(_PYPERF, twin=info.pyperf_twin)
    found = registry.describe(workload, metric)
    if found is None:
        raise BundleError(
            f"metric {metric!r} of workload {workload!r} is not in the workload registry",
            where=f"{workload}/{metric}",
            expected="a metric that workloads/registry.py describes (unit, direction, kind)",
        )
    return found


def _statistics_of(
    base: MetricRounds, candidate: MetricRounds, left_out: dict[Statistic, list[str]] | None = None
) -> tuple[Statistic, ...]:
    """The statistics a row is compared on; a percentile the rounds are too small for is
    left out (noted in ``left_out``): no statistic the sample cannot carry."""
    if base.metric.startswith(PYPERF_METRIC):
        return (Statistic.MEDIAN,)
    sizes = [len(values) for _, values in (*base.rounds, *candidate.rounds)]
    if not sizes or float(np.median(sizes)) < LATENCY_MIN_VALUES:
        return (Statistic.MEDIAN,)
    smallest = min(sizes)
    chosen = []
    for statistic in LATENCY_STATISTICS:
        if smallest < MIN_VALUES_A_ROUND.get(statistic, 0):
            if left_out is not None:
                left_out.setdefault(statistic, []).append(f"{base.workload}/{base.metric}")
            continue
        chosen.append(statistic)
    return tuple(chosen)


def _stable_seed(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("/".join(parts).encode()).digest()[:8], "big")


@dataclass(frozen=True, slots=True)
class _Pending:
    """A row before the suite-wide adjustment."""

    row: Row
    estimate: stats.Estimate | None


def _error_row(
    base: MetricRounds, statistic: str, threshold: float, message: str, *, paired: bool = False
) -> Row:
    return Row(
        workload=base.workload,
        metric=base.metric,
        statistic=statistic,
        unit=base.unit,
        clock=base.clock,
        rounds=0,
        ratio=None,
        ci_low=None,
        ci_high=None,
        p_raw=None,
        p_adjusted=None,
        noise=None,
        mde=None,
        rounds_needed=None,
        threshold=threshold,
        verdict=RowVerdict.ERROR,
        direction=describe(base.workload, base.metric).better,
        paired=paired,
        error=message,
    )


def _round_statistics(
    series: MetricRounds, statistic: Statistic, offset: float
) -> dict[str, float]:
    return {
        key: statistic_of(values, statistic) + offset for key, values in series.rounds if values
    }


def _compare_one(
    base: MetricRounds,
    candidate: MetricRounds,
    statistic: Statistic,
    options: CompareOptions,
    warnings: list[str],
) -> _Pending:
    threshold = options.threshold_of(base.workload)
    described = describe(base.workload, base.metric)
    offset = described.offset
    scale = "1 + value" if offset else "value"
    direction = described.better
    label = f"{base.workload}/{base.metric}/{statistic.value}"
    base_stats = _round_statistics(base, statistic, offset)
    cand_stats = _round_statistics(candidate, statistic, offset)
    if not base_stats or not cand_stats:
        side = "base" if not base_stats else "candidate"
        return _Pending(_error_row(base, statistic.value, threshold, f"no values in {side}"), None)
    exact_clock = base.clock == candidate.clock and base.clock in ("trace", "instructions")
    every = [*base_stats.values(), *cand_stats.values()]
    # A trace-clock figure may be 0 on both sides (no approval waited at all):
    # equal, exactly, and compared below; a timed one must be positive for a ratio.
    if not exact_clock and not all(math.isfinite(v) and v > 0.0 for v in every):
        message = f"a round's {statistic.value} is not positive ({scale}): no ratio"
        return _Pending(_error_row(base, statistic.value, threshold, message), None)
    common = [k for k in base.paired_keys if k in cand_stats and k in candidate.paired_keys]
    common = sorted(set(common), key=lambda k: int(k[1:]))
    paired = len(common) >= 2

    def row(estimate: stats.Estimate, rounds: int, *, exact: bool) -> Row:
        return Row(
            workload=base.workload,
            metric=base.metric,
            statistic=statistic.value,
            unit=base.unit,
            clock=base.clock,
            rounds=rounds,
            ratio=estimate.ratio,
            ci_low=estimate.ci_low,
            ci_high=estimate.ci_high,
            p_raw=None if exact else estimate.p_raw,
            p_adjusted=None,
            noise=estimate.noise,
            mde=0.0 if exact else None,
            rounds_needed=1 if exact else None,
            threshold=threshold,
            verdict=RowVerdict.NO_CHANGE,
            direction=direction,
            paired=paired,
            scale=scale,
        )

    if exact_clock:
        for side, values in (("base", base_stats), ("candidate", cand_stats)):
            if len(set(values.values())) > 1:
                warnings.append(
                    f"{label}: trace-clock values differ between the {side}'s rounds "
                    "(a deterministic replay should repeat exactly)"
                )
        base_value = statistic_of([v for _, vs in base.rounds for v in vs], statistic) + offset
        cand_value = statistic_of([v for _, vs in candidate.rounds for v in vs], statistic) + offset
        if not (math.isfinite(base_value) and math.isfinite(cand_value) and cand_value >= 0.0):
            message = f"the {statistic.value} is not a finite value >= 0 ({scale}): no ratio"
            return _Pending(_error_row(base, statistic.value, threshold, message), None)
        if base_value == cand_value:
            ratio = 1.0  # 0 against 0 included: the same figure, exactly
        elif base_value > 0.0 and cand_value > 0.0:
            ratio = cand_value / base_value
        else:
            message = (
                f"the {statistic.value} moved from {base_value:g} to {cand_value:g} "
                f"({scale}): a change, but no ratio with 0"
            )
            return _Pending(_error_row(base, statistic.value, threshold, message), None)
        exact = stats.Estimate(ratio, ratio, ratio, 1.0, 0.0, 0.0, len(base_stats))
        return _Pending(row(exact, min(len(base_stats), len(cand_stats)), exact=True), exact)

    rng = np.random.default_rng([options.seed, _stable_seed(label)])
    if paired:
        log_ratios = np.log([cand_stats[k] / base_stats[k] for k in common])
        dropped = (set(base.paired_keys) | set(candidate.paired_keys)) - set(common)
        if dropped:
            warnings.append(f"{label}: {len(dropped)} interleaved round(s) only on one side")
        estimate = stats.paired_estimate(
            log_ratios, rng, resamples=options.resamples, confidence=options.confidence
        )
    else:
        estimate = stats.unpaired_estimate(
            np.log(list(base_stats.values())),
            np.log(list(cand_stats.values())),
            rng,
            resamples=options.resamples,
            confidence=options.confidence,
        )
    return _Pending(row(estimate, estimate.rounds, exact=False), estimate)


def compare_rounds(
    base: Mapping[tuple[str, str], MetricRounds],
    candidate: Mapping[tuple[str, str], MetricRounds],
    options: CompareOptions,
) -> tuple[tuple[Row, ...], list[str], int]:
    """The rows of every metric of ``base`` against ``candidate``; warnings; number of tests.

    The statistics of the whole comparison (:mod:`harness.judge.stats`): per-round
    ratios, Benjamini-Hochberg over every test, minimum detectable effects at the
    per-test level ``q / m``, the verdict of each row. A metric only the
    candidate has is left out with a warning; one only the base has is an error row.
    """
    warnings: list[str] = []
    pending: list[_Pending] = []
    left_out: dict[Statistic, list[str]] = {}
    for key in sorted(base):
        series = base[key]
        if key not in candidate:
            statistic = _statistics_of(series, series)[0].value
            message = "the candidate recorded no values of this metric"
            pending.append(
                _Pending(_error_row(series, statistic, options.threshold_of(key[0]), message), None)
            )
            continue
        other = candidate[key]
        if (series.unit, series.clock) != (other.unit, other.clock):
            message = (
                f"unit/clock {series.unit}/{series.clock} in base but "
                f"{other.unit}/{other.clock} in candidate"
            )
            pending.append(
                _Pending(_error_row(series, "median", options.threshold_of(key[0]), message), None)
            )
            continue
        for statistic in _statistics_of(series, other, left_out):
            pending.append(_compare_one(series, other, statistic, options, warnings))
    for key in sorted(set(candidate) - set(base)):
        warnings.append(f"{key[0]}/{key[1]}: only in the candidate, not compared")
    for statistic, names in left_out.items():
        warnings.append(
            f"{statistic.value} left out of {len(names)} row(s) with fewer than "
            f"{MIN_VALUES_A_ROUND[statistic]} values a round: " + ", ".join(names)
        )

    reference = {
        i
        for i, p in enumerate(pending)
        if p.row.verdict is not RowVerdict.ERROR
        and describe(p.row.workload, p.row.metric).reference
    }
    raw = {
        i: p.row.p_raw
        for i, p in enumerate(pending)
        if p.row.p_raw is not None and i not in reference
    }
    tested = list(raw)
    tests = len(tested)
    alpha = stats.per_test_alpha(options.fdr_q, tests)
    adjusted = stats.benjamini_hochberg([raw[i] for i in tested])
    p_adjusted: dict[int, float] = {i: float(p) for i, p in zip(tested, adjusted, strict=True)}
    rows: list[Row] = []
    for index, item in enumerate(pending):
        current = item.row
        if current.verdict is RowVerdict.ERROR or item.estimate is None:
            rows.append(current)
            continue
        if index in reference:  # a peer's own figure: shown with its interval, not tested
            rows.append(dataclasses.replace(current, verdict=RowVerdict.REFERENCE))
            continue
        if current.p_raw is None:  # exact: the trace clock, or instructions within their floor
            floor = INSTRUCTION_FLOOR if current.clock == "instructions" else 0.0
            ratio = current.ratio if current.ratio is not None else 1.0
            moved = abs(math.log(ratio)) > math.log1p(floor) if ratio > 0 else True
            verdict = _classify(current, 0.0 if moved else 1.0, floor, options)
            rows.append(dataclasses.replace(current, verdict=verdict, noise=0.0, mde=floor))
            continue
        noise = item.estimate.noise
        standard_error = item.estimate.standard_error
        source = "this comparison"
        calibrated = _calibrated_noise(options.calibration, current)
        if calibrated is not None and calibrated.rounds >= current.rounds:
            noise = calibrated.noise
            standard_error = noise / math.sqrt(max(current.rounds, 1))
            source = f"calibration {calibrated.calibration_id} ({calibrated.rounds} rounds)"
        mde = float(
            stats.minimum_detectable_effect(
                standard_error,
                current.rounds,
                alpha,
                power=options.power,
                paired=current.paired,
            )
        )
        adjusted_p = p_adjusted[index]
        rows.append(
            dataclasses.replace(
                current,
                p_adjusted=adjusted_p,
                noise=noise,
                mde=mde,
                rounds_needed=stats.rounds_needed(
                    noise, current.threshold, alpha, power=options.power, paired=current.paired
                ),
                noise_source=source,
                verdict=_classify(current, adjusted_p, mde, options),
            )
        )
    return tuple(twins.settle(rows, describe)), warnings, tests


def _classify(row: Row, p_adjusted: float, mde: float, options: CompareOptions) -> RowVerdict:
    verdict = stats.classify(
        row.ratio if row.ratio is not None else math.nan,
        p_adjusted,
        mde,
        q=options.fdr_q,
        threshold=row.threshold,
        higher_is_better=row.direction is Better.HIGHER,
    )
    return RowVerdict(str(verdict))


def _calibrated_noise(calibration: Calibration | None, row: Row) -> CalibrationRow | None:
    if calibration is None:
        return None
    found = calibration.rows.get((row.workload, row.metric, row.statistic))
    return found if found is not None and math.isfinite(found.noise) else None


def fingerprint_differences(base: Environment, candidate: Environment) -> list[str]:
    """Each fingerprint field that differs, as ``field: base value vs candidate value``.

    The fields of :class:`harness.bundle.environment.Fingerprint` (each dependency
    separately), and pyperf's system-tuning state when both runs recorded it.
    """
    differences: list[str] = []
    left, right = base.fingerprint, candidate.fingerprint
    for name in left.__struct_fields__:
        if name == "dependencies":
            continue
        a, b = getattr(left, name), getattr(right, name)
        if a != b:
            differences.append(f"{name}: {a} vs {b}")
    for dependency in sorted(set(left.dependencies) | set(right.dependencies)):
        a = left.dependencies.get(dependency, "absent")
        b = right.dependencies.get(dependency, "absent")
        if a != b:
            differences.append(f"dependencies.{dependency}: {a} vs {b}")
    notes = (base.system_tuning_note, candidate.system_tuning_note)
    if notes[0] != notes[1] and all(note in _TUNING_STATES for note in notes):
        differences.append(f"system_tuning: {notes[0]} vs {notes[1]}")
    return differences


def _interleaving_notes(base: Bundle, candidate: Bundle, paired: bool) -> tuple[str, list[str]]:
    """The method's words on the order, and warnings about an unbalanced or unknown order."""
    record = candidate.manifest.interleaving or base.manifest.interleaving
    if record is None:
        if paired:
            return "interleaved (order not recorded)", [
                "rounds are interleaved but no order is recorded: slot bias cannot be checked"
            ]
        return "", []
    first = record.order.count("AB")
    second = record.order.count("BA")
    seed = "" if record.seed is None else f", seed {record.seed}"
    words = (
        f"interleaved {record.rounds} rounds, {record.method} order{seed} ({first} AB, {second} BA)"
    )
    warnings: list[str] = []
    if abs(first - second) > 1:
        warnings.append(
            f"unbalanced order: {first} rounds AB and {second} BA; a slot effect "
            "(the second run of a round slower) biases the ratios"
        )
    return words, warnings


def compare_bundles(
    base: Bundle, candidate: Bundle, *, options: CompareOptions | None = None
) -> Comparison:
    """Compare ``candidate`` against ``base`` (see the module's guarantees).

    Raises :class:`~harness.errors.EnvironmentRefused` when the fingerprints
    differ (unless allowed) and :class:`~harness.errors.BundleError` when the
    workload sets differ.
    """
    options = options or CompareOptions()
    warnings: list[str] = []
    differences = fingerprint_differences(base.manifest.environment, candidate.manifest.environment)
    if differences:
        if not options.allow_different_environments:
            raise EnvironmentRefused(
                "machine fingerprints differ: " + "; ".join(differences),
                where=f"{base.path} vs {candidate.path}",
                expected="bundles of the same machine and environment "
                "(--allow-different-environments compares them anyway)",
            )
        warnings.append("DIFFERENT ENVIRONMENTS, compared on request: " + "; ".join(differences))
    base_names = {w.name for w in base.manifest.workloads}
    cand_names = {w.name for w in candidate.manifest.workloads}
    if base_names != cand_names:
        parts = []
        if base_names - cand_names:
            parts.append("only in base: " + ", ".join(sorted(base_names - cand_names)))
        if cand_names - base_names:
            parts.append("only in candidate: " + ", ".join(sorted(cand_names - base_names)))
        raise BundleError(
            "the bundles ran different workloads (" + "; ".join(parts) + ")",
            where=f"{base.path} vs {candidate.path}",
            expected="bundles of the same workloads (--workload selects the same set)",
        )
    for workload in candidate.manifest.workloads:
        if workload.skipped:
            warnings.append(f"{workload.name} skipped itself in the candidate: {workload.skipped}")
    calibration = options.calibration
    digest = candidate.manifest.environment.fingerprint_digest
    if calibration is not None and calibration.fingerprint != digest:
        warnings.append(
            f"calibration {calibration.calibration_id} is of another fingerprint; not used"
        )
        calibration = None
        options = dataclasses.replace(options, calibration=None)
    profile = candidate.manifest.profile.name
    if calibration is not None and calibration.profile != profile:
        warnings.append(
            f"calibration {calibration.calibration_id} measured rounds of profile "
            f"{calibration.profile!r}, these bundles {profile!r}; not used"
        )
        calibration = None
        options = dataclasses.replace(options, calibration=None)
    rows, row_warnings, tests = compare_rounds(
        metric_rounds(base), metric_rounds(candidate), options
    )
    warnings.extend(row_warnings)
    tested = [row for row in rows if row.p_raw is not None]
    paired = bool(tested) and all(row.paired for row in tested)
    order_words, order_warnings = _interleaving_notes(base, candidate, any(r.paired for r in rows))
    warnings.extend(order_warnings)
    verdict, reasons = _comparison_verdict(candidate, rows)
    return Comparison(
        verdict=verdict,
        method=_method(options, rows, tests, order_words, calibration),
        fdr_q=options.fdr_q,
        threshold=options.threshold,
        paired=paired,
        base=SideRef(base.manifest.run_id, str(base.path)),
        candidate=SideRef(candidate.manifest.run_id, str(candidate.path)),
        warnings=tuple(warnings),
        calibration=calibration,
        rows=rows,
        tests=tests,
        reasons=tuple(reasons),
    )


def _comparison_verdict(
    candidate: Bundle, rows: Sequence[Row]
) -> tuple[ComparisonVerdict, list[str]]:
    """The first that applies: nondeterministic, target missed, regression, harness error,
    inconclusive, pass; and every reason found."""
    manifest = candidate.manifest
    reasons: list[str] = []
    found: list[ComparisonVerdict] = []
    if manifest.determinism.status is DeterminismStatus.DIVERGED:
        found.append(ComparisonVerdict.NONDETERMINISTIC)
        reasons.append(f"candidate replay diverged: {manifest.determinism.reason}")
    missed = [
        v.target.name
        for v in manifest.verdicts
        if not v.passed
        and v.outcome is not TargetOutcome.SKIPPED  # skipped: its workload could not run
    ]
    if missed:
        found.append(ComparisonVerdict.TARGET_MISSED)
        reasons.append("candidate missed target(s): " + ", ".join(missed))
    by_verdict: dict[RowVerdict, list[str]] = {}
    for row in rows:
        by_verdict.setdefault(row.verdict, []).append(
            f"{row.workload}/{row.metric}/{row.statistic}"
        )
    for row_verdict, comparison_verdict in (
        (RowVerdict.REGRESSION, ComparisonVerdict.REGRESSION),
        (RowVerdict.ERROR, ComparisonVerdict.HARNESS_ERROR),
        (RowVerdict.INCONCLUSIVE, ComparisonVerdict.INCONCLUSIVE),
    ):
        names = by_verdict.get(row_verdict, [])
        if names:
            found.append(comparison_verdict)
            reasons.append(f"{len(names)} {row_verdict.value}: " + ", ".join(names))
    return (found[0] if found else ComparisonVerdict.PASS), reasons


def _method(
    options: CompareOptions,
    rows: Sequence[Row],
    tests: int,
    order_words: str,
    calibration: Calibration | None,
) -> str:
    paired = sum(row.paired and row.p_raw is not None for row in rows)
    unpaired = sum(not row.paired and row.p_raw is not None for row in rows)
    exact = sum(
        row.p_raw is None and row.verdict is not RowVerdict.ERROR and row.clock == "trace"
        for row in rows
    )
    counted = sum(
        row.clock == "instructions" and row.verdict is not RowVerdict.ERROR for row in rows
    )
    confidence = f"{options.confidence:.0%}"
    parts = [
        "unit of evidence: the round (each side's median per round; p50/p95/p99 for "
        "per-operation latencies)",
    ]
    if paired:
        parts.append(
            f"{paired} paired rows ({order_words or 'interleaved'}): per-round ratio "
            f"candidate/base, Hodges-Lehmann estimate of the log ratios, {confidence} "
            f"percentile bootstrap over rounds (B={options.resamples}, seed {options.seed}), "
            "Wilcoxon signed-rank test"
        )
    if unpaired:
        parts.append(
            f"{unpaired} unpaired rows: ratio of the sides' medians of round statistics, "
            f"{confidence} bootstrap of each side's rounds independently "
            f"(B={options.resamples}, seed {options.seed}), Mann-Whitney U test"
        )
    if exact:
        parts.append(f"{exact} trace-clock rows compared exactly (deterministic, no test)")
    if counted:
        parts.append(
            f"{counted} instruction rows (cachegrind counts) compared exactly, a change within "
            f"{INSTRUCTION_FLOOR:.1%} being no change (memory layout), threshold "
            f"{INSTRUCTION_THRESHOLD:.0%} unless [thresholds] says otherwise"
        )
    alpha = stats.per_test_alpha(options.fdr_q, tests)
    parts.append(
        f"Benjamini-Hochberg over {tests} tests at q={options.fdr_q:g}; regression = "
        f"significant after adjustment and beyond the threshold (default {options.threshold:.0%})"
    )
    parts.append(
        f"MDE: normal approximation, {options.power:.0%} power at the per-test level "
        f"q/m={alpha:.2g}, noise = sd of one round's log ratio"
        + (
            f" (from calibration {calibration.calibration_id} when it has as many rounds or more)"
            if calibration is not None
            else ""
        )
    )
    return "; ".join(parts)


# --------------------------------------------------------------------------- resolving sides


def resolve_bundle(reference: str, db: Location) -> Bundle:
    """The bundle ``reference`` names: a bundle directory, or a run id stored in ``db``.

    ``db`` is a SQLite file or a PostgreSQL URL (:mod:`harness.store.location`). A
    stored run is read from its bundle directory while that exists, else rebuilt
    from the store alone (a CI runner that kept only the store).
    """
    path = Path(reference)
    if path.is_dir():
        return load_bundle(path)
    store = HistoryStore(db)
    if store.exists():
        run = store.stored_run(reference)
        if run is not None:
            return store.run_bundle(run)
    raise BundleError(
        "no bundle directory and no stored run of this id",
        where=reference,
        expected=f"a run bundle directory or a run id of {store.where}",
    )


def last_good_bundle(db: Location, *, exclude: str = "", fingerprint: str = "") -> Bundle:
    """The last stored run whose targets all passed and whose replay was deterministic.

    Runs of ``fingerprint`` are preferred (any run when none matches);
    ``exclude`` (the candidate's run id) is never picked. A run is read from its
    bundle directory while that exists, else from the store; a good run that has
    neither (stored before the store kept values) is passed over for an older one.
    """
    store = HistoryStore(db)
    if not store.exists():
        raise BundleError("no history store for --last-good", where=store.where)
    good = store.good_runs(exclude=exclude)
    if not good:
        raise BundleError(
            "no stored run passed every target with a deterministic replay",
            where=store.where,
            expected="a good run in the history (harness run appends one)",
        )
    same = [run for run in good if run.fingerprint == fingerprint]
    for runs in (same, good):
        usable = [run for run in runs if run.loadable]
        if usable:
            return store.run_bundle(usable[0])
    return store.run_bundle((same or good)[0])  # raises: why the newest cannot be read
