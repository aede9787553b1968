"""The words every stage shares about targets: statistics, clocks, units, verdicts.

A bundle records target verdicts, the store keeps them, judge computes them and
report shows them; so they live here, below all of those. Parsing the targets file
stays in :mod:`harness.judge.targets`, computing a verdict in
:mod:`harness.judge.verdict`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "PYPERF_METRIC",
    "Clock",
    "Direction",
    "Measurement",
    "SpreadMethod",
    "Statistic",
    "Target",
    "TargetOutcome",
    "Unit",
    "Verdict",
    "format_quantity",
    "statistic_of",
]

PYPERF_METRIC = "pyperf"


class Statistic(enum.StrEnum):
    """What a target reads from the values."""

    P50 = "p50"
    P95 = "p95"
    P99 = "p99"
    MEDIAN = "median"
    MEAN = "mean"


class Clock(enum.StrEnum):
    """Real time on the machine, the runtime's virtual (trace) time, or instructions counted."""

    WALL = "wall"
    TRACE = "trace"
    INSTRUCTIONS = "instructions"


class Unit(enum.StrEnum):
    """Units of a bound (seconds inside; converted only for display)."""

    SECONDS = "s"
    RATIO = "ratio"
    PER_HOUR = "per_hour"
    INSTRUCTIONS = "instructions"


class Direction(enum.StrEnum):
    """``max``: the value must be <= the bound; ``min``: it must be >= the bound."""

    MAX = "max"
    MIN = "min"


class TargetOutcome(enum.StrEnum):
    """A target's verdict on one run."""

    PASS = "pass"
    FAIL = "fail"
    MISSING = "missing"
    SKIPPED = "skipped"


class SpreadMethod(enum.StrEnum):
    """How :attr:`Verdict.spread` was computed."""

    BOOTSTRAP_ROUNDS = "bootstrap-95-rounds"
    BOOTSTRAP_VALUES = "bootstrap-95-values"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Target:
    """One target of the targets file; ``line`` is its ``[[target]]`` header's line."""

    name: str
    workload: str
    metric: str
    statistic: Statistic
    clock: Clock
    unit: Unit
    bound: float
    direction: Direction
    description: str
    line: int = 0

    def holds(self, value: float) -> bool:
        """Whether ``value`` is on the passing side of the bound (inclusive)."""
        if self.direction is Direction.MAX:
            return value <= self.bound
        return value >= self.bound

    def margin(self, value: float) -> float:
        """Signed distance to the bound, positive on the passing side.

        Relative to the bound (0.1 = 10 % of the bound to spare); absolute when
        the bound is zero.
        """
        gap = self.bound - value if self.direction is Direction.MAX else value - self.bound
        return gap / abs(self.bound) if self.bound else gap


@dataclass(frozen=True, slots=True)
class Verdict:
    """A target's verdict on one run.

    ``value`` and ``margin`` are None when the verdict is missing; ``spread`` is
    the (low, high) confidence interval of ``value`` by ``spread_method``;
    ``n`` counts values and ``rounds`` the resampling units they came in.
    """

    target: Target
    outcome: TargetOutcome
    value: float | None
    spread: tuple[float, float] | None
    spread_method: SpreadMethod
    bound: float
    margin: float | None
    passed: bool
    n: int
    rounds: int


@dataclass(frozen=True, slots=True)
class Measurement:
    """The values a target reads, each with the round it came from."""

    values: tuple[float, ...]
    rounds: tuple[str, ...]


def statistic_of(values: npt.ArrayLike, statistic: Statistic) -> float:
    """``statistic`` of ``values`` (linear-interpolation percentiles)."""
    array = np.asarray(values, dtype=float)
    if statistic is Statistic.MEAN:
        return float(np.mean(array))
    percent = {Statistic.P50: 50.0, Statistic.MEDIAN: 50.0, Statistic.P95: 95.0}.get(
        statistic, 99.0
    )
    return float(np.percentile(array, percent))


def format_quantity(value: float | None, unit: Unit) -> str:
    """``value`` for display: seconds scaled to s/ms/µs, ratios as is, rates per hour."""
    if value is None:
        return "-"
    if unit is Unit.SECONDS:
        magnitude = abs(value)
        if magnitude >= 1.0 or magnitude == 0.0:
            return f"{value:.4g} s"
        if magnitude >= 1e-3:
            return f"{value * 1e3:.4g} ms"
        return f"{value * 1e6:.4g} µs"
    if unit is Unit.PER_HOUR:
        return f"{value:.4g}/h"
    if unit is Unit.INSTRUCTIONS:
        return f"{value:,.0f} instr"
    return f"{value:.4g}"
