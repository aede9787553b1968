"""Which workloads exist, what they measure, and how the harness starts one.

Each workload is a module ``workloads/<name>.py`` that is a pyperf script: run as
``python -m workloads.<name> [pyperf options]`` it registers its benchmarks with
a ``pyperf.Runner`` and, when the harness asks (``AGENTBENCH_SAMPLES_DIR``),
records per-operation samples (see :mod:`workloads.samples`).

A workload that cannot run here because an optional dependency group is not
installed (the ``peers`` workloads without LangGraph) exits with
:data:`SKIP_EXIT_STATUS` after one stderr line ``<name>: skipped: <reason>``
that says how to install what it lacks; the harness reports it as skipped.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "PROFILES",
    "SKIP_EXIT_STATUS",
    "WORKLOADS",
    "Profile",
    "WorkloadInfo",
    "command",
    "skip_line",
    "trace_path",
]

TRACES_DIR = Path(__file__).resolve().parent / "traces"
# The exit status of a workload that skipped itself (automake's and meson's "skipped").
SKIP_EXIT_STATUS = 77


@dataclass(frozen=True, slots=True)
class WorkloadInfo:
    """One workload: its module, the clock its figures are on, the metrics it records."""

    name: str
    description: str
    clock: Literal["wall", "trace"]
    metrics: tuple[str, ...]
    traces: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Profile:
    """How hard pyperf works: processes, values per process, warmups."""

    name: str
    processes: int
    values: int
    warmups: int
    min_time_s: float

    def pyperf_args(self) -> list[str]:
        """The pyperf command-line options of this profile."""
        return [
            f"--processes={self.processes}",
            f"--values={self.values}",
            f"--warmups={self.warmups}",
            f"--min-time={self.min_time_s}",
        ]


PROFILES: dict[str, Profile] = {
    "fast": Profile("fast", processes=3, values=3, warmups=1, min_time_s=0.05),
    "default": Profile("default", processes=8, values=3, warmups=1, min_time_s=0.1),
    "rigorous": Profile("rigorous", processes=16, values=5, warmups=1, min_time_s=0.1),
}

WORKLOADS: dict[str, WorkloadInfo] = {
    info.name: info
    for info in (
        WorkloadInfo(
            "pool_overhead",
            "Per-item cost of the ordered pool vs Semaphore+gather, TaskGroup, aiometer; "
            "I/O efficiency",
            "wall",
            (
                "item_cost_ratio_vs_semaphore",
                "io_efficiency",
                "io_efficiency_semaphore",
                "io_efficiency_vs_semaphore",
            ),
        ),
        WorkloadInfo(
            "scheduler_latency",
            "Per-task latency of the pooled scheduler replaying kernel-small (scaled durations)",
            "wall",
            ("task_latency",),
            ("kernel-small",),
        ),
        WorkloadInfo(
            "scheduler_throughput",
            "Pooled vs legacy scheduler on the same trace, interleaved ABBA in one run",
            "wall",
            ("throughput_gain",),
            ("kernel-small",),
        ),
        WorkloadInfo(
            "hook_latency",
            "MCP pre+post hook time per tool call, cached hooks (pooled) vs rebuilt (legacy)",
            "wall",
            ("hook_latency_pooled", "hook_latency_legacy"),
            ("mcp-tools",),
        ),
        WorkloadInfo(
            "proof_import",
            "Proof module import: cold in a fresh process, and per invocation when cached",
            "wall",
            ("per_invocation_cached", "per_invocation_legacy", "cold_import"),
        ),
        WorkloadInfo(
            "prp_end_to_end",
            "prp-nightly on the virtual clock: makespan in trace seconds, legacy and pooled",
            "trace",
            ("makespan_pooled", "makespan_legacy"),
            ("prp-nightly",),
        ),
        WorkloadInfo(
            "gate_throughput",
            "prp-nightly on the virtual clock: gates per hour of trace time",
            "trace",
            ("gates_per_hour_pooled", "gates_per_hour_legacy"),
            ("prp-nightly",),
        ),
        WorkloadInfo(
            "approval_wait",
            "prp-nightly on the virtual clock: each approval's wait in trace seconds",
            "trace",
            ("approval_wait_pooled", "approval_wait_legacy"),
            ("prp-nightly",),
        ),
        WorkloadInfo(
            "telemetry_overhead",
            "Pooled scheduler with telemetry on (memory reader) vs off, interleaved",
            "wall",
            ("overhead_kernel_small", "overhead_noop_items"),
            ("kernel-small",),
        ),
        WorkloadInfo(
            "graph_vs_langgraph",
            "Per-run overhead of the strategy -> build -> evaluation graph: ours (pooled, "
            "checkpoints, telemetry on) vs LangGraph with and without its in-memory checkpointer",
            "wall",
            (
                "overhead_ours",
                "overhead_langgraph",
                "overhead_langgraph_checkpointer",
                "overhead_plain",
                "ratio_vs_langgraph",
                "ratio_vs_langgraph_checkpointer",
            ),
        ),
        WorkloadInfo(
            "fanout_vs_langgraph",
            "One node fanning out 16 or 256 sleeping tool calls joined in order: our ordered "
            "pool vs LangGraph's Send fan-out, same concurrency bound",
            "wall",
            (
                "makespan_over_ideal_ours_n16",
                "makespan_over_ideal_langgraph_n16",
                "makespan_over_ideal_ours_n256",
                "makespan_over_ideal_langgraph_n256",
                "item_overhead_ours_n16",
                "item_overhead_langgraph_n16",
                "item_overhead_ours_n256",
                "item_overhead_langgraph_n256",
                "ratio_vs_langgraph_n16",
                "ratio_vs_langgraph_n256",
            ),
        ),
    )
}


def command(name: str, profile: Profile, output: Path) -> list[str]:
    """The argv that runs workload ``name`` under pyperf, writing ``output``."""
    return [
        sys.executable,
        "-m",
        f"workloads.{name}",
        *profile.pyperf_args(),
        "--inherit-environ=AGENTBENCH_SAMPLES_DIR,AGENTBENCH_PROFILE,AGENTBENCH_INJECT_SLOWDOWN",
        "--loops=1",
        "--quiet",
        f"--output={output}",
    ]


def skip_line(name: str, reason: str) -> str:
    """The one stderr line of workload ``name`` skipping itself for ``reason``."""
    return f"{name}: skipped: {reason}"


def trace_path(name: str) -> Path:
    """The shipped trace ``name`` (``workloads/traces/<name>.jsonl[.gz]``)."""
    for candidate in (TRACES_DIR / f"{name}.jsonl", TRACES_DIR / f"{name}.jsonl.gz"):
        if candidate.exists():
            return candidate
    return TRACES_DIR / f"{name}.jsonl.gz"
