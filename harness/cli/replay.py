"""`harness replay` and `harness record`: a trace under many settings; a scenario's trace."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from harness.bundle.paths import check_output_file
from harness.cli.options import Subparsers
from harness.errors import TraceError
from harness.measure.replay import (
    DEFAULT_HASH_SEEDS,
    HASH_SEED_ENV,
    MAX_HASH_SEED,
    ReplayVerdict,
    SecondRecording,
    elapsed_since,
    hash_seed_divergence,
    own_hash_seed,
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
            "The settings are dealt in turn to processes of different hash seeds\n"
            "(PYTHONHASHSEED), so an order that leans on Python's salted hash() shows.\n"
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
    replay.add_argument(
        "--hash-seeds",
        type=_hash_seeds,
        default=None,
        metavar="N,M",
        help="the PYTHONHASHSEED of each process the settings are dealt to, comma-separated "
        "(default: 1,2 in child processes; when PYTHONHASHSEED is set, that seed in this "
        "process and the next one in a child)",
    )
    replay.set_defaults(handler=_replay_command)

    record_parser = subparsers.add_parser(
        "record",
        help="generate a scenario's inputs and write a trace",
        description=(
            "Generate the inputs of SCENARIO from seeded distributions, run them through\n"
            "the reference implementation in the canonical mode (legacy, concurrency 1)\n"
            "and write the trace with its footer. The same scenario and seed give the same\n"
            "file, byte for byte (set SOURCE_DATE_EPOCH for the header's date): a second\n"
            "recording in a child process under another hash seed (PYTHONHASHSEED) must\n"
            "give the same bytes, else nothing is written and the exit status is 1.\n"
            "OUT is replaced atomically; it must be a regular file or not exist yet."
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


def _hash_seeds(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = [-1]
    if not values or min(values) < 0 or max(values) > MAX_HASH_SEED:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated integers in [0, {MAX_HASH_SEED}]"
        )
    return values


def _default_hash_seeds() -> list[int]:
    """1,2; or, when PYTHONHASHSEED fixed this process's seed, it and the next one.

    So the reproduce line ``PYTHONHASHSEED=N harness replay ... --runs 1`` runs its
    one setting in this process, under N.
    """
    own = own_hash_seed()
    if own is None:
        return list(DEFAULT_HASH_SEEDS)
    return [own, (own + 1) % (MAX_HASH_SEED + 1)]


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
    hash_seeds = args.hash_seeds or _default_hash_seeds()
    all_ok = True
    for path in args.trace:
        progress = _Progress(path.name, len(settings))
        try:
            read_header(path)  # a bad trace says so before anything else is printed
        except TraceFormatError as exc:
            raise TraceError(exc.message, where=trace_where(exc)) from None
        seeds = ",".join(map(str, hash_seeds))
        print(f"{path}: {len(settings)} settings, {HASH_SEED_ENV}={seeds}", flush=True)
        report = replay_trace(path, settings, hash_seeds=hash_seeds, progress=progress)
        if sys.stderr.isatty():
            print("\r", end="", file=sys.stderr)
        print_report(report)
        all_ok = all_ok and report.deterministic
    return 0 if all_ok else 1


def _record_command(args: argparse.Namespace) -> int:
    from workloads.scenarios import SCENARIOS, render, write_trace

    if args.scenario not in SCENARIOS:
        raise TraceError(
            f"unknown scenario {args.scenario!r}", expected="one of " + ", ".join(SCENARIOS)
        )
    check_output_file(args.out, "--out", create_parents=True)
    own = own_hash_seed()
    other = DEFAULT_HASH_SEEDS[0] if own is None else (own + 1) % (MAX_HASH_SEED + 1)
    with SecondRecording(args.scenario, args.seed, other) as second:
        data, footer = render(args.scenario, args.seed)
        theirs = second.data()
    if theirs != data:
        _print_unreproducible(args, data, theirs, own, other)
        return 1
    write_trace(data, args.out)
    counts = ", ".join(f"{k}={v}" for k, v in footer.counts.items())
    print(f"wrote {args.out} ({counts}; trace {trace_id(args.out)[:12]})")
    return 0


_SHOWN_CHARS = 300


def _print_unreproducible(
    args: argparse.Namespace, ours: bytes, theirs: bytes, own: int | None, other: int
) -> None:
    """Say where two recordings of one scenario and seed differ: the line, then the event."""
    here = "this process (random hash seed)" if own is None else f"{HASH_SEED_ENV}={own}"
    there = f"{HASH_SEED_ENV}={other}"
    ours_lines, theirs_lines = ours.splitlines(), theirs.splitlines()
    number = next(
        (i for i, (a, b) in enumerate(zip(ours_lines, theirs_lines, strict=False)) if a != b),
        min(len(ours_lines), len(theirs_lines)),
    )
    mine = ours_lines[number] if number < len(ours_lines) else b""
    print(
        f"NOT REPRODUCIBLE: {args.scenario} seed {args.seed} recorded under {here} and under "
        f"{there} differs at line {number + 1} ({_record_type(mine)})"
    )
    width = max(len(here), len(there)) + 1
    for label, lines in ((here, ours_lines), (there, theirs_lines)):
        shown = lines[number].decode("utf-8", "replace") if number < len(lines) else "(no line)"
        print(f"  {label + ':':{width}} {shown[:_SHOWN_CHARS]}")
    if _record_type(mine) == "footer":
        # Same inputs, another outcome: name the event, as `harness replay` would.
        with tempfile.TemporaryDirectory(prefix="agentbench-record-") as scratch:
            trace = Path(scratch) / "ours.jsonl"
            trace.write_bytes(ours)
            divergence = hash_seed_divergence(trace, (own, other))
        if divergence is not None:
            print("  " + divergence.describe().replace("\n", "\n  "))
    print(
        f"  nothing was written to {args.out}: a trace must not depend on Python's hash seed "
        "(an order that leans on hash(), or on the iteration order of a set of strings?)"
    )


def _record_type(line: bytes) -> str:
    try:
        record = json.loads(line)
    except ValueError:
        return "not JSON"
    return str(record.get("type", "?")) if isinstance(record, dict) else "not an object"


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
