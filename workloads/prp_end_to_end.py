"""prp_end_to_end: prp-nightly on the virtual clock, end-to-end PRP makespan in trace seconds.

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
        round_.record(f"makespan_{mode.value}", [o.makespan_s], unit="s", clock="trace")
    return wall


if __name__ == "__main__":
    main("prp_end_to_end", one_round, "prp-nightly: end-to-end PRP makespan in trace seconds")
