"""One prp-nightly run per mode on the virtual clock, shared by the three PRP workloads."""

from __future__ import annotations

import time

from reference_impl import virtual_time
from reference_impl.mode import Mode
from workloads._bench import Round, balanced
from workloads._traces import load_records
from workloads.drivers import Setting, TraceOutcome
from workloads.prp_driver import run_prp

TRACE = "prp-nightly"

# The runtime's backward-compatible default: spool base concurrency 1 (it adapts up to 4).
BASE_CONCURRENCY = 1


def run_both(round_: Round, number: int) -> tuple[dict[Mode, TraceOutcome], float]:
    """Run prp-nightly in both modes (balanced order); the pooled run's wall seconds."""
    outcomes: dict[Mode, TraceOutcome] = {}
    wall = 0.0
    for mode in balanced(number, [Mode.LEGACY, Mode.POOLED]):
        start = time.perf_counter()
        outcomes[mode] = virtual_time.run(
            run_prp(load_records(TRACE), Setting(mode, BASE_CONCURRENCY))
        )
        if mode is Mode.POOLED:
            wall = time.perf_counter() - start
    del round_
    return outcomes, wall
