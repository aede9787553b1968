"""The ``harness`` command line: the one place where errors become exit statuses.

Exit statuses: 0 everything passed, 1 the code got worse (a target missed, a
regression, a replay that diverged), 2 bad input or an environment that cannot
run it (one line on stderr says what, where and what was expected).
"""

from __future__ import annotations

import argparse
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
    run.add_argument(
        "--workload",
        dest="workloads",
        metavar="NAME",
        action="extend",
        nargs="+",
        default=[],
        help="run only these workloads (repeatable); default: all",
    )
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
    from harness.run import RunOptions, format_table, run
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


if __name__ == "__main__":
    sys.exit(main())
