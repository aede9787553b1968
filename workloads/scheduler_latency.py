"""scheduler_latency: per-task latency of the pooled scheduler replaying kernel-small.

Wall clock, trace durations unscaled (median 40 ms tool work). A task's latency
is the time from the start of its batch to its commit (samples recorded inside
the workload: one per task, every round). pyperf's value is the round's makespan.
"""

from __future__ import annotations

from reference_impl.mode import Mode
from workloads._bench import Round, main, run_async
from workloads._traces import load_records
from workloads.drivers import Setting, run_kernel

TRACE = "kernel-small"
CONCURRENCY = 8


def one_round(round_: Round, _number: int) -> float:
    outcome = run_async(run_kernel(load_records(TRACE), Setting(Mode.POOLED, CONCURRENCY)))
    round_.record("task_latency", list(outcome.latencies_s))
    return outcome.makespan_s


if __name__ == "__main__":
    main("scheduler_latency", one_round, "pooled scheduler per-task latency on kernel-small")
