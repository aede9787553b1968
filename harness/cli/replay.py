"""`harness replay` and `harness record`: a trace under many settings; a scenario's trace."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from harness.cli.options import Subparsers
from harness.errors import TraceError
from harness.measure.replay import (
    ReplayVerdict,
    elapsed_since,
    print_report,
    replay_trace,
    settings_matrix,
    trace_where,
)
from reference_impl.mode import Mode
from workloads.trace import TraceFormatError, read_header, trace_id

__all__ = ["add_parser"]


def add_parser(subparsers: Subparsers) -> None:
    """Register ``harness replay`` and ``harness record``."""
    replay = subparsers.add_parser(
        "replay",
        help="replay a trace under many settings and check it is deterministic",
        description=(
            "Replay TRACE under every combination of mode, concurrency and run (each run\n"
            "with its own seeded timing jitter) on the virtual clock, and check the\n"
            "committed sequence, events and evidence digest against the trace's footer.\n"
            "On a divergence, print the first diverging event and the command that\n"
            "reproduces it. Exit 0 all deterministic, 1 a divergence, 2 bad input."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument("trace", type=Path, nargs="+", help="trace file(s) (.jsonl or .jsonl.gz)")
    replay.add_argument(
        "--mode",
        type=_modes,
        default=[Mode.LEGACY, Mode.POOLED],
        help="legacy, pooled or both (comma-separated; default both)",
    )
    replay.add_argument(
        "--concurrency", type=_ints, default=[1, 4, 16], help="comma-separated (default 1,4,16)"
    )
    replay.add_argument("--jitter", type=float, default=0.3, help="timing jitter (default 0.3)")
    replay.add_argument("--runs", type=int, default=2, help="runs per combination (default 2)")
    replay.add_argument("--seed", type=int, default=0, help="seed of the first run (default 0)")
    replay.set_defaults(handler=_replay_command)

    record_parser = subparsers.add_parser(
        "record",
        help="generate a scenario's inputs and write a trace",
        description=(
            "Generate the inputs of SCENARIO from seeded distributions, run them through\n"
            "the reference implementation in the canonical mode (legacy, concurrency 1)\n"
            "and write the trace with its footer. The same scenario and seed give the same\n"
            "file, byte for byte (set SOURCE_DATE_EPOCH for the header's date)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    record_parser.add_argument(
        "--scenario", required=True, help="kernel-small, kernel-large, mcp-tools or prp-nightly"
    )
    record_parser.add_argument("--seed", type=int, required=True)
    record_parser.add_argument("--out", type=Path, required=True, help="trace file to write")
    record_parser.set_defaults(handler=_record_command)


def _ints(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated positive integers"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated positive integers")
    return values


def _modes(text: str) -> list[Mode]:
    try:
        return [Mode.parse(part.strip()) for part in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _replay_command(args: argparse.Namespace) -> int:
    if args.runs < 1:
        raise TraceError(f"--runs {args.runs}", expected="a positive integer")
    if not 0 <= args.jitter < 1:
        raise TraceError(f"--jitter {args.jitter}", expected="a fraction in [0, 1)")
    settings = settings_matrix(args.mode, args.concurrency, args.jitter, args.runs, args.seed)
    all_ok = True
    for path in args.trace:
        progress = _Progress(path.name, len(settings))
        try:
            read_header(path)  # a bad trace says so before anything else is printed
        except TraceFormatError as exc:
            raise TraceError(exc.message, where=trace_where(exc)) from None
        print(f"{path}: {len(settings)} settings", flush=True)
        report = replay_trace(path, settings, progress=progress)
        if sys.stderr.isatty():
            print("\r", end="", file=sys.stderr)
        print_report(report)
        all_ok = all_ok and report.deterministic
    return 0 if all_ok else 1


def _record_command(args: argparse.Namespace) -> int:
    from workloads.scenarios import SCENARIOS, record

    if args.scenario not in SCENARIOS:
        raise TraceError(
            f"unknown scenario {args.scenario!r}", expected="one of " + ", ".join(SCENARIOS)
        )
    footer = record(args.scenario, args.seed, args.out)
    counts = ", ".join(f"{k}={v}" for k, v in footer.counts.items())
    print(f"wrote {args.out} ({counts}; trace {trace_id(args.out)[:12]})")
    return 0


class _Progress:
    """A one-line progress display on a terminal (nothing when stderr is not one)."""

    def __init__(self, name: str, total: int) -> None:
        self.name = name
        self.total = total
        self.done = 0
        self.start = time.perf_counter()

    def __call__(self, _verdict: ReplayVerdict) -> None:
        self.done += 1
        if sys.stderr.isatty():
            print(
                f"\r  {self.name}: {self.done}/{self.total} settings, {elapsed_since(self.start)}",
                end="",
                file=sys.stderr,
            )
