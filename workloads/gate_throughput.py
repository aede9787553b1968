"""gate_throughput: prp-nightly on the virtual clock, gates per hour of trace time.

Both modes run in every round (balanced order); the figures are trace time,
exact for a given trace (the virtual clock makes them independent of the
machine). pyperf's value is the wall time of the pooled replay.
"""

from __future__ import annotations

from workloads._bench import Round, main
from workloads._prp import run_both


def one_round(round_: Round, number: int) -> float:
    outcomes, wall = run_both(round_, number)
    for mode, o in outcomes.items():
        round_.record(
            f"gates_per_hour_{mode.value}",
            [float(o.metrics["gates_per_hour"])],
            unit="per_hour",
            clock="trace",
        )
    return wall


if __name__ == "__main__":
    main("gate_throughput", one_round, "prp-nightly: gates per hour of trace time")
