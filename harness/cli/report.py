"""`harness report`: a bundle as one offline HTML file and a Markdown summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.options import ExitCode, Subparsers, store_location
from harness.errors import HarnessError

__all__ = ["add_parser"]

# harness.report.html.DEFAULT_TREND_RUNS, not imported here: the report pulls in matplotlib.
REPORT_TREND_RUNS = 20


def add_parser(subparsers: Subparsers) -> None:
    report = subparsers.add_parser(
        "report",
        help="render a run bundle as a self-contained HTML report and a Markdown summary",
        description="Render BUNDLE (default: the latest bundle in reports/) as one HTML file\n"
        "that works offline (inline CSS and SVG charts, nothing fetched), and summary.md\n"
        "beside it: the verdict, the targets, legacy vs pooled, distributions, trends\n"
        "from the history, the comparison with --base, the peers, the determinism\n"
        "replay, the hot paths' profiles captured by the run and the environment.",
        epilog="exit status: 0 report written, 2 bad input (missing bundle or base)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument(
        "bundle", metavar="BUNDLE", type=Path, nargs="?", help="a run bundle directory"
    )
    report.add_argument(
        "--reports",
        metavar="DIR",
        type=Path,
        default=Path("reports"),
        help="where to look for the latest bundle; default: %(default)s",
    )
    report.add_argument(
        "--base",
        metavar="BUNDLE_OR_JSON",
        type=Path,
        help="compare with this base: a bundle, or the JSON of `harness compare --json`",
    )
    report.add_argument(
        "--out",
        metavar="FILE",
        type=Path,
        help="the HTML report; default: report.html in the bundle's reports directory",
    )
    report.add_argument(
        "--summary",
        metavar="FILE",
        type=Path,
        help="the Markdown summary; default: summary.md beside the report",
    )
    report.add_argument(
        "--history",
        metavar="FILE|URL",
        type=store_location,
        help="the history store for the trends and the other event loops' figures: a "
        "SQLite file or a postgresql:// URL; default: $AGENTBENCH_DB when set, else "
        "history.sqlite beside the bundle",
    )
    report.add_argument(
        "--trend-runs",
        metavar="N",
        type=int,
        default=REPORT_TREND_RUNS,
        help="how many recent runs of the branch the trends show; default: %(default)s",
    )
    report.set_defaults(handler=_report_command)


def _report_command(args: argparse.Namespace) -> int:
    from harness.report.html import ReportOptions, write_report

    if args.trend_runs < 1:
        raise HarnessError(
            f"--trend-runs {args.trend_runs}", where="--trend-runs", expected="at least 1"
        )
    result = write_report(
        ReportOptions(
            bundle=args.bundle,
            reports_dir=args.reports,
            base=args.base,
            out=args.out,
            summary=args.summary,
            history=args.history,
            trend_runs=args.trend_runs,
        )
    )
    print(f"{result.headline.title}")
    print(f"report: {result.html_path}")
    print(f"summary: {result.summary_path}")
    return ExitCode.OK
