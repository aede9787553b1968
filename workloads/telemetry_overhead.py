"""telemetry_overhead: the pooled scheduler with telemetry on versus off, interleaved.

Telemetry *on* is the embedded default (an in-memory reader; observable
instruments reading the scheduler's statistics; the latency histogram fed once
per run from a bounded sample; one collection per run). *Off* is the no-op API.
Two cases, each A/B in a balanced order per round:

* ``overhead_kernel_small``: kernel-small with its durations scaled by
  ``TIME_SCALE`` (realistic work);
* ``overhead_noop_items``: ``NOOP_TASKS`` zero-duration tasks (the worst case:
  the scheduler's own cost only).

Each round runs two on/off pairs (ABBA inside the round); its sample is
``on / off - 1`` of the summed wall times. pyperf's value is the
telemetry-on kernel-small pass.
"""

from __future__ import annotations

import time

from reference_impl.mode import Mode
from reference_impl.telemetry import Exporter, Telemetry, TelemetryConfig
from workloads._bench import Round, balanced, main, run_async
from workloads._traces import load_records
from workloads.drivers import Setting, run_kernel
from workloads.trace import InputRecord
from workloads.trace import TaskRecord as TraceTask

TRACE = "kernel-small"
TIME_SCALE = 0.05
NOOP_TASKS = 5_000
CONCURRENCY = 8


def _timed(records: tuple[InputRecord, ...], scale: float, telemetry: Telemetry) -> float:
    setting = Setting(Mode.POOLED, CONCURRENCY, time_scale=scale)
    start = time.perf_counter()
    run_async(run_kernel(records, setting, telemetry=telemetry))
    return time.perf_counter() - start


def one_round(round_: Round, number: int) -> float:
    noop = tuple(TraceTask(f"noop-{i:05d}", 2, 0.0) for i in range(NOOP_TASKS))
    cases = {
        "overhead_kernel_small": (load_records(TRACE), TIME_SCALE),
        "overhead_noop_items": (noop, 0.0),
    }
    on_kernel = 0.0
    for metric, (records, scale) in cases.items():
        # Two on/off pairs per round, ABBA inside the round (and mirrored across
        # rounds): each round's ratio is then free of slot-order bias and half as noisy.
        times = {True: 0.0, False: 0.0}
        order = balanced(number, [True, False])
        for enabled in [*order, *reversed(order)]:
            exporter = Exporter.MEMORY if enabled else Exporter.NONE
            telemetry = Telemetry(TelemetryConfig(exporter=exporter))
            try:
                times[enabled] += _timed(records, scale, telemetry)
            finally:
                telemetry.shutdown()
        round_.record(metric, [times[True] / times[False] - 1.0], unit="ratio")
        if metric == "overhead_kernel_small":
            on_kernel = times[True] / 2
    return on_kernel


if __name__ == "__main__":
    main("telemetry_overhead", one_round, "telemetry on vs off, pooled scheduler")
