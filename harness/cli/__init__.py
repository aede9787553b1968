"""The ``harness`` command line: one module per command, and the one place where
errors become exit statuses.

Exit statuses (:class:`~harness.errors.ExitCode`): 0 everything passed, 1 the code
got worse (a target missed, a regression, a replay that diverged), 2 bad input or an
environment that cannot run it (one line on stderr says what, where and what was
expected), 130 interrupted. Every deliberate error of the three packages
(:class:`~harness.errors.HarnessError`, :class:`~workloads.errors.WorkloadsError`,
:class:`~reference_impl.errors.ReferenceImplError`) and every ``OSError`` (a path
the user gave that cannot be read or written) ends here as that one line and 2; a
closed stdout (``harness history | head -1``) ends quietly, as Unix tools do.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence

from harness.cli import calibrate, compare, history, interleave, nightly, replay, report, run
from harness.cli.options import EPILOG
from harness.errors import ExitCode, HarnessError
from reference_impl.errors import ReferenceImplError
from workloads.errors import WorkloadsError
from workloads.scenarios import source_date_epoch

__all__ = ["build_parser", "entry", "main"]

Command = Callable[[argparse.Namespace], int]

DESCRIPTION = """\
Observability-first benchmarking harness for the agent-workflow runtime.

It replays recorded traces against the reference kernel and PRP runner, measures
them with pyperf, checks the targets (p95 latency, hook latency, proof import,
throughput gain, end-to-end PRP time, gates/hour, approval wait) and that replay
is deterministic, and writes a run bundle under reports/.
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
    for command in (run, replay, history, compare, calibrate, interleave, report, nightly):
        command.add_parser(subparsers)
    return parser


def error_line(exc: BaseException) -> str:
    """The one line an error becomes: ``harness: error: ...``."""
    if isinstance(exc, OSError) and not isinstance(exc, HarnessError):
        what = exc.strerror or exc.__class__.__name__
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return f"harness: error: {where}{what}"
    return f"harness: error: {exc}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (the console script exits with it)."""
    try:
        # Before anything imports scipy (building compare's help does): numpy.f2py,
        # which it imports, parses this variable at import time, with a traceback.
        source_date_epoch()
    except WorkloadsError as exc:
        print(error_line(exc), file=sys.stderr)
        return ExitCode.BAD_INPUT
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command | None = getattr(args, "handler", None)
    if command is None:
        parser.print_help()
        return ExitCode.OK
    try:
        return command(args)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python's own flush
        # at exit from failing on the same pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    except (HarnessError, WorkloadsError, ReferenceImplError, OSError) as exc:
        print(error_line(exc), file=sys.stderr)
        return ExitCode.BAD_INPUT


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
        status = ExitCode.INTERRUPTED
    sys.exit(status)


if __name__ == "__main__":
    entry()
