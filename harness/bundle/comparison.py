"""The comparison JSON: what ``harness compare --json`` writes and the report reads.

It is the contract between a comparison and a report made elsewhere or later (a
CI job's artifact read by ``harness report --comparison``), so its shape is
declared once, here, below both: the judge builds these structs and encodes them
(:meth:`harness.judge.compare.Comparison.as_json`), the report decodes them with
validation (:func:`harness.report.comparison.load_comparison`). Every field after
the first few has a default, so a file from an older harness that lacks a newer
field still reads. Floats that are infinite in the computation (an unreachable
MDE) are written as null.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["SCHEMA_VERSION", "Comparison", "ComparisonRow", "ComparisonSide"]

SCHEMA_VERSION = 1


class ComparisonSide(msgspec.Struct, frozen=True):
    """One side of a comparison: its run id and its bundle's path."""

    run_id: str
    path: str = ""


class ComparisonRow(msgspec.Struct, frozen=True):
    """One workload metric compared: ratio candidate/base, its interval, its verdict."""

    workload: str
    metric: str
    verdict: str
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    statistic: str = ""
    unit: str = ""
    clock: str = ""
    rounds: int | None = None
    p_raw: float | None = None
    p_adjusted: float | None = None
    noise: float | None = None
    mde: float | None = None
    rounds_needed: int | None = None
    threshold: float | None = None
    direction: str = ""
    paired: bool = False
    scale: str = "value"
    noise_source: str = ""
    error: str | None = None
    note: str = ""  # the row beside its instruction twin (harness.judge.twins)


class Comparison(msgspec.Struct, frozen=True):
    """A whole comparison as ``harness compare --json`` writes it."""

    schema: int
    verdict: str
    method: str
    base: ComparisonSide
    candidate: ComparisonSide
    rows: list[ComparisonRow]
    fdr_q: float | None = None
    threshold: float | None = None
    paired: bool = False
    warnings: list[str] = msgspec.field(default_factory=list)
    calibration: dict[str, Any] | None = None
    tests: int = 0
    reasons: list[str] = msgspec.field(default_factory=list)
