"""`harness compare`: is the candidate faster, slower or the same, and how sure is that."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.bundle.paths import check_output_file, write_text_atomically
from harness.cli.options import Subparsers, add_db_option, fraction
from harness.errors import HarnessError

__all__ = ["add_parser"]


def _compare_epilog() -> str:
    from harness.judge.compare import verdict_table

    return "verdicts and exit codes:\n\n" + verdict_table() + "\n"


def add_parser(subparsers: Subparsers) -> None:
    compare = subparsers.add_parser(
        "compare",
        help="is CANDIDATE faster or slower than BASE, and how sure is that?",
        description="Compare two run bundles, round by round: per workload, its pyperf\n"
        "values and each metric it records (p50, p95 and p99 of per-operation\n"
        "latencies), the ratio candidate/base with a bootstrap interval, raw and\n"
        "Benjamini-Hochberg adjusted p-values, the noise, the minimum detectable\n"
        "effect (MDE) and the rounds needed to detect the threshold, and a verdict.\n"
        "Rounds of an interleaved pair (`harness interleave`) are compared paired\n"
        "(Wilcoxon signed-rank), others unpaired (Mann-Whitney U); trace-clock\n"
        "metrics exactly. BASE and CANDIDATE are bundle directories or run ids of\n"
        "the history store. Bundles of different machine fingerprints are refused.\n"
        "The first line printed is the verdict.",
        epilog=_compare_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument(
        "sides",
        metavar="BUNDLE",
        nargs="+",
        help="BASE CANDIDATE, or only CANDIDATE with --last-good",
    )
    compare.add_argument(
        "--last-good",
        action="store_true",
        help="BASE = the last stored run whose targets all passed, replay deterministic",
    )
    add_db_option(compare, "the history store (run ids, --last-good, calibrations)")
    compare.add_argument(
        "--threshold",
        metavar="FRACTION",
        type=float,
        default=0.05,
        help="a slowdown beyond this is a regression (per-workload overrides: [thresholds] "
        "in the targets file); default: %(default)s",
    )
    compare.add_argument(
        "--targets",
        metavar="FILE",
        type=Path,
        default=None,
        help="the targets file whose [thresholds] table applies; default: workloads/targets.toml",
    )
    compare.add_argument(
        "--fdr",
        metavar="Q",
        type=float,
        default=0.05,
        help="Benjamini-Hochberg false-discovery rate over all tests; default: %(default)s",
    )
    compare.add_argument(
        "--seed", metavar="N", type=int, default=0, help="bootstrap seed; default: %(default)s"
    )
    compare.add_argument("--markdown", metavar="FILE", type=Path, help="write Markdown here")
    compare.add_argument("--json", metavar="FILE", type=Path, help="write the JSON here")
    compare.add_argument(
        "--allow-different-environments",
        action="store_true",
        help="compare bundles of different fingerprints (with a warning) instead of refusing",
    )
    compare.add_argument(
        "--fail-on-inconclusive", action="store_true", help="exit 1 on an inconclusive verdict"
    )
    compare.add_argument(
        "--no-calibration",
        action="store_true",
        help="ignore the stored calibration of this machine (use this comparison's noise)",
    )
    compare.set_defaults(handler=_compare_command)


def _compare_command(args: argparse.Namespace) -> int:
    from harness.judge import compare, readout
    from harness.judge.targets import (
        DEFAULT_TARGETS_PATH,
        load_thresholds,
    )
    from harness.store.db import HistoryStore

    threshold = fraction(args.threshold, "--threshold")
    fdr_q = fraction(args.fdr, "--fdr")
    # Refused before the comparison runs, not after it: see check_output_file.
    if args.json:
        check_output_file(args.json, "--json")
    if args.markdown:
        check_output_file(args.markdown, "--markdown")
    expected = 1 if args.last_good else 2
    if len(args.sides) != expected:
        raise HarnessError(
            f"{len(args.sides)} bundle(s) given",
            where="BUNDLE",
            expected="BASE CANDIDATE" if expected == 2 else "only CANDIDATE with --last-good",
        )
    candidate = compare.resolve_bundle(args.sides[-1], args.db)
    digest = candidate.manifest.environment.fingerprint_digest
    if args.last_good:
        base = compare.last_good_bundle(
            args.db, exclude=candidate.manifest.run_id, fingerprint=digest
        )
    else:
        base = compare.resolve_bundle(args.sides[0], args.db)
    calibration = None
    if not args.no_calibration:
        calibration = compare.Calibration.of(HistoryStore(args.db).latest_calibration(digest))
    options = compare.CompareOptions(
        fdr_q=fdr_q,
        threshold=threshold,
        thresholds=load_thresholds(args.targets or DEFAULT_TARGETS_PATH),
        seed=args.seed,
        allow_different_environments=args.allow_different_environments,
        calibration=calibration,
    )
    result = compare.compare_bundles(base, candidate, options=options)
    if args.json:
        import json

        write_text_atomically(args.json, json.dumps(result.as_json(), indent=2) + "\n")
    if args.markdown:
        write_text_atomically(args.markdown, readout.format_markdown(result))
    print(readout.format_table(result))
    return result.exit_status(fail_on_inconclusive=args.fail_on_inconclusive)
