"""The report's comparison section: read a comparison (JSON file or two bundles), lay it out.

The comparison itself is computed by :mod:`harness.judge.compare` (``harness compare``);
this module only reads its output, whose JSON (schema 1) is the contract between the
two, declared once in :mod:`harness.bundle.comparison` (both sides use its structs).

Guarantees:

* A comparison file that is not JSON of that schema raises
  :class:`~harness.errors.BundleError` naming the file and the field.
* Given a base *bundle*, :func:`comparison_section` calls
  :func:`harness.judge.compare.compare_bundles`; when it refuses the pair (a
  :class:`~harness.errors.HarnessError`, e.g. different machines), the section
  says so in words instead of failing the whole report.
* Rows come in the order a reader acts on them: by verdict (regression, error,
  slower, faster, inconclusive), the largest change first within a verdict; rows
  with no change and reference figures are folded apart (:attr:`ComparisonSection.folded`).
* "Where the time went": for each hot path behind a regression, slower or faster
  row (:data:`harness.judge.where.HOT_PATH_OF_WORKLOAD`) whose profiles both sides
  carry, the functions whose own time changed most and a differential flame
  graph. Profiles that are missing or unreadable are said in words, never fatal.

Why one module: it is one section, from the comparison JSON to its display records, read
by one caller (:mod:`harness.report.html`); the rows and the "where" blocks they link to follow
the same private reading order (``_reading_order``, :data:`VERDICT_ORDER`), which a split
would make two modules import.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from harness.bundle.comparison import SCHEMA_VERSION, Comparison, ComparisonRow
from harness.bundle.files import Bundle, HotPathProfile, load_profiles
from harness.errors import BundleError, HarnessError
from harness.judge.compare import compare_bundles
from harness.judge.where import (
    ACTIONABLE_VERDICTS,
    HOT_PATH_OF_WORKLOAD,
    HotPathWhere,
    format_seconds,
    where_of_rows,
)
from harness.report import charts
from harness.report.flame import diff_flame_svg

__all__ = [
    "Comparison",
    "ComparisonRow",
    "ComparisonSection",
    "ComparisonState",
    "FunctionRow",
    "RowView",
    "WhereView",
    "comparison_section",
    "load_comparison",
]

_EXPECTED = "a comparison JSON of schema 1 (written by `harness compare --json`)"


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
    note: str = ""  # what its instruction twin says, "" when nothing
    where: str = ""  # the anchor of its hot path's "where" block, "" when none

    @property
    def regression(self) -> bool:
        """Whether this row is a regression (significant and beyond its threshold)."""
        return self.verdict.lower() == REGRESSION

    @property
    def folded(self) -> bool:
        """Whether the row is folded away (no change, decided by instructions, a reference)."""
        return self.verdict.lower() in FOLDED


@dataclass(frozen=True, slots=True)
class FunctionRow:
    """One function of a "where" block: its own time on each side and its share of the change."""

    function: str
    where: str
    base: str
    candidate: str
    change: str
    share: str
    more: bool


@dataclass(frozen=True, slots=True)
class WhereView:
    """Where one hot path's time went between base and candidate, for the rows it explains."""

    path: str
    anchor: str
    rows: tuple[str, ...]
    summary: str
    functions: tuple[FunctionRow, ...] = ()
    svg: str = ""
    note: str = ""


@dataclass(frozen=True, slots=True)
class ComparisonSection:
    """The section: its state, a sentence for the reader, and the comparison when there is one."""

    state: ComparisonState
    message: str
    comparison: Comparison | None = None
    rows: tuple[RowView, ...] = ()
    forest_svg: str = ""
    where: tuple[WhereView, ...] = ()
    where_message: str = ""

    @property
    def regressions(self) -> int:
        """How many rows are regressions."""
        return sum(row.regression for row in self.rows)

    @property
    def shown(self) -> tuple[RowView, ...]:
        """The rows to act on or look at, in reading order."""
        return tuple(row for row in self.rows if not row.folded)

    @property
    def folded(self) -> tuple[RowView, ...]:
        """The rows folded away: no change, reference figures."""
        return tuple(row for row in self.rows if row.folded)


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
# Reading order of the row verdicts (harness.judge.stats.RowVerdict values): what to
# act on first. Unknown verdicts come after these, folded ones last.
VERDICT_ORDER = (
    "regression",
    "error",
    "slower",
    "faster",
    "inconclusive",
    "by instructions",
    "reference",
    "no change",
)
FOLDED = ("no change", "by instructions", "reference")
WHERE_FUNCTIONS = 8
# Badge style of a row verdict (harness.judge.compare's RowVerdict values); others are neutral.
_STYLES = {
    "regression": "fail",
    "error": "fail",
    "slower": "warn",
    "inconclusive": "warn",
    "faster": "pass",
}


_RANK = {verdict: 2 * index for index, verdict in enumerate(VERDICT_ORDER)}
_UNKNOWN_RANK = _RANK["reference"] - 1  # after the judged verdicts, before the folded ones


def _reading_order(row: ComparisonRow) -> tuple[int, float, str, str, str]:
    """Verdict first (:data:`VERDICT_ORDER`), then the largest change, then by name."""
    rank = _RANK.get(row.verdict.lower(), _UNKNOWN_RANK)
    size = abs(math.log(row.ratio)) if row.ratio is not None and row.ratio > 0 else 0.0
    return (rank, -size, row.workload, row.metric, row.statistic)


def _rows(comparison: Comparison, anchors: dict[str, str]) -> tuple[RowView, ...]:
    views = []
    for row in sorted(comparison.rows, key=_reading_order):
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
                note=row.note,
                style=_STYLES.get(row.verdict.lower(), "neutral"),
                where=anchors.get(HOT_PATH_OF_WORKLOAD.get(row.workload, ""), "")
                if row.verdict.lower() in ACTIONABLE_VERDICTS
                else "",
            )
        )
    return tuple(views)


def _label(row: ComparisonRow) -> str:
    return (
        f"{row.workload}/{row.metric}/{row.statistic}"
        if row.statistic
        else (f"{row.workload}/{row.metric}")
    )


def _signed(seconds: float) -> str:
    return ("+" if seconds >= 0 else "") + format_seconds(seconds)


def _where_view(found: HotPathWhere) -> WhereView:
    anchor = f"where-{found.path}"
    attribution = found.attribution
    if attribution is None or found.diff is None:
        return WhereView(found.path, anchor, found.rows, "", note=found.note)
    per = "" if attribution.scale == "run" else attribution.scale
    unit = f" per {per}" if per else " (whole run)"
    ratio = attribution.ratio
    change = "" if ratio is None else f" ({ratio - 1:+.1%})"
    summary = (
        f"{found.path}{unit}: base {format_seconds(attribution.base_total_s)}, candidate "
        f"{format_seconds(attribution.candidate_total_s)}{change}; {attribution.note}."
    )
    functions = tuple(
        FunctionRow(
            function=item.function,
            where=item.where,
            base=format_seconds(item.base_s) if item.base_s else "-",
            candidate=format_seconds(item.candidate_s) if item.candidate_s else "-",
            change=_signed(item.delta_s),
            share="-" if item.share is None else f"{item.share:.0%}",
            more=item.delta_s > 0,
        )
        for item in attribution.top(WHERE_FUNCTIONS)
        if item.delta_s != 0
    )
    svg = diff_flame_svg(
        found.diff,
        ident=f"flame-diff-{found.path}",
        title=f"Differential flame graph of {found.path}: the candidate's calls, coloured by "
        "the change of each frame's own time (red more, blue less)",
        per=per,
    )
    return WhereView(found.path, anchor, found.rows, summary, functions, svg, found.note)


def _where(
    comparison: Comparison,
    base_profiles: Sequence[HotPathProfile],
    candidate_profiles: Sequence[HotPathProfile],
) -> tuple[tuple[WhereView, ...], dict[str, str]]:
    """The "where" blocks, and each block's anchor by hot path (none without any profile)."""
    if not base_profiles and not candidate_profiles:
        return (), {}
    found = where_of_rows(
        (
            (row.workload, _label(row), row.verdict)
            for row in sorted(comparison.rows, key=_reading_order)
        ),
        base_profiles,
        candidate_profiles,
    )
    views = tuple(_where_view(entry) for entry in found)
    return views, {view.path: view.anchor for view in views}


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


def rendered(
    comparison: Comparison,
    source: str,
    base_profiles: Sequence[HotPathProfile] = (),
    candidate_profiles: Sequence[HotPathProfile] = (),
    profile_note: str = "",
) -> ComparisonSection:
    """The section of a comparison read from ``source`` (a file, or the compare module).

    ``base_profiles`` and ``candidate_profiles`` are the two sides' hot-path
    profiles (for "where the time went"); ``profile_note`` says why a side has none.
    """
    where, anchors = _where(comparison, base_profiles, candidate_profiles)
    return ComparisonSection(
        ComparisonState.RENDERED,
        f"Comparison of {comparison.candidate.run_id} (candidate) against "
        f"{comparison.base.run_id} (base), from {source}.",
        comparison,
        _rows(comparison, anchors),
        _forest(comparison),
        where,
        profile_note,
    )


def _side_profiles(path: str, side: str) -> tuple[tuple[HotPathProfile, ...], str]:
    """A side's profiles read from its bundle directory, or none and why (never fatal)."""
    directory = Path(path) if path else None
    if directory is None or not directory.is_dir():
        return (), f"the {side} bundle ({path or 'no path'}) is not here to read its profiles"
    try:
        return load_profiles(directory), ""
    except BundleError as exc:
        return (), str(exc)


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
        comparison = load_comparison(base)
        base_profiles, base_note = _side_profiles(comparison.base.path, "base")
        candidate_profiles: tuple[HotPathProfile, ...] = candidate.profiles
        candidate_note = ""
        if comparison.candidate.run_id != candidate.manifest.run_id:
            candidate_profiles, candidate_note = _side_profiles(
                comparison.candidate.path, "candidate"
            )
        note = "; ".join(n for n in (base_note, candidate_note) if n)
        return rendered(comparison, str(base), base_profiles, candidate_profiles, note)
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
    return rendered(comparison, "harness.judge.compare", base_bundle.profiles, candidate.profiles)
