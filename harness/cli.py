"""The ``harness`` command line: the one place where errors become exit statuses.

Exit statuses: 0 everything passed, 1 the code got worse (a target missed, a
regression, a replay that diverged), 2 bad input or an environment that cannot
run it (one line on stderr says what, where and what was expected).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from harness import replay
from harness.errors import HarnessError

__all__ = ["main"]

EXIT_OK = 0
EXIT_WORSE = 1
EXIT_BAD_INPUT = 2

Command = Callable[[argparse.Namespace], int]
# harness.report.DEFAULT_TREND_RUNS, not imported here: the report pulls in matplotlib.
REPORT_TREND_RUNS = 20

DESCRIPTION = """\
Observability-first benchmarking harness for the agent-workflow runtime.

It replays recorded traces against the reference kernel and PRP runner, measures
them with pyperf, checks the targets (p95 latency, hook latency, proof import,
throughput gain, end-to-end PRP time, gates/hour, approval wait) and that replay
is deterministic, and writes a run bundle under reports/.
"""

EPILOG = """\
exit status: 0 pass, 1 target missed / regression / replay diverged,
             2 bad input or an environment that cannot run it
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="harness",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(subparsers)
    replay.add_parser(subparsers)
    _add_history(subparsers)
    _add_compare(subparsers)
    _add_calibrate(subparsers)
    _add_interleave(subparsers)
    _add_report(subparsers)
    _add_nightly(subparsers)
    return parser


def _add_run(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = subparsers.add_parser(
        "run",
        help="run the workloads, check the targets, write a run bundle",
        description="Run the workloads under pyperf, replay the shipped traces for the\n"
        "determinism verdict, evaluate workloads/targets.toml, write a run bundle\n"
        "<out>/<run-id>/ atomically and append it to <out>/history.sqlite.\n"
        "Progress goes to stderr; the target table and the bundle's path to stdout.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--profile",
        choices=("fast", "default", "rigorous"),
        default="default",
        help="how hard pyperf works (processes, values, warmups); default: %(default)s",
    )
    _add_workload_option(run, "run only these workloads (repeatable); default: all")
    run.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=Path("reports"),
        help="where the bundle and history.sqlite go; default: %(default)s",
    )
    run.add_argument(
        "--targets",
        metavar="FILE",
        type=Path,
        default=None,
        help="the targets file; default: workloads/targets.toml",
    )
    run.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        default=None,
        help="OTLP/HTTP endpoint for the run's OpenTelemetry metrics (recorded in the "
        "manifest and handed to the replay step's metrics collection)",
    )
    run.add_argument(
        "--no-replay", action="store_true", help="skip the determinism replay of the traces"
    )
    run.add_argument(
        "--no-history", action="store_true", help="do not append the run to history.sqlite"
    )
    run.set_defaults(handler=_run_command)


def _run_command(args: argparse.Namespace) -> int:
    from harness.bundle import load_bundle
    from harness.run import RunOptions, format_figures, format_table, run
    from harness.targets import DEFAULT_TARGETS_PATH

    result = run(
        RunOptions(
            profile=args.profile,
            workloads=tuple(args.workloads),
            out_dir=args.out,
            targets_path=args.targets or DEFAULT_TARGETS_PATH,
            otlp_endpoint=args.otlp_endpoint,
            replay=not args.no_replay,
            history=not args.no_history,
        )
    )
    print(format_table(result.manifest.verdicts, result.manifest.determinism))
    print()
    print(format_figures(load_bundle(result.bundle_path).samples))
    print(f"bundle: {result.bundle_path}")
    return result.exit_status


def _add_history(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    history = subparsers.add_parser(
        "history",
        help="list the stored runs, or one target's values over time",
        description="Read reports/history.sqlite (written by `harness run`): every run, "
        "oldest first, or with --target the values of one target over time.",
    )
    history.add_argument(
        "--db",
        metavar="FILE",
        type=Path,
        default=Path("reports") / "history.sqlite",
        help="the history store; default: %(default)s",
    )
    history.add_argument("--target", metavar="NAME", help="show this target's values over time")
    history.add_argument("--limit", metavar="N", type=int, help="only the N most recent runs")
    history.set_defaults(handler=_history_command)


def _history_command(args: argparse.Namespace) -> int:
    from harness import history
    from harness.store import HistoryStore

    store = HistoryStore(args.db)
    if args.target:
        frame = history.target_history(store, args.target, limit=args.limit)
    else:
        frame = history.runs(store, limit=args.limit)
    print(history.render(frame))
    return EXIT_OK


def _add_report(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from harness.profiles import HotPath

    report = subparsers.add_parser(
        "report",
        help="render a run bundle as a self-contained HTML report and a Markdown summary",
        description="Render BUNDLE (default: the latest bundle in reports/) as one HTML file\n"
        "that works offline (inline CSS and SVG charts, nothing fetched), and summary.md\n"
        "beside it: the verdict, the targets, legacy vs pooled, distributions, trends\n"
        "from the history, the comparison with --base, the peers, the determinism\n"
        "replay, pyinstrument profiles of the hot paths and the environment.",
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
        metavar="FILE",
        type=Path,
        help="the history store for the trends; default: history.sqlite beside the bundle",
    )
    report.add_argument(
        "--trend-runs",
        metavar="N",
        type=int,
        default=REPORT_TREND_RUNS,
        help="how many recent runs of the branch the trends show; default: %(default)s",
    )
    report.add_argument(
        "--profile-workloads",
        metavar="NAME",
        nargs="+",
        choices=[path.value for path in HotPath],
        default=[path.value for path in HotPath],
        help="the hot paths to profile with pyinstrument (%(choices)s); default: all",
    )
    report.add_argument(
        "--no-profile", action="store_true", help="skip the profiles of the hot paths"
    )
    report.set_defaults(handler=_report_command)


def _report_command(args: argparse.Namespace) -> int:
    from harness.errors import HarnessError
    from harness.profiles import HotPath
    from harness.report import ReportOptions, write_report

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
            profile=() if args.no_profile else tuple(HotPath(n) for n in args.profile_workloads),
        )
    )
    print(f"{result.headline.title}")
    print(f"report: {result.html_path}")
    print(f"summary: {result.summary_path}")
    return EXIT_OK


def _add_nightly(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    from harness.nightly import nightly

    return nightly(main, profile=args.profile, reports=args.reports)


def _add_interleave(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from harness.interleave import DEFAULT_OUT, DEFAULT_ROUNDS

    interleave = subparsers.add_parser(
        "interleave",
        help="measure two git refs alternately (balanced ABBA order) into two bundles",
        description="Check out BASE_REF and CANDIDATE_REF as git worktrees, install each in\n"
        "its own virtualenv, then for each round and workload run the two sides one\n"
        "after the other in a balanced order: ABBA (round k even: base first, odd:\n"
        "candidate first) or a seeded random permutation with as many of each. One\n"
        "pyperf process per side, round and workload. Writes <out>/<run-id>-base and\n"
        "<out>/<run-id>-candidate atomically, the order used recorded in both manifests\n"
        "(round ids r<k>:<side>:... pair the sides), removes the worktrees whatever\n"
        "happens, and prints the two bundle paths. `harness compare` judges them;\n"
        "`nox -s compare -- BASE_REF CANDIDATE_REF` does both.",
        epilog="exit status: 0 both bundles written, 2 bad input (a ref that names no\n"
        "commit, an unknown workload, a malformed VAR=VALUE) or an environment that\n"
        "cannot run it (a side that does not install, a workload that fails)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for name, metavar in (("base_ref", "BASE_REF"), ("candidate_ref", "CANDIDATE_REF")):
        interleave.add_argument(name, metavar=metavar, help="a branch, tag or commit id")
    interleave.add_argument(
        "--rounds",
        metavar="N",
        type=int,
        default=DEFAULT_ROUNDS,
        help="rounds (each runs every workload once per side); default: %(default)s",
    )
    _add_workload_option(
        interleave,
        "run only these workloads (repeatable); default: every wall-clock workload "
        "(trace-clock ones are deterministic)",
    )
    interleave.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=DEFAULT_OUT,
        help="where the two bundles go; default: %(default)s",
    )
    interleave.add_argument(
        "--order",
        choices=("abba", "random"),
        default="abba",
        help="ABBA across rounds, or a seeded random balanced order; default: %(default)s",
    )
    interleave.add_argument(
        "--seed", metavar="S", type=int, help="the random order's seed (default: drawn, recorded)"
    )
    interleave.add_argument(
        "--base-env",
        metavar="VAR=VALUE",
        action="append",
        default=[],
        help="set a variable for the base side only (repeatable)",
    )
    interleave.add_argument(
        "--candidate-env",
        metavar="VAR=VALUE",
        action="append",
        default=[],
        help="set a variable for the candidate side only (repeatable), e.g. "
        "AGENTBENCH_INJECT_SLOWDOWN=0.1 to plant a 10 %% slowdown",
    )
    interleave.add_argument(
        "--repo",
        metavar="DIR",
        type=Path,
        default=Path(),
        help="the git repository the refs belong to; default: the current directory",
    )
    interleave.set_defaults(handler=_interleave_command)


def _interleave_command(args: argparse.Namespace) -> int:
    from harness.interleave import InterleaveOptions, OrderMethod, interleave, parse_assignments

    result = interleave(
        InterleaveOptions(
            base_ref=args.base_ref,
            candidate_ref=args.candidate_ref,
            rounds=args.rounds,
            workloads=tuple(args.workloads),
            out_dir=args.out,
            method=OrderMethod.RANDOM if args.order == "random" else OrderMethod.ABBA,
            seed=args.seed,
            base_env=parse_assignments(args.base_env, "--base-env"),
            candidate_env=parse_assignments(args.candidate_env, "--candidate-env"),
            repo=args.repo,
        )
    )
    print(f"base: {result.base_bundle}")
    print(f"candidate: {result.candidate_bundle}")
    return EXIT_OK


def _compare_epilog() -> str:
    from harness.compare import verdict_table

    return "verdicts and exit codes:\n\n" + verdict_table() + "\n"


def _add_compare(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    compare.add_argument(
        "--db",
        metavar="FILE",
        type=Path,
        default=Path("reports") / "history.sqlite",
        help="the history store (run ids, --last-good, calibrations); default: %(default)s",
    )
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


def _fraction(value: float, flag: str) -> float:
    if not 0.0 < value < 1.0:
        raise HarnessError(f"{flag} {value:g}", where=flag, expected="a fraction in (0, 1)")
    return value


def _compare_command(args: argparse.Namespace) -> int:
    from harness import compare
    from harness.store import HistoryStore
    from harness.targets import DEFAULT_TARGETS_PATH, load_thresholds

    threshold = _fraction(args.threshold, "--threshold")
    fdr_q = _fraction(args.fdr, "--fdr")
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

        args.json.write_text(json.dumps(result.as_json(), indent=2) + "\n", encoding="utf-8")
    if args.markdown:
        args.markdown.write_text(compare.format_markdown(result), encoding="utf-8")
    print(compare.format_table(result))
    return result.exit_status(fail_on_inconclusive=args.fail_on_inconclusive)


def _add_calibrate(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from harness.calibrate import DEFAULT_PROFILE, DEFAULT_ROUNDS, PROFILES

    calibrate = subparsers.add_parser(
        "calibrate",
        help="measure this machine's noise: an A/A run of the checkout against itself",
        description="Run every workload (or --workload ones) twice per round, back to back,\n"
        "the same code on both sides, in a balanced order (AB, BA, AB, ...), one\n"
        "process each; compare the sides as `harness compare` does and print, per\n"
        "workload, metric and statistic, the round-to-round noise, the minimum\n"
        "detectable effect for that many rounds and the rounds needed to detect the\n"
        "threshold. Stored in the history store with the machine fingerprint:\n"
        "`harness compare` then uses it for bundles of this machine and profile\n"
        "when it has at least as many rounds (`nox -s calibrate` calibrates in an\n"
        "environment like the sides of `nox -s compare`, so their fingerprints match).",
        epilog="exit status: 0 calibrated (and stored), 2 bad input or a workload that\n"
        "fails (the calibration is then not stored)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    calibrate.add_argument(
        "--rounds",
        metavar="N",
        type=int,
        default=DEFAULT_ROUNDS,
        help="rounds (each runs every workload once per side); default: %(default)s",
    )
    calibrate.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        default=DEFAULT_PROFILE,
        help="pyperf values and warmups per process (one process a side); default: "
        "%(default)s, an interleaved comparison's own round (1 value, 1 warmup): "
        "`harness compare` uses a calibration only of its bundles' profile",
    )
    _add_workload_option(calibrate, "calibrate only these workloads (repeatable); default: all")
    calibrate.add_argument(
        "--db",
        metavar="FILE",
        type=Path,
        default=Path("reports") / "history.sqlite",
        help="the history store to keep the calibration in; default: %(default)s",
    )
    calibrate.add_argument(
        "--threshold",
        metavar="FRACTION",
        type=float,
        default=0.05,
        help="the change whose needed rounds are shown; default: %(default)s",
    )
    calibrate.add_argument(
        "--fdr",
        metavar="Q",
        type=float,
        default=0.05,
        help="false-discovery rate the MDE is computed at (per test: Q/tests); "
        "default: %(default)s",
    )
    calibrate.add_argument(
        "--no-store", action="store_true", help="print the calibration, do not store it"
    )
    calibrate.set_defaults(handler=_calibrate_command)


def _calibrate_command(args: argparse.Namespace) -> int:
    from harness.calibrate import CalibrateOptions, calibrate, format_calibration
    from harness.targets import load_thresholds

    result = calibrate(
        CalibrateOptions(
            rounds=args.rounds,
            profile=args.profile,
            workloads=tuple(args.workloads),
            db=args.db,
            fdr_q=_fraction(args.fdr, "--fdr"),
            threshold=_fraction(args.threshold, "--threshold"),
            thresholds=load_thresholds(),
            store=not args.no_store,
        )
    )
    print(format_calibration(result))
    return EXIT_OK


def _add_workload_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--workload NAME ...`` (repeatable, extending), as run, calibrate and interleave take it."""
    parser.add_argument(
        "--workload",
        dest="workloads",
        metavar="NAME",
        action="extend",
        nargs="+",
        default=[],
        help=help_text,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command | None = getattr(args, "handler", None)
    if command is None:
        parser.print_help()
        return EXIT_OK
    try:
        return command(args)
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def entry() -> None:
    """The console script: :func:`main`, stopped cleanly by Ctrl-C or SIGTERM.

    A cancelled CI job gets SIGTERM, not Ctrl-C: both raise KeyboardInterrupt, so
    what a command holds is released as on Ctrl-C (an interleaved comparison
    removes its worktrees and scratch directory), then one line and status 130.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        status = main()
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        status = EXIT_INTERRUPTED
    sys.exit(status)


if __name__ == "__main__":
    entry()
