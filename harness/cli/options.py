"""What several commands share: the exit-status epilog and the options declared once."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import TypeAlias

from harness.errors import ExitCode, HarnessError
from harness.store.location import DB_VARIABLE, Location, parse_location, redacted

__all__ = [
    "DEFAULT_DB",
    "EPILOG",
    "ExitCode",
    "Subparsers",
    "add_db_option",
    "add_workload_option",
    "duration",
    "fraction",
    "store_location",
]

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

DEFAULT_DB = Path("reports") / "history.sqlite"

EPILOG = """\
exit status: 0 pass, 1 target missed / regression / replay diverged,
             2 bad input or an environment that cannot run it, 130 interrupted
"""


def add_workload_option(parser: argparse.ArgumentParser, help_text: str) -> None:
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


def store_location(text: str) -> Location:
    """``--db``'s value: a URL kept whole (a Path would collapse its ``//``), or a file."""
    try:
        return parse_location(text)
    except HarnessError as exc:
        message = f"{exc.what} in {exc.where}; expected {exc.expected}"
        raise argparse.ArgumentTypeError(message) from None


def add_db_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--db FILE|URL``: the history store: ``$AGENTBENCH_DB`` when set, else
    ``reports/history.sqlite``. Never prints a password (``--help`` neither)."""
    from_environment = os.environ.get(DB_VARIABLE, "")
    # argparse formats help with %: a percent-encoded URL must not be taken for a format.
    now = f" (now {redacted(from_environment)})".replace("%", "%%") if from_environment else ""
    parser.add_argument(
        "--db",
        metavar="FILE|URL",
        type=store_location,
        # A string default goes through `type` as a given value would: a bad
        # $AGENTBENCH_DB is the same one-line usage error as a bad --db.
        default=from_environment or DEFAULT_DB,
        help=f"{help_text}: a SQLite file or a postgresql:// URL (psycopg: pip install "
        f"'agentbench[postgres]'); default: ${DB_VARIABLE}{now} when set, else {DEFAULT_DB}",
    )


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str, flag: str) -> float:
    """Seconds of ``90``, ``90s``, ``20m`` or ``1.5h``; otherwise the one-line error."""
    number, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "s")
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        seconds = math.nan
    if not seconds > 0.0 or math.isinf(seconds):
        raise HarnessError(
            f"{flag} {text!r}", where=flag, expected="a positive duration: 90, 90s, 20m or 1.5h"
        )
    return seconds


def fraction(value: float, flag: str) -> float:
    """``value`` when it is in (0, 1); otherwise the one-line error naming ``flag``."""
    if not 0.0 < value < 1.0:
        raise HarnessError(f"{flag} {value:g}", where=flag, expected="a fraction in (0, 1)")
    return value
