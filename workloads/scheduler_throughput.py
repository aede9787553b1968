"""scheduler_throughput: pooled versus legacy on the same trace, interleaved in one run.

Each round runs kernel-small through the legacy scheduler and the pooled one,
in a balanced order (ABBA across rounds), with durations scaled by
``TIME_SCALE`` so that a legacy pass stays near a second. The throughput gain
of a round is ``legacy makespan / pooled makespan - 1`` (tasks per second,
pooled over legacy, minus one). pyperf's value is the pooled makespan.
``AGENTBENCH_INJECT_SLOWDOWN`` (a fraction, off by default) plants a known
slowdown in the scheduler path, only to validate comparisons.
"""

from __future__ import annotations

from reference_impl.mode import Mode
from workloads._bench import Round, balanced, main, run_async
from workloads._traces import load_records
from workloads.drivers import Setting, run_kernel

TRACE = "kernel-small"
CONCURRENCY = 8
TIME_SCALE = 0.1


def one_round(round_: Round, number: int) -> float:
    makespans: dict[Mode, float] = {}
    for mode in balanced(number, [Mode.LEGACY, Mode.POOLED]):
        setting = Setting(mode, CONCURRENCY, time_scale=TIME_SCALE)
        outcome = run_async(run_kernel(load_records(TRACE), setting))
        makespans[mode] = outcome.makespan_s
    round_.record(
        "throughput_gain", [makespans[Mode.LEGACY] / makespans[Mode.POOLED] - 1.0], unit="ratio"
    )
    round_.record("makespan_legacy", [makespans[Mode.LEGACY]])
    round_.record("makespan_pooled", [makespans[Mode.POOLED]])
    return makespans[Mode.POOLED]


if __name__ == "__main__":
    main("scheduler_throughput", one_round, "pooled vs legacy scheduler throughput, interleaved")
