"""approval_wait: prp-nightly on the virtual clock, each approval's wait in trace seconds.

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
        round_.record(f"approval_wait_{mode.value}", list(o.latencies_s), unit="s", clock="trace")
    return wall


if __name__ == "__main__":
    main("approval_wait", one_round, "prp-nightly: each approval's wait in trace seconds")
