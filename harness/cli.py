"""The ``harness`` command line: the one place where errors become exit statuses.

Exit statuses: 0 everything passed, 1 the code got worse (a target missed, a
regression, a replay that diverged), 2 bad input or an environment that cannot
run it (one line on stderr says what, where and what was expected).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

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
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


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
