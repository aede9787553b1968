"""hook_latency: MCP pre+post hook time per tool call, cached hooks versus rebuilt.

Each round replays the first ``CALLS`` tool calls of mcp-tools through the
adapter in pooled mode (hooks built once, independent hooks overlapped) and in
legacy mode (hooks rebuilt on every call, one at a time), in a balanced order.
Hook durations are the trace's; tool work is scaled to zero (it is not what is
measured). Samples: each call's pre+post hook time, per mode. pyperf's value is
the pooled pass's wall time.
"""

from __future__ import annotations

import itertools
import time

from reference_impl.mode import Mode
from workloads._bench import Round, balanced, main, run_async
from workloads._traces import load_records
from workloads.drivers import Setting, run_mcp

TRACE = "mcp-tools"
CALLS = 96
CONCURRENCY = 16


def one_round(round_: Round, number: int) -> float:
    records = list(itertools.islice(load_records(TRACE), CALLS + 1))  # the config + calls
    wall: dict[Mode, float] = {}
    for mode in balanced(number, [Mode.LEGACY, Mode.POOLED]):
        start = time.perf_counter()
        outcome = run_async(run_mcp(records, Setting(mode, CONCURRENCY, time_scale=0.0)))
        wall[mode] = time.perf_counter() - start
        round_.record(f"hook_latency_{mode.value}", list(outcome.latencies_s))
    return wall[Mode.POOLED]


if __name__ == "__main__":
    main("hook_latency", one_round, "MCP hook latency per call, cached vs rebuilt")
