"""What every workload module shares: a pyperf Runner whose values are rounds.

Each workload registers one pyperf benchmark whose time function runs one
*round* (``loops`` is fixed to 1 by the harness: a round is heavy enough to
need no calibration). A round may run several variants interleaved (A/B, in a
balanced order that alternates ABBA from round to round) and record its
per-operation samples and per-round ratios through :class:`Round`. Warmup
rounds (the first ``--warmups`` calls in a worker) record nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import pyperf

from workloads import loops
from workloads.registry import SKIP_EXIT_STATUS, skip_line
from workloads.samples import ClockName, SampleSink

__all__ = ["Round", "balanced", "main", "run_async"]

T = TypeVar("T")


class Round:
    """The samples of one measured round (dropped when the round is a warmup)."""

    def __init__(self, sink: SampleSink, recording: bool) -> None:
        self._sink = sink
        self.recording = recording
        self.id = sink.next_round() if recording else "warmup"

    def record(
        self, metric: str, values: Sequence[float], *, unit: str = "s", clock: ClockName = "wall"
    ) -> None:
        """Keep ``values`` of ``metric`` for this round."""
        if self.recording:
            self._sink.write(metric, values, round_id=self.id, unit=unit, clock=clock)


def balanced(round_no: int, variants: Sequence[T]) -> list[T]:
    """The variants in ABBA order: forward on even rounds, reversed on odd ones."""
    return list(variants) if round_no % 2 == 0 else list(reversed(variants))


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine on a fresh event loop of the run's kind (:mod:`workloads.loops`)."""
    return loops.run(coro)


def main(name: str, round_fn: Callable[[Round, int], float], description: str) -> None:
    """Register ``round_fn`` as workload ``name``'s pyperf benchmark and run pyperf.

    ``round_fn(round, round_no)`` runs one round and returns the seconds that
    pyperf records as the round's value (the measured variant's wall time).
    """
    absent = loops.missing(loops.chosen())
    if absent:  # measure the loop asked for, or nothing
        print(skip_line(name, absent), file=sys.stderr, flush=True)
        raise SystemExit(SKIP_EXIT_STATUS)
    sink = SampleSink(name)
    # pyperf's workers run what this process runs: ``python -m workloads.<name>``,
    # resolved as this process resolved it (the current directory first). By
    # default they would run the script's path, whose ``import workloads`` finds
    # the installed copy: another checkout's code than the one being measured.
    runner = pyperf.Runner(program_args=("-m", f"workloads.{name}"))
    runner.metadata["description"] = description
    calls = [0]

    def time_func(loops: int) -> float:
        args = runner.args
        warmups = int(getattr(args, "warmups", 0) or 0)
        calibrating = bool(getattr(args, "calibrate_loops", False)) or bool(
            getattr(args, "recalibrate_loops", False)
        )
        total = 0.0
        for _ in range(loops):
            number = calls[0]
            calls[0] += 1
            recording = not calibrating and number >= warmups
            total += round_fn(Round(sink, recording), number)
        return total

    runner.bench_time_func(name, time_func)


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and the wall seconds it took."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start
