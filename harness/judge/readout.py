"""A comparison as text: the terminal table and the pull-request Markdown.

Both read a finished :class:`~harness.judge.compare.Comparison` and never judge:
rows in the order a reader acts on them (regressions first, no change last), the
verdict in the first column, each wall row's note beside its instruction twin
(:mod:`harness.judge.twins`), and "where the time went" from the bundles'
profiles (:mod:`harness.judge.where`) in the Markdown, which stays within a
GitHub comment's 65,536 characters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.bundle.files import load_profiles
from harness.errors import BundleError
from harness.judge.compare import Comparison, Row
from harness.judge.stats import RowVerdict
from harness.judge.where import HotPathWhere, format_seconds, where_of_rows
from workloads.registry import Better

__all__ = ["GITHUB_COMMENT_LIMIT", "format_markdown", "format_table"]


def _ratio(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _percent(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if not math.isfinite(value) else f"{value:.1%}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}"


_HEADER = (
    "workload",
    "metric",
    "stat",
    "rounds",
    "ratio",
    "95% CI",
    "p raw",
    "p BH",
    "noise",
    "MDE",
    "rounds for thr",
    "thr",
    "verdict",
)


def _cells(row: Row) -> tuple[str, ...]:
    interval = "-" if row.ci_low is None else f"[{_ratio(row.ci_low)}, {_ratio(row.ci_high)}]"
    metric = row.metric + ("" if row.direction is Better.LOWER else " (higher=better)")
    rounds = f"{row.rounds}{'p' if row.paired else 'u'}" if row.p_raw is not None else "exact"
    verdict = row.verdict.value.upper() if row.verdict is RowVerdict.REGRESSION else row.verdict
    if row.error:
        verdict = f"error: {row.error}"
    return (
        row.workload,
        metric,
        row.statistic,
        rounds,
        _ratio(row.ratio),
        interval,
        _p(row.p_raw),
        _p(row.p_adjusted),
        _percent(row.noise) + ("*" if row.noise_source != "this comparison" else ""),
        _percent(row.mde),
        "-" if row.rounds_needed is None else str(row.rounds_needed),
        f"{row.threshold:.0%}",
        str(verdict),
    )


def _headline(comparison: Comparison) -> str:
    counts: dict[str, int] = {}
    for row in comparison.rows:
        counts[row.verdict.value] = counts.get(row.verdict.value, 0) + 1
    summary = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
    return f"verdict: {comparison.verdict.value.upper()} ({len(comparison.rows)} rows: {summary})"


# What a reader acts on first: the order of the rows in the table and the Markdown.
_READING_ORDER = (
    RowVerdict.REGRESSION,
    RowVerdict.ERROR,
    RowVerdict.SLOWER,
    RowVerdict.FASTER,
    RowVerdict.INCONCLUSIVE,
    RowVerdict.BY_INSTRUCTIONS,
    RowVerdict.REFERENCE,
    RowVerdict.NO_CHANGE,
)
# Folded away in the Markdown: nothing to act on.
_FOLDED = (RowVerdict.NO_CHANGE, RowVerdict.BY_INSTRUCTIONS, RowVerdict.REFERENCE)
# A GitHub comment holds at most this many characters.
GITHUB_COMMENT_LIMIT = 65_536
_WHERE_FUNCTIONS = 5


def _in_reading_order(rows: Iterable[Row]) -> list[Row]:
    """Regressions first, then errors, slower, faster, inconclusive, reference, no change;
    the largest change first within a verdict, then by name."""

    def key(row: Row) -> tuple[int, float, str, str, str]:
        size = (
            abs(math.log(row.ratio))
            if row.ratio is not None and row.ratio > 0 and math.isfinite(row.ratio)
            else 0.0
        )
        return (_READING_ORDER.index(row.verdict), -size, row.workload, row.metric, row.statistic)

    return sorted(rows, key=key)


def _table_cells(row: Row) -> tuple[str, ...]:
    """:func:`_cells` with the verdict first."""
    cells = _cells(row)
    return (cells[-1], *cells[:-1])


def format_table(comparison: Comparison) -> str:
    """The terminal table; its first line is the comparison's verdict.

    Rows in reading order (regressions first, no change last), the verdict in the
    first column.
    """
    header = (_HEADER[-1], *_HEADER[:-1])
    table = [header, *(_table_cells(row) for row in _in_reading_order(comparison.rows))]
    widths = [max(len(cells[i]) for cells in table) for i in range(len(header))]
    lines = [_headline(comparison)]
    lines.extend(f"  {reason}" for reason in comparison.reasons)
    lines.extend(f"WARNING: {warning}" for warning in comparison.warnings)
    lines.append("")
    lines.extend(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells)).rstrip() for cells in table
    )
    lines.append("")
    notes = _notes(_in_reading_order(comparison.rows))
    if notes:
        lines.append("notes (wall rows beside their instruction twins):")
        lines.extend(f"  {note}" for note in notes)
        lines.append("")
    lines.append(
        "rounds: p = paired, u = unpaired (per side); noise: sd of one round's log ratio "
        "(* = from the calibration); MDE: smallest change detected with 80% power; "
        "rounds for thr: rounds needed to detect the threshold"
    )
    lines.append(f"method: {comparison.method}")
    lines.append(f"base: {comparison.base.run_id} ({comparison.base.path})")
    lines.append(f"candidate: {comparison.candidate.run_id} ({comparison.candidate.path})")
    return "\n".join(lines)


@dataclass(slots=True)
class _MarkdownBlock:
    """Lines of the Markdown: a head, rows that may be cut for length, a tail."""

    head: list[str]
    rows: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)
    kept: int = -1  # rows kept; -1: all


def _notes(rows: Iterable[Row]) -> list[str]:
    """``workload/metric/statistic: note`` of each row with a note, in the given order."""
    return [f"{row.workload}/{row.metric}/{row.statistic}: {row.note}" for row in rows if row.note]


def _md(text: str) -> str:
    """``text`` safe in a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(_md(cell) for cell in cells) + " |"


def _where_of(comparison: Comparison) -> tuple[HotPathWhere, ...]:
    """The "where" of the comparison's rows, from the profiles in its two bundles.

    Nothing when neither bundle has profiles (or is here to read); a bundle whose
    profiles cannot be read counts as having none (its "where" says so).
    """
    profiles = []
    for side in (comparison.base, comparison.candidate):
        try:
            profiles.append(load_profiles(Path(side.path)) if side.path else ())
        except BundleError:
            profiles.append(())
    if not any(profiles):
        return ()
    return where_of_rows(
        (
            (row.workload, f"{row.workload}/{row.metric}/{row.statistic}", row.verdict.value)
            for row in _in_reading_order(comparison.rows)
        ),
        profiles[0],
        profiles[1],
    )


def _where_blocks(where: Sequence[HotPathWhere]) -> list[_MarkdownBlock]:
    if not where:
        return []
    blocks = [
        _MarkdownBlock(
            [
                "### Where the time went",
                "",
                "Per hot path behind a regression, slower or faster row: the functions whose own "
                "time changed most between the two sides' profiles (one pyinstrument profile a "
                "side: a change of a few 0.5 ms samples is noise).",
                "",
            ]
        )
    ]
    for entry in where:
        rows = ", ".join(f"`{label}`" for label in entry.rows)
        attribution = entry.attribution
        if attribution is None:
            blocks.append(_MarkdownBlock([f"**{entry.path}** ({rows}): {entry.note}.", ""]))
            continue
        unit = "whole run" if attribution.scale == "run" else f"per {attribution.scale}"
        ratio = attribution.ratio
        change = "" if ratio is None else f" ({ratio - 1:+.1%})"
        blocks.append(
            _MarkdownBlock(
                [
                    f"**{entry.path}** ({rows}), {unit}: base "
                    f"{format_seconds(attribution.base_total_s)} → candidate "
                    f"{format_seconds(attribution.candidate_total_s)}{change}; {attribution.note}.",
                    "",
                    "| function | where | own time, base | candidate | change | share of change |",
                    "|---|---|---:|---:|---:|---:|",
                ],
                [
                    _markdown_row(
                        (
                            f"`{item.function}`",
                            f"`{item.where}`",
                            format_seconds(item.base_s) if item.base_s else "-",
                            format_seconds(item.candidate_s) if item.candidate_s else "-",
                            ("+" if item.delta_s > 0 else "") + format_seconds(item.delta_s),
                            "-" if item.share is None else f"{item.share:.0%}",
                        )
                    )
                    for item in attribution.top(_WHERE_FUNCTIONS)
                    if item.delta_s != 0
                ],
                [""],
            )
        )
    return blocks


def _fit(blocks: Sequence[_MarkdownBlock], limit: int) -> str:
    """The blocks as text of at most ``limit`` characters: rows cut, last block first.

    A block that lost rows says how many, and where to find them all.
    """

    def text() -> str:
        lines: list[str] = []
        for block in blocks:
            lines.extend(block.head)
            kept = len(block.rows) if block.kept < 0 else block.kept
            lines.extend(block.rows[:kept])
            if kept < len(block.rows):
                lines.extend(
                    [
                        "",
                        f"_... {len(block.rows) - kept} more row(s) left out: a pull-request "
                        f"comment holds {limit} characters; `harness compare --json` has "
                        "every row._",
                    ]
                )
            lines.extend(block.tail)
        return "\n".join(lines) + "\n"

    rendered = text()
    for block in reversed(blocks):
        if len(rendered) <= limit:
            break
        sizes = [len(row) + 1 for row in block.rows]
        kept = len(sizes)
        excess = len(rendered) - limit + 200  # room for the note line
        while kept and excess > 0:
            kept -= 1
            excess -= sizes[kept]
        block.kept = kept
        rendered = text()
    if len(rendered) > limit:  # heads and tails alone exceed it: cut the text itself
        note = "\n\n_... cut: a pull-request comment holds at most this many characters._\n"
        rendered = rendered[: limit - len(note)] + note
    return rendered


def format_markdown(
    comparison: Comparison,
    *,
    where: Sequence[HotPathWhere] | None = None,
    limit: int = GITHUB_COMMENT_LIMIT,
) -> str:
    """Markdown for a pull-request comment, in the order a reader acts on it.

    The verdict first; the rows to act on (regressions first, then errors, slower,
    faster, inconclusive); "where the time went" when the bundles carry profiles
    (``where``; None reads them from the two bundles' directories); then, folded in
    ``<details>``, every row with every column, the reasons and the method. At most
    ``limit`` characters (a GitHub comment's): rows are cut from the end, the
    details' first, with a note saying how many.
    """
    head = [f"**Comparison verdict: {comparison.verdict.value}**", ""]
    head.extend(f"> **Warning:** {_md(warning)}" for warning in comparison.warnings)
    if comparison.warnings:
        head.append("")
    ordered = _in_reading_order(comparison.rows)
    shown = [row for row in ordered if row.verdict not in _FOLDED]
    counts = {verdict: sum(row.verdict is verdict for row in ordered) for verdict in RowVerdict}
    head.append(
        ", ".join(
            f"**{counts[verdict]} {verdict.value}**"
            if verdict is RowVerdict.REGRESSION
            else f"{counts[verdict]} {verdict.value}"
            for verdict in _READING_ORDER
            if counts[verdict]
        )
        + f" (of {len(ordered)} rows; threshold {comparison.threshold:.0%}, "
        f"Benjamini-Hochberg q={comparison.fdr_q:g})"
    )
    head.append("")
    blocks = [_MarkdownBlock(head)]
    if shown:
        columns = ("verdict", "workload", "metric", "stat", "ratio", "95% CI", "p BH", "MDE")
        blocks.append(
            _MarkdownBlock(
                [_markdown_row(columns), "|" + "---|" * len(columns)],
                [
                    _markdown_row(
                        (
                            f"**{cells[12]}**"
                            if row.verdict is RowVerdict.REGRESSION
                            else cells[12],
                            *cells[0:3],
                            cells[4],
                            cells[5],
                            cells[7],
                            cells[9],
                        )
                    )
                    for row in shown
                    for cells in (_cells(row),)
                ],
                ["", *(f"- {_md(note)}" for note in _notes(shown)), ""] if _notes(shown) else [""],
            )
        )
    else:
        blocks.append(_MarkdownBlock(["No row changed beyond its noise.", ""]))
    blocks.extend(_where_blocks(_where_of(comparison) if where is None else where))
    folded = len(ordered) - len(shown)
    blocks.append(
        _MarkdownBlock(
            [
                f"<details><summary>Every row ({folded} with no change, decided by "
                "instructions or a reference figure folded here), the method and the "
                "reasons</summary>",
                "",
                _markdown_row((_HEADER[-1], *_HEADER[:-1])),
                "|" + "---|" * len(_HEADER),
            ],
            [_markdown_row(_table_cells(row)) for row in ordered],
            [
                "",
                *(f"- {_md(note)}" for note in _notes(ordered)),
                *(f"- {_md(reason)}" for reason in comparison.reasons),
                f"- method: {comparison.method}",
                f"- base: `{comparison.base.run_id}`, candidate: `{comparison.candidate.run_id}`",
                "",
                "</details>",
            ],
        )
    )
    return _fit(blocks, limit)
