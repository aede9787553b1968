"""The instruction clock: what one operation costs in CPU instructions, exactly.

For each operation of :data:`INSTRUCTION_OPS`, :func:`measure` runs its entry
point (:mod:`workloads._instr_ops`) in two processes, one doing ``n`` units
and one doing none, each under valgrind's cachegrind
(``--tool=cachegrind --cache-sim=no``), with the hash seed fixed
(``PYTHONHASHSEED=0``) and address-space randomisation off
(``setarch <arch> -R``), on this very interpreter (``sys.executable``). The
figure is the difference of the two processes' instruction counts (``Ir``, the
``summary:`` line of cachegrind's output file) divided by ``n``: start-up,
imports and set-up, paid by both, cancel out.

Guarantees:

* **Exact.** On one machine, for one interpreter and one checkout, two
  measurements of an operation give the same per-op count to the last digit:
  nothing the entry points do depends on timing (see :mod:`workloads._instr_ops`),
  the processes inherit only a fixed few variables (``PATH``, ``HOME``, locale,
  the planted slowdown), and the two sizes run at the same moment, so that they
  also see the same file system (the import system reads directory timestamps,
  whose values move a count by a few hundred instructions). One exception:
  ``telemetry_record``, whose SDK imports psutil, which parses the machine's CPU
  times at import (a few instructions more or less by their digits: about 0.01
  instruction per record).
* **Exact is not layout-proof.** A change anywhere in the code a process runs,
  even outside the measured path, moves where objects are allocated, and so
  CPython's per-type attribute cache hits and misses: a per-op count can move by
  a few instructions (seen: pool_item_c4 from 12,544.0 to 12,534.4, -0.08 %, when
  only the entry-point module changed) for a change that is not its own.
  A comparison of two commits should treat such a step as the floor of this clock.
* **Unavailable is one line.** Without ``valgrind`` or ``setarch`` on ``PATH``,
  :class:`InstructionsUnavailable` says how to install it, before anything runs.
* **Bounded.** Every process has a timeout (killed and reaped when it expires:
  :class:`InstructionsError`); the temporary output files are always removed.

Cycles are not estimated: a cache simulation (``--cache-sim=yes``) roughly
doubles the time of a run, and its cycle estimate is a model (KCachegrind's
``Ir + 10 x L1 misses + 100 x LL misses``), not a measurement; the instruction
count is the figure that is both exact and cheap.

The planted CPU slowdown ``AGENTBENCH_INJECT_CPU`` (a fraction, see
:mod:`reference_impl.pool`) passes to both processes through the environment,
so that a known regression of the pool's per-item count can be planted.

Why one module: it is one measurement method and the table of what it measures. The op
table, the two-process cachegrind run and the developer's command (``python -m
workloads.instructions``) share private helpers (``_OPS_BY_NAME``, ``_spec``, ``_environment``,
``_entry``), and the notes above on what "exact" means are a good part of the length.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from workloads.errors import WorkloadsError

__all__ = [
    "INSTRUCTION_OPS",
    "InstructionFigure",
    "InstructionOp",
    "InstructionsError",
    "InstructionsUnavailable",
    "measure",
    "measure_all",
    "require_tools",
]

UNIT = "instructions"
# The package root that holds workloads/ and reference_impl/: the entry points'
# import path, and the subprocesses' working directory (stable: nothing is
# written there while they run).
_ROOT = Path(__file__).resolve().parent.parent
# Seconds one cachegrind process may take (one takes 4-7 s of CPU here).
DEFAULT_TIMEOUT_S = 120.0
# The sizes' decimal width on the command line: both processes get argv of the
# same length, so that nothing else differs between them.
_SIZE_WIDTH = 9


class InstructionsUnavailable(WorkloadsError):
    """The instruction clock cannot run here (a tool is missing); the message says how to fix it."""


class InstructionsError(WorkloadsError):
    """An instruction measurement failed: its process failed, timed out, or wrote no count."""


@dataclass(frozen=True, slots=True)
class InstructionOp:
    """One operation measured on the instruction clock.

    ``name`` is its entry point in :mod:`workloads._instr_ops`; ``metric`` the
    name of its figure; ``n`` the units the measured process runs (chosen so that
    it takes at most a few seconds under cachegrind).
    """

    name: str
    metric: str
    n: int
    description: str
    unit: str = UNIT


INSTRUCTION_OPS: tuple[InstructionOp, ...] = (
    InstructionOp(
        "pool_item_c1",
        "instructions_pool_item_c1",
        2000,
        "ordered pool, concurrency 1, per no-op item",
    ),
    InstructionOp(
        "pool_item_c4",
        "instructions_pool_item_c4",
        2000,
        "ordered pool, concurrency 4, per no-op item",
    ),
    InstructionOp(
        "pool_item_c16",
        "instructions_pool_item_c16",
        2000,
        "ordered pool, concurrency 16, per no-op item",
    ),
    InstructionOp(
        "pool_item_c64",
        "instructions_pool_item_c64",
        2000,
        "ordered pool, concurrency 64, per no-op item",
    ),
    InstructionOp(
        "sequential_item",
        "instructions_sequential_item",
        2000,
        "legacy sequential loop (await, then commit), per no-op item",
    ),
    InstructionOp(
        "proof_import_legacy",
        "instructions_proof_import_legacy",
        3,
        "proof module re-imported (legacy), per invocation",
    ),
    InstructionOp(
        "proof_import_cached",
        "instructions_proof_import_cached",
        2000,
        "proof module from the lazy importer (pooled), per invocation",
    ),
    InstructionOp(
        "hook_call_legacy",
        "instructions_hook_call_legacy",
        6,
        "MCP tool call, hooks rebuilt and judged one at a time (legacy), per call",
    ),
    InstructionOp(
        "hook_call_pooled",
        "instructions_hook_call_pooled",
        48,
        "MCP tool call, cached hooks, independent ones pooled, per call",
    ),
    InstructionOp(
        "scheduler_task_pooled",
        "instructions_scheduler_task_pooled",
        64,
        "scheduler's own work per task (pooled, concurrency 8), virtual clock",
    ),
    InstructionOp(
        "graph_run_pooled",
        "instructions_graph_run_pooled",
        50,
        "strategy, build, evaluation graph (1 unit, 1 sample), pooled, per run",
    ),
    InstructionOp(
        "telemetry_record",
        "instructions_telemetry_record",
        1000,
        "one histogram value through Telemetry.record_samples (memory exporter)",
    ),
)

_OPS_BY_NAME: Mapping[str, InstructionOp] = {op.name: op for op in INSTRUCTION_OPS}


@dataclass(frozen=True, slots=True)
class InstructionFigure:
    """What one operation costs: ``per_op`` instructions, from two processes' totals.

    ``per_op = (instructions_n - instructions_0) / n``; the totals are kept so
    that a reader can check the arithmetic and see what the start-up weighs.
    """

    op: str
    metric: str
    n: int
    instructions_n: int
    instructions_0: int
    per_op: float
    wall_s: float
    unit: str = UNIT


# Counts a process's instructions: (op, size, extra environment) -> total Ir.
CountFn = Callable[[str, int, Mapping[str, str]], int]


def require_tools(path: str | None = None) -> None:
    """Raise :class:`InstructionsUnavailable` unless valgrind and setarch are on ``path``.

    ``path`` defaults to ``$PATH``. The message is one line that says how to install
    what is missing.
    """
    search = os.environ.get("PATH", os.defpath) if path is None else path
    if shutil.which("valgrind", path=search) is None:
        raise InstructionsUnavailable(
            "instruction clock unavailable: valgrind is not on PATH "
            "(install it: apt-get install valgrind)"
        )
    if shutil.which("setarch", path=search) is None:
        raise InstructionsUnavailable(
            "instruction clock unavailable: setarch is not on PATH "
            "(install it: apt-get install util-linux)"
        )


# What the measured processes inherit from the caller's environment: nothing else, so
# that a count does not depend on who asked (pytest, nox and a shell set different
# variables, and OTEL_* ones would change what the telemetry op does).
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "AGENTBENCH_INJECT_CPU")


def _environment(extra: Mapping[str, str]) -> dict[str, str]:
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env.update((name, value) for name, value in os.environ.items() if name.startswith("VALGRIND"))
    env.update(extra)
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the warm-up run wrote them: both sizes only read
    env["PYTHONPATH"] = str(_ROOT)
    return env


def _entry(op: str, size: int) -> list[str]:
    # -P: the working directory is not on sys.path (the import path is PYTHONPATH's).
    return [sys.executable, "-P", "-m", "workloads._instr_ops", op, f"{size:0{_SIZE_WIDTH}d}"]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _run(command: list[str], env: Mapping[str, str], timeout_s: float, what: str) -> None:
    try:
        done = subprocess.run(
            command,
            cwd=_ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        # subprocess.run has killed and reaped the process.
        raise InstructionsError(f"{what}: timed out after {timeout_s:g} s") from None
    if done.returncode != 0:
        raise InstructionsError(f"{what}: exit status {done.returncode}: {_last_line(done.stderr)}")


def _parse_summary(text: str, source: str) -> int:
    """The ``Ir`` total of a cachegrind output file's text (its ``summary:`` line)."""
    events: list[str] = []
    for line in text.splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("summary:"):
            values = line.split()[1:]
            if "Ir" in events and len(values) == len(events):
                return int(values[events.index("Ir")])
    raise InstructionsError(f"{source}: no 'summary:' line with an Ir count")


def _cachegrind_command(out: Path, op: str, size: int) -> list[str]:
    return [
        "setarch",
        platform.machine(),
        "-R",
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        f"--cachegrind-out-file={out}",
        *_entry(op, size),
    ]


def _cachegrind_pair(
    op: str, size: int, extra_env: Mapping[str, str], timeout_s: float
) -> tuple[int, int]:
    """The instructions of two processes, ``op`` at ``size`` and at 0, run at once.

    Both are killed and reaped on any way out (a failure, the timeout, Ctrl-C).
    """
    env = _environment(extra_env)
    with tempfile.TemporaryDirectory(prefix="agentbench-cg-") as scratch:
        started: list[tuple[int, Path, Path, subprocess.Popen[bytes]]] = []
        try:
            for units in (size, 0):
                out = Path(scratch) / f"cachegrind.{units}.out"
                log = Path(scratch) / f"stderr.{units}.txt"
                # stderr to a file, not a pipe: two children never block on a full pipe.
                with log.open("wb") as stderr:
                    process = subprocess.Popen(
                        _cachegrind_command(out, op, units),
                        cwd=_ROOT,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=stderr,
                    )
                started.append((units, out, log, process))
            deadline = time.monotonic() + timeout_s
            counts: list[int] = []
            for units, out, log, process in started:
                what = f"cachegrind {op} {units}"
                try:
                    status = process.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise InstructionsError(f"{what}: timed out after {timeout_s:g} s") from None
                if status != 0:
                    last = _last_line(log.read_text(encoding="utf-8", errors="replace"))
                    raise InstructionsError(f"{what}: exit status {status}: {last}")
                try:
                    text = out.read_text(encoding="utf-8")
                except OSError as exc:
                    raise InstructionsError(f"{what}: no output file: {exc}") from None
                counts.append(_parse_summary(text, what))
            return counts[0], counts[1]
        finally:
            for _, _, _, process in started:
                if process.poll() is None:
                    process.kill()
                process.wait()


def _warm(ops: Iterable[str], extra_env: Mapping[str, str], timeout_s: float) -> None:
    """Run ``ops`` at size 0 natively, in one process: writes the bytecode caches both
    sizes will read, and fails fast, with the entry point's own last line, when an op
    cannot run at all."""
    names = ",".join(ops)
    env = _environment(extra_env)
    env.pop("PYTHONDONTWRITEBYTECODE")
    _run(_entry(names, 0), env, timeout_s, f"{names} (warm-up, without valgrind)")


def _spec(op: str) -> InstructionOp:
    spec = _OPS_BY_NAME.get(op)
    if spec is None:
        raise ValueError(
            f"unknown instruction op {op!r}; expected one of {', '.join(_OPS_BY_NAME)}"
        )
    return spec


def _figure(
    spec: InstructionOp,
    size: int,
    extra_env: Mapping[str, str],
    count: CountFn | None,
    timeout_s: float,
) -> InstructionFigure:
    started = time.perf_counter()
    if count is None:
        instructions_n, instructions_0 = _cachegrind_pair(spec.name, size, extra_env, timeout_s)
    else:
        instructions_n = count(spec.name, size, extra_env)
        instructions_0 = count(spec.name, 0, extra_env)
    return InstructionFigure(
        op=spec.name,
        metric=spec.metric,
        n=size,
        instructions_n=instructions_n,
        instructions_0=instructions_0,
        per_op=(instructions_n - instructions_0) / size,
        wall_s=time.perf_counter() - started,
    )


def measure(
    op: str,
    *,
    n: int | None = None,
    env: Mapping[str, str] | None = None,
    count: CountFn | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> InstructionFigure:
    """Measure ``op`` (a name of :data:`INSTRUCTION_OPS`): instructions per unit.

    ``n`` defaults to the op's own; ``env`` adds variables to both processes (the
    planted slowdown, say). ``count`` replaces the cachegrind runner (tests give a
    fake one, called for size ``n`` then 0; then no tool is required and no warm-up
    runs). The two cachegrind processes run at once. :class:`InstructionsUnavailable`
    without the tools, :class:`InstructionsError` when a process fails, ``ValueError``
    for an unknown op or ``n < 1``.
    """
    spec = _spec(op)
    size = spec.n if n is None else n
    if size < 1:
        raise ValueError(f"{op}: n must be a positive integer, got {size}")
    extra = dict(env or {})
    if count is None:
        require_tools()
        _warm([op], extra, timeout_s)
    return _figure(spec, size, extra, count, timeout_s)


def measure_all(
    ops: Iterable[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    count: CountFn | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_figure: Callable[[InstructionFigure], object] | None = None,
) -> list[InstructionFigure]:
    """Measure every op of :data:`INSTRUCTION_OPS` (or those named), each at its own ``n``.

    One native warm-up process for them all, then each op's two sizes; ``on_figure``
    sees each figure as soon as it is measured. Errors as :func:`measure`'s, raised
    before anything runs for an unknown op or a missing tool.
    """
    specs = list(INSTRUCTION_OPS) if ops is None else [_spec(name) for name in ops]
    extra = dict(env or {})
    if count is None:
        require_tools()
        _warm([spec.name for spec in specs], extra, timeout_s)
    figures: list[InstructionFigure] = []
    for spec in specs:
        figures.append(_figure(spec, spec.n, extra, count, timeout_s))
        if on_figure is not None:
            on_figure(figures[-1])
    return figures


def _print_figure(figure: InstructionFigure) -> None:
    print(
        f"{figure.op:24} n={figure.n:<5} {figure.per_op:16,.1f} {UNIT}/op  ({figure.wall_s:.1f} s)",
        flush=True,
    )


def main(argv: Sequence[str]) -> int:
    """``python -m workloads.instructions [--json] [op ...]``: a developer's view.

    Prints each op's instructions per operation as it is counted; with ``--json``,
    one JSON object of metric -> instructions per op on the last line (what
    ``harness interleave`` reads). 77 without valgrind, 2 for bad input.
    """
    import argparse

    from workloads.registry import SKIP_EXIT_STATUS

    parser = argparse.ArgumentParser(
        prog="python -m workloads.instructions",
        description="Count the instructions per operation of the CPU-bound paths under "
        "valgrind's cachegrind (hash seed fixed, ASLR off): each a difference of two "
        "sizes in separate processes. Exit 77 when valgrind is missing, 2 for bad input.",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on the last line")
    parser.add_argument(
        "ops",
        nargs="*",
        metavar="OP",
        help=f"ops to count (default all): {', '.join(_OPS_BY_NAME)}",
    )
    args = parser.parse_args(argv)
    unknown = [op for op in args.ops if op not in _OPS_BY_NAME]
    if unknown:
        parser.error(f"unknown op {unknown[0]!r}; expected one of {', '.join(_OPS_BY_NAME)}")
    pass_started = time.perf_counter()
    try:
        found = measure_all(args.ops or None, on_figure=None if args.json else _print_figure)
    except WorkloadsError as exc:
        print(f"instructions: {exc}", file=sys.stderr)
        return SKIP_EXIT_STATUS if isinstance(exc, InstructionsUnavailable) else 2
    if args.json:
        print(json.dumps({figure.metric: figure.per_op for figure in found}), flush=True)
    else:
        print(f"instruction pass: {time.perf_counter() - pass_started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
