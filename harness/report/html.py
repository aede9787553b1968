"""``harness report``: one bundle as a self-contained HTML report, and a Markdown summary.

The report is what a person reads after a nightly run or in a performance
review, in the order they ask their questions: the verdict; the targets; legacy
versus pooled; distributions; trends over the branch's history; the comparison
with a base (``--base``); the peers; the determinism replay; profiles of the hot
paths; the environment and pyperf's tuning warnings.

Guarantees:

* The HTML file is self-contained and works offline: CSS inline, charts as
  inline SVG, no script, no font, no image, nothing fetched from anywhere.
* Both files are written atomically (a temporary file renamed over the target);
  the bundle itself is never modified. A target that is not a regular file (a
  symlink, a FIFO, a device, a directory) is refused before anything is rendered.
* Everything is read from files (bundle, history, comparison). The only thing
  run; the hot paths' profiles are the ones the run captured into the bundle.
* A missing or unreadable bundle or base raises :class:`~harness.errors.BundleError`
  (exit status 2 from the CLI); no history or no peers is said in the report.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import markupsafe

from harness.bundle.files import (
    MANIFEST,
    STAGING_PREFIX,
    Bundle,
    DeterminismStatus,
    HotPathProfile,
    load_bundle,
)
from harness.bundle.paths import check_output_file, write_text_atomically
from harness.errors import BundleError, EnvironmentRefused
from harness.report import sections as sections
from harness.report.comparison import ComparisonSection, ComparisonState, comparison_section
from harness.report.flame import ProfileGroup, profile_groups
from harness.report.loops import LoopSection, loop_section
from harness.store.db import HISTORY_FILE
from harness.store.location import Location, history_location

__all__ = [
    "DEFAULT_TREND_RUNS",
    "Headline",
    "ReportOptions",
    "ReportResult",
    "Status",
    "latest_bundle",
    "render_html",
    "render_summary",
    "write_report",
]

DEFAULT_TREND_RUNS = 20
REPORT_FILE = "report.html"
SUMMARY_FILE = "summary.md"
TEMPLATE = "report.html.j2"


class Status(enum.StrEnum):
    """The report's overall verdict."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Headline:
    """The verdict banner: the overall status, one title line, the reasons under it."""

    status: Status
    title: str
    points: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """What to render, from where, to where.

    ``bundle`` None means the latest bundle in ``reports_dir``; ``out`` None
    means ``report.html`` beside the bundle (in its reports directory);
    ``summary`` None means ``summary.md`` beside the report; ``history`` None
    means ``$AGENTBENCH_DB`` when set, else ``history.sqlite`` beside the bundle.
    """

    bundle: Path | None = None
    reports_dir: Path = Path("reports")
    base: Path | None = None
    out: Path | None = None
    summary: Path | None = None
    history: Location | None = None
    trend_runs: int = DEFAULT_TREND_RUNS


@dataclass(frozen=True, slots=True)
class ReportResult:
    """Where the report and the summary went, and the verdict they state."""

    html_path: Path
    summary_path: Path
    headline: Headline


@dataclass(frozen=True, slots=True)
class _Report:
    """Everything the template lays out."""

    bundle: Bundle
    generated_utc: str
    headline: Headline
    targets: tuple[sections.TargetRow, ...]
    pairs: tuple[sections.PairGroup, ...]
    loops: LoopSection
    sources: tuple[sections.PercentileSource, ...]
    distributions: tuple[sections.Distribution, ...]
    trends: sections.TrendSection
    comparison: ComparisonSection
    peers: sections.PeerSection
    determinism: sections.DeterminismSection
    profiles: tuple[HotPathProfile, ...]
    profile_message: str
    environment: tuple[tuple[str, str], ...]
    dependencies: tuple[tuple[str, str], ...]
    tuning: tuple[str, ...]
    tuning_note: str
    flames: tuple[ProfileGroup, ...] = ()
    clock_text: dict[str, str] = field(default_factory=lambda: dict(sections.CLOCK_TEXT))


def latest_bundle(reports_dir: Path) -> Path:
    """The most recent complete bundle in ``reports_dir`` (run ids sort by start time)."""
    candidates = (
        sorted(
            path
            for path in reports_dir.iterdir()
            if path.is_dir()
            and not path.name.startswith(STAGING_PREFIX)
            and (path / MANIFEST).is_file()
        )
        if reports_dir.is_dir()
        else []
    )
    if not candidates:
        raise BundleError(
            "no run bundle found",
            where=str(reports_dir),
            expected="a bundle written by `harness run`, or BUNDLE on the command line",
        )
    return candidates[-1]


def headline(bundle: Bundle, comparison: ComparisonSection) -> Headline:
    """The verdict: all targets met? deterministic? regressions against the base?

    FAIL when a target is missed, a replay diverged or the comparison found a
    regression; PASS WITH WARNINGS when determinism was not checked or the
    comparison was asked for but could not be made, was inconclusive or warns.
    """
    manifest = bundle.manifest
    verdicts = manifest.verdicts
    failures: list[str] = []
    warnings: list[str] = []
    points: list[str] = []
    missed = [v.target.name for v in verdicts if not v.passed]
    if missed:
        failures.append(f"{len(missed)} target(s) missed")
        points.append(
            f"{len(verdicts) - len(missed)} of {len(verdicts)} targets met; "
            f"missed: {', '.join(missed)}."
        )
    else:
        points.append(f"All {len(verdicts)} targets met.")
    determinism = manifest.determinism
    reason = f" ({determinism.reason})" if determinism.reason else ""
    if determinism.status is DeterminismStatus.DIVERGED:
        failures.append("replay not deterministic")
        points.append(f"Replay NOT deterministic{reason}: see the first divergence below.")
    elif determinism.status is DeterminismStatus.NOT_RUN:
        warnings.append("determinism not checked")
        points.append(f"Determinism not checked{reason}.")
    else:
        points.append(f"Replay deterministic{reason}.")
    found = comparison.comparison
    if found is not None:
        against = f"Comparison with {found.base.run_id}"
        if comparison.regressions or found.verdict.lower() == "regression":
            failures.append(f"{max(comparison.regressions, 1)} regression(s) against the base")
            points.append(f"{against}: {comparison.regressions} regression(s).")
        else:
            if found.verdict.lower() not in ("pass", "no change"):
                warnings.append(f"comparison {found.verdict}")
            points.append(f"{against}: {found.verdict}, no regression.")
        if found.warnings:
            warnings.append(f"{len(found.warnings)} comparison warning(s)")
    elif comparison.state is ComparisonState.REFUSED:
        warnings.append("comparison not made")
        points.append("Comparison requested but not made: see the comparison section.")
    if failures:
        return Headline(Status.FAIL, "FAIL: " + "; ".join(failures), tuple(points))
    if warnings:
        return Headline(Status.WARN, "PASS WITH WARNINGS: " + "; ".join(warnings), tuple(points))
    return Headline(Status.PASS, "PASS: every target met, replay deterministic", tuple(points))


def _profile_message(bundle: Bundle) -> str:
    if not bundle.profiles:
        return (
            "This bundle has no profiles: its run was made with --no-profile "
            "(or by a harness older than profiles in bundles)."
        )
    return (
        "Each hot path ran once in the measured checkout, in the run that wrote this bundle, "
        "under pyinstrument (sampling every 0.5 ms); times are wall seconds on that machine. "
        "Each graph is an icicle: the root on top, under each frame what it called, each box "
        "as wide as its time (hover a box for its function, file, time and share). Frames "
        "too narrow to see are left out; their time stays in their caller's box."
    )


def _build(bundle: Bundle, options: ReportOptions, history: Location) -> _Report:
    comparison = comparison_section(options.base, bundle)
    manifest = bundle.manifest
    environment = manifest.environment
    return _Report(
        bundle=bundle,
        generated_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        headline=headline(bundle, comparison),
        targets=sections.target_rows(manifest.verdicts),
        pairs=sections.pair_groups(bundle),
        loops=loop_section(bundle, history),
        sources=sections.percentile_sources(bundle),
        distributions=sections.distributions(bundle),
        trends=sections.trend_section(bundle, history, options.trend_runs),
        comparison=comparison,
        peers=sections.peer_section(bundle),
        determinism=sections.determinism_section(manifest),
        profiles=bundle.profiles,
        profile_message=_profile_message(bundle),
        flames=profile_groups(bundle.profiles),
        environment=sections.environment_rows(manifest),
        dependencies=tuple(sorted(environment.dependencies.items())),
        tuning=tuple(environment.system_tuning),
        tuning_note=environment.system_tuning_note,
    )


def _breakable(text: str) -> markupsafe.Markup:
    """``text`` escaped, with a line-break opportunity after each ``_`` (long metric names)."""
    return markupsafe.Markup("_<wbr>").join(markupsafe.escape(text).split("_"))


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("harness.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["breakable"] = _breakable
    return environment


def render_html(report: _Report) -> str:
    """The report as one HTML page."""
    return _environment().get_template(TEMPLATE).render(report=report, Status=Status)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_summary(report: _Report, html_name: str) -> str:
    """The Markdown summary: the verdict first, then the targets table."""
    manifest = report.bundle.manifest
    git = manifest.environment.git
    lines = [
        f"# {report.headline.title}",
        "",
        f"Run `{manifest.run_id}` · profile {manifest.profile.name} · "
        f"{git.branch or 'no branch'} @ {git.short_sha}{' (dirty)' if git.dirty else ''} · "
        f"full report: {html_name}",
        "",
        *(f"- {point}" for point in report.headline.points),
        "",
        "| target | value | 95% CI | bound | margin | result | clock | n |",
        "|---|---:|---|---|---:|---|---|---:|",
    ]
    lines.extend(
        "| "
        + " | ".join(
            _cell(cell)
            for cell in (
                row.name,
                row.value,
                row.interval,
                row.bound,
                row.margin,
                f"**{row.outcome}**" if not row.passed else row.outcome,
                row.clock,
                str(row.n),
            )
        )
        + " |"
        for row in report.targets
    )
    lines += [
        "",
        "Clock: wall = real time on the benchmark machine; trace = the runtime's virtual "
        "clock. Margin: relative to the bound, + on the passing side.",
    ]
    comparison = report.comparison
    if comparison.state is not ComparisonState.NOT_REQUESTED:
        lines += ["", "## Comparison", "", comparison.message]
        if comparison.comparison is not None:
            lines += [
                "",
                "| workload | metric | ratio | interval | MDE | verdict |",
                "|---|---|---:|---|---:|---|",
                *(
                    f"| {_cell(r.workload)} | {_cell(r.metric)} | {r.ratio} | {r.interval} "
                    f"| {r.mde} | {_cell(r.verdict)} |"
                    for r in comparison.rows
                ),
            ]
    return "\n".join(lines) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, text)


def write_report(options: ReportOptions) -> ReportResult:
    """Render the report of ``options.bundle`` (or the latest one) and its summary."""
    bundle_path = options.bundle or latest_bundle(options.reports_dir)
    bundle = load_bundle(bundle_path)
    history = options.history or history_location(bundle_path.parent / HISTORY_FILE)
    html_path = options.out or bundle_path.parent / REPORT_FILE
    summary_path = options.summary or html_path.with_name(SUMMARY_FILE)
    # Both paths refused before anything is rendered: each is replaced by a rename,
    # which must never replace a symlink, a FIFO, a device or a directory.
    check_output_file(html_path, "--out", create_parents=True)
    check_output_file(summary_path, "--summary", create_parents=True)
    if os.path.abspath(html_path) == os.path.abspath(summary_path):
        raise EnvironmentRefused(
            "the report and the summary would be the same file",
            where=f"--out {html_path} --summary {summary_path}",
            expected="two different paths",
        )
    report = _build(bundle, options, history)
    _write_atomically(html_path, render_html(report))
    _write_atomically(summary_path, render_summary(report, html_path.name))
    return ReportResult(html_path, summary_path, report.headline)
