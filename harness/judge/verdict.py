"""The verdict of one performance target on one run, and the bootstrap behind its spread.

The targets themselves are read and checked by :mod:`harness.judge.targets`.

Guarantees of :func:`evaluate`:

* The value is the statistic over *every* value of every round (numpy's
  default linear-interpolation percentile; ``p50`` and ``median`` agree).
* The spread is a 95 % percentile-bootstrap confidence interval of that
  statistic, resampling whole *rounds* (a round's values are correlated; see
  :mod:`workloads.samples`), or single values when there are fewer than two
  rounds. It is seeded: the same values give the same interval.
* Pass or fail is decided on the value alone (inclusive bound); the interval
  is reported beside it so a reader sees how close the call was.
* No values: the verdict is :attr:`TargetOutcome.MISSING`, which fails.
* A target of a workload that skipped itself (an optional dependency group
  not installed) gets :func:`skipped_verdict`: :attr:`TargetOutcome.SKIPPED`, no
  value, not passed, and it does not fail the run (see
  :attr:`harness.bundle.files.Manifest.passed`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from harness.bundle.verdicts import (
    Measurement,
    SpreadMethod,
    Statistic,
    Target,
    TargetOutcome,
    Verdict,
    statistic_of,
)
from harness.errors import WorkloadError
from workloads.samples import MetricSamples

__all__ = [
    "evaluate",
    "measurement_of",
    "skipped_verdict",
]

CONFIDENCE = 0.95
RESAMPLES = 1000


def measurement_of(target: Target, samples: Iterable[MetricSamples]) -> Measurement:
    """The values ``target`` reads from a run's samples, each with its round.

    Raises :class:`~harness.errors.WorkloadError` when the workload recorded the
    metric on another clock or in another unit than the target says, or
    recorded a value that is not finite: a workload bug, never a verdict.
    """
    values: list[float] = []
    rounds: list[str] = []
    for sample in samples:
        if sample.workload != target.workload or sample.metric != target.metric:
            continue
        where = f"workload {sample.workload}, metric {sample.metric}, round {sample.round}"
        if sample.clock != target.clock.value or sample.unit != target.unit.value:
            raise WorkloadError(
                f"recorded on clock {sample.clock!r} in unit {sample.unit!r}",
                where=where,
                expected=f"clock {target.clock.value!r}, unit {target.unit.value!r} "
                f"(target {target.name})",
            )
        if not all(math.isfinite(v) for v in sample.values):
            raise WorkloadError("recorded a value that is not finite", where=where)
        values.extend(sample.values)
        rounds.extend([sample.round] * len(sample.values))
    return Measurement(tuple(values), tuple(rounds))


def evaluate(
    target: Target,
    values: Sequence[float],
    *,
    rounds: Sequence[str] | None = None,
    seed: int = 0,
    resamples: int = RESAMPLES,
) -> Verdict:
    """The verdict of ``target`` on ``values``.

    ``rounds`` labels each value with its round (same length as ``values``);
    without it every value is its own resampling unit. ``seed`` seeds the
    bootstrap (mixed with a stable hash of the target's name).
    """
    if rounds is not None and len(rounds) != len(values):
        raise ValueError(f"{len(rounds)} round labels for {len(values)} values")
    if not values:
        return _without_value(target, TargetOutcome.MISSING)
    array = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"target {target.name}: a value is not finite")
    value = statistic_of(array, target.statistic)
    groups = _groups(array, rounds) if rounds is not None else []
    name_hash = int.from_bytes(hashlib.sha256(target.name.encode()).digest()[:8], "big")
    rng = np.random.default_rng([seed, name_hash])
    if len(groups) >= 2:
        method = SpreadMethod.BOOTSTRAP_ROUNDS
        spread = _bootstrap_rounds(groups, target.statistic, rng, resamples)
    else:
        method = SpreadMethod.BOOTSTRAP_VALUES
        spread = _bootstrap_values(array, target.statistic, rng, resamples)
    passed = target.holds(value)
    return Verdict(
        target=target,
        outcome=TargetOutcome.PASS if passed else TargetOutcome.FAIL,
        value=value,
        spread=spread,
        spread_method=method,
        bound=target.bound,
        margin=target.margin(value),
        passed=passed,
        n=len(values),
        rounds=len(groups) if rounds is not None else len(values),
    )


def skipped_verdict(target: Target) -> Verdict:
    """The verdict of ``target`` when its workload skipped itself: no value, not passed."""
    return _without_value(target, TargetOutcome.SKIPPED)


def _without_value(target: Target, outcome: TargetOutcome) -> Verdict:
    """A verdict with no value to judge (missing, or skipped): not passed, no spread."""
    return Verdict(target, outcome, None, None, SpreadMethod.NONE, target.bound, None, False, 0, 0)


def _groups(array: npt.NDArray[np.float64], rounds: Sequence[str]) -> list[npt.NDArray[np.float64]]:
    order: dict[str, list[int]] = {}
    for index, label in enumerate(rounds):
        order.setdefault(label, []).append(index)
    return [array[indices] for indices in order.values()]


def _interval(estimates: npt.NDArray[np.float64]) -> tuple[float, float]:
    tail = (1.0 - CONFIDENCE) / 2.0 * 100.0
    low, high = np.percentile(estimates, [tail, 100.0 - tail])
    return float(low), float(high)


def _bootstrap_rounds(
    groups: Sequence[npt.NDArray[np.float64]],
    statistic: Statistic,
    rng: np.random.Generator,
    resamples: int,
) -> tuple[float, float]:
    count = len(groups)
    if all(len(group) == 1 for group in groups):
        return _bootstrap_values(np.concatenate(groups), statistic, rng, resamples)
    estimates = np.empty(resamples)
    for index in range(resamples):
        picks = rng.integers(0, count, size=count)
        estimates[index] = statistic_of(np.concatenate([groups[i] for i in picks]), statistic)
    return _interval(estimates)


def _bootstrap_values(
    array: npt.NDArray[np.float64],
    statistic: Statistic,
    rng: np.random.Generator,
    resamples: int,
) -> tuple[float, float]:
    estimates = np.empty(resamples)
    for index in range(resamples):
        estimates[index] = statistic_of(
            array[rng.integers(0, len(array), size=len(array))], statistic
        )
    return _interval(estimates)
