"""The report's comparison section: read a comparison (JSON file or two bundles), lay it out.

The comparison itself is computed by :mod:`harness.judge.compare` (``harness compare``);
this module only reads its output, whose JSON (``Comparison.as_json()``, schema 1) is
the contract between the two::

    {"schema": 1, "verdict", "method", "fdr_q", "threshold", "paired",
     "base": {"run_id", "path"}, "candidate": {...}, "warnings": [...],
     "calibration": {...} | null,
     "rows": [{"workload", "metric", "statistic", "unit", "clock", "rounds", "ratio",
               "ci_low", "ci_high", "p_raw", "p_adjusted", "noise", "mde",
               "rounds_needed", "threshold", "verdict", "direction"}]}

Guarantees:

* A comparison file that is not JSON of that schema raises
  :class:`~harness.errors.BundleError` naming the file and the field.
* Given a base *bundle*, :func:`comparison_section` calls
  :func:`harness.judge.compare.compare_bundles`; when it refuses the pair (a
  :class:`~harness.errors.HarnessError`, e.g. different machines), the section
  says so in words instead of failing the whole report.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from harness.bundle.files import Bundle
from harness.errors import BundleError, HarnessError
from harness.judge.compare import compare_bundles
from harness.report import charts

__all__ = [
    "Comparison",
    "ComparisonRow",
    "ComparisonSection",
    "ComparisonState",
    "RowView",
    "comparison_section",
    "load_comparison",
]

SCHEMA_VERSION = 1
_EXPECTED = "a comparison JSON of schema 1 (written by `harness compare --json`)"


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
    error: str | None = None


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


class ComparisonState(enum.StrEnum):
    """What the comparison section can show."""

    NOT_REQUESTED = "not requested"
    RENDERED = "rendered"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class RowView:
    """One comparison row, formatted for display."""

    workload: str
    metric: str
    statistic: str
    clock: str
    ratio: str
    interval: str
    p_adjusted: str
    noise: str
    mde: str
    rounds: str
    verdict: str
    error: str
    style: str

    @property
    def regression(self) -> bool:
        """Whether this row is a regression (significant and beyond its threshold)."""
        return self.verdict.lower() == REGRESSION


@dataclass(frozen=True, slots=True)
class ComparisonSection:
    """The section: its state, a sentence for the reader, and the comparison when there is one."""

    state: ComparisonState
    message: str
    comparison: Comparison | None = None
    rows: tuple[RowView, ...] = ()
    forest_svg: str = ""

    @property
    def regressions(self) -> int:
        """How many rows are regressions."""
        return sum(row.regression for row in self.rows)


def load_comparison(path: Path) -> Comparison:
    """The comparison JSON at ``path``, validated."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(
            f"cannot read the comparison: {exc.strerror or exc}", where=str(path)
        ) from None
    try:
        comparison = msgspec.json.decode(data, type=Comparison)
    except msgspec.ValidationError as exc:
        text, _, field = str(exc).partition(" - at `")
        where = f"{path}: field {field.rstrip('`')}" if field else str(path)
        raise BundleError(text, where=where, expected=_EXPECTED) from None
    except msgspec.DecodeError as exc:
        raise BundleError(f"not JSON: {exc}", where=str(path), expected=_EXPECTED) from None
    if comparison.schema != SCHEMA_VERSION:
        raise BundleError(
            f"schema version {comparison.schema}", where=f"{path}: field schema", expected=_EXPECTED
        )
    return comparison


def _compare_bundles(base: Bundle, candidate: Bundle) -> Comparison:
    """:func:`harness.judge.compare.compare_bundles`, read back through its JSON contract."""
    return msgspec.convert(compare_bundles(base, candidate).as_json(), Comparison)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


REGRESSION = "regression"
# Badge style of a row verdict (harness.judge.compare's RowVerdict values); others are neutral.
_STYLES = {
    "regression": "fail",
    "error": "fail",
    "slower": "warn",
    "inconclusive": "warn",
    "faster": "pass",
}


def _rows(comparison: Comparison) -> tuple[RowView, ...]:
    views = []
    for row in comparison.rows:
        interval = (
            "-"
            if row.ci_low is None or row.ci_high is None
            else f"[{_ratio(row.ci_low)}, {_ratio(row.ci_high)}]"
        )
        rounds = "-" if row.rounds is None else str(row.rounds)
        if row.rounds_needed is not None:
            rounds += f" (need {row.rounds_needed})"
        views.append(
            RowView(
                workload=row.workload,
                metric=row.metric,
                statistic=row.statistic or "-",
                clock=row.clock or "-",
                ratio=_ratio(row.ratio),
                interval=interval,
                p_adjusted="-" if row.p_adjusted is None else f"{row.p_adjusted:.3g}",
                noise=_percent(row.noise),
                mde=_percent(row.mde),
                rounds=rounds,
                verdict=row.verdict,
                error=row.error or "",
                style=_STYLES.get(row.verdict.lower(), "neutral"),
            )
        )
    return tuple(views)


def _forest(comparison: Comparison) -> str:
    rows = [
        charts.ForestRow(
            label=f"{row.metric}\n({row.workload})",
            ratio=row.ratio,
            low=row.ci_low,
            high=row.ci_high,
            verdict=row.verdict.lower(),
        )
        for row in comparison.rows
        if row.ratio is not None
    ]
    if not rows:
        return ""
    return charts.forest_chart(
        "forest",
        rows,
        threshold=comparison.threshold,
        title="Candidate / base, per workload metric",
    )


def rendered(comparison: Comparison, source: str) -> ComparisonSection:
    """The section of a comparison read from ``source`` (a file, or the compare module)."""
    return ComparisonSection(
        ComparisonState.RENDERED,
        f"Comparison of {comparison.candidate.run_id} (candidate) against "
        f"{comparison.base.run_id} (base), from {source}.",
        comparison,
        _rows(comparison),
        _forest(comparison),
    )


def comparison_section(base: Path | None, candidate: Bundle) -> ComparisonSection:
    """The comparison section for ``--base`` (a bundle directory or a comparison JSON).

    Raises :class:`~harness.errors.BundleError` when ``base`` is neither.
    """
    if base is None:
        return ComparisonSection(
            ComparisonState.NOT_REQUESTED,
            "No base given: run `harness report --base BUNDLE_OR_COMPARISON_JSON` to compare.",
        )
    if base.is_file():
        return rendered(load_comparison(base), str(base))
    if not base.is_dir():
        raise BundleError(
            "no such bundle or comparison",
            where=str(base),
            expected="--base naming a run bundle directory or a comparison JSON file",
        )
    from harness.bundle.files import load_bundle

    base_bundle = load_bundle(base)
    try:
        comparison = _compare_bundles(base_bundle, candidate)
    except HarnessError as exc:
        return ComparisonSection(
            ComparisonState.REFUSED, f"harness compare refused this pair: {exc}"
        )
    return rendered(comparison, "harness.judge.compare")
