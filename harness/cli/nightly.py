"""The nightly pipeline: rigorous run (with replay), compare with the last good night, report.

Each step runs whatever the previous one concluded, so a night that missed a
target still gets its comparison and its report; the exit status is the worst of
the steps (2 over 1 over 0). The first night, with no good night stored yet, has
no comparison: the pipeline says so and goes on.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from harness.cli.options import EPILOG, Subparsers
from harness.errors import BundleError
from harness.judge.compare import last_good_bundle

__all__ = ["add_parser", "latest_bundle", "nightly"]

Main = Callable[[Sequence[str]], int]


def latest_bundle(reports: Path) -> Path | None:
    """The newest bundle directory in ``reports`` (run ids sort by start time)."""
    bundles = sorted(p.parent for p in reports.glob("2*/manifest.json"))
    return bundles[-1] if bundles else None


def nightly(
    main: Main,
    *,
    profile: str = "rigorous",
    reports: Path = Path("reports"),
    run_args: Sequence[str] = (),
    log: TextIO | None = None,
) -> int:
    """Run the three steps through the CLI's ``main``; the worst exit status."""
    log = sys.stderr if log is None else log
    statuses = [main(["run", "--profile", profile, "--out", str(reports), *run_args])]
    candidate = latest_bundle(reports)
    if candidate is None:
        print("nightly: no bundle was written; nothing to compare or report", file=log)
        return max(statuses)
    history = reports / "history.sqlite"
    comparison: Path | None = None
    try:
        last_good_bundle(history, exclude=candidate.name)
    except BundleError as exc:
        print(f"nightly: no comparison tonight: {exc}", file=log)
    else:
        comparison = reports / "compare.json"
        statuses.append(
            main(
                [
                    *("compare", "--last-good", str(candidate), "--db", str(history)),
                    *("--markdown", str(reports / "compare.md"), "--json", str(comparison)),
                ]
            )
        )
    base = ["--base", str(comparison)] if comparison is not None and comparison.exists() else []
    statuses.append(main(["report", str(candidate), *base]))
    return max(statuses)


def add_parser(subparsers: Subparsers) -> None:
    nightly = subparsers.add_parser(
        "nightly",
        help="rigorous run + replay, compare with the last good night, report",
        description="The nightly pipeline: `harness run --profile rigorous` (with its\n"
        "determinism replay), then `harness compare --last-good` against the last\n"
        "stored run that met every target (skipped, saying so, on the first night),\n"
        "then `harness report` with the comparison. Every step runs; the exit status\n"
        "is the worst of them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    nightly.add_argument(
        "--profile",
        choices=("fast", "default", "rigorous"),
        default="rigorous",
        help="the run's profile; default: %(default)s",
    )
    nightly.add_argument(
        "--reports",
        type=Path,
        default=Path("reports"),
        metavar="DIR",
        help="bundles, history.sqlite, compare.md/json and the report; default: %(default)s",
    )
    nightly.set_defaults(handler=_nightly_command)


def _nightly_command(args: argparse.Namespace) -> int:
    from harness.cli import main

    return nightly(main, profile=args.profile, reports=args.reports)
