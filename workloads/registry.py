"""Which workloads exist, what they measure, and how the harness starts one.

Each workload is a module ``workloads/<name>.py`` that is a pyperf script: run as
``python -m workloads.<name> [pyperf options]`` it registers its benchmarks with
a ``pyperf.Runner`` and, when the harness asks (``AGENTBENCH_SAMPLES_DIR``),
records per-operation samples (see :mod:`workloads.samples`).

A workload that cannot run here because an optional dependency group is not
installed (the ``peers`` workloads without LangGraph) exits with
:data:`SKIP_EXIT_STATUS` after one stderr line ``<name>: skipped: <reason>``
that says how to install what it lacks; the harness reports it as skipped.

Why one module: it is the table of one thing, the workloads, and every stage (the workloads
themselves, the harness, the judge, the report) reads their descriptions from this one place.
Most of its length is the :data:`WORKLOADS` table, whose entries share private constants
(``_pool_twin``, the values a round records).
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reference_impl.mode import Mode
from workloads.instructions import INSTRUCTION_OPS

__all__ = [
    "INSTRUCTIONS",
    "PROFILES",
    "REPLAY_CHECKS",
    "REPLAY_JITTER",
    "SKIP_EXIT_STATUS",
    "WORKLOADS",
    "Better",
    "Kind",
    "Metric",
    "Profile",
    "ReplayCheck",
    "Role",
    "WorkloadInfo",
    "command",
    "cost",
    "describe",
    "latency",
    "ratio",
    "skip_line",
    "trace_path",
]

TRACES_DIR = Path(__file__).resolve().parent / "traces"
# The instruction clock's pseudo-workload: run by the harness through
# workloads.instructions (cachegrind), not as a pyperf script.
INSTRUCTIONS = "instructions"
# The exit status of a workload that skipped itself (automake's and meson's "skipped").
SKIP_EXIT_STATUS = 77


class Better(enum.StrEnum):
    """Which way a metric is better."""

    LOWER = "lower"
    HIGHER = "higher"


class Kind(enum.StrEnum):
    """What a metric measures."""

    LATENCY = "latency"  # seconds per operation, a distribution of many values a round
    COST = "cost"  # seconds (or instructions) of one whole batch, or per item of it
    RATIO = "ratio"  # one figure over another (efficiency, speed-up, ours/peer)
    OVERHEAD = "overhead"  # a relative extra cost, recorded as ratio - 1
    RATE = "rate"  # operations per hour
    COUNT = "count"  # a number of things


class Role(enum.StrEnum):
    """A metric's place in a pair: legacy/improved (our switch), ours/peer, or none."""

    NONE = ""
    LEGACY = "legacy"  # today's sequential behaviour
    IMPROVED = "improved"  # the pooled or cached side of the same pair
    OURS = "ours"  # our runtime beside a peer framework
    PEER = "peer"  # a peer's own figure, or a baseline (Semaphore+gather): a reference


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric a workload records: the one description every stage reads.

    ``unit``: s, ratio, per_hour or instructions. ``offset`` is added before a
    ratio is taken (1.0 for figures recorded as ``ratio - 1``: gains, overheads).
    ``pair`` names the pair the metric belongs to and ``role`` its side in it.
    ``per_round`` is how many values one round records (percentiles need many).
    ``reference``: the figure measures only a peer or a baseline, never our code:
    compare shows it and never judges it.
    ``twin`` names the metric of the ``instructions`` workload that counts the same
    CPU-bound path exactly; compare lets that exact count decide a
    wall row its noise leaves undecided, and says when the two clocks disagree.
    Only CPU-bound paths have one: a path that waits (sleeps, I/O) does not.
    """

    name: str
    kind: Kind
    unit: str = "s"
    better: Better = Better.LOWER
    offset: float = 0.0
    pair: str = ""
    role: Role = Role.NONE
    per_round: int = 1
    twin: str = ""

    @property
    def reference(self) -> bool:
        """Whether the metric measures a peer or a baseline only (a reference, not a verdict)."""
        return self.role is Role.PEER


def latency(
    name: str, per_round: int, *, pair: str = "", role: Role = Role.NONE, twin: str = ""
) -> Metric:
    """A per-operation latency in seconds, ``per_round`` values a round."""
    return Metric(name, Kind.LATENCY, per_round=per_round, pair=pair, role=role, twin=twin)


def cost(
    name: str, *, pair: str = "", role: Role = Role.NONE, per_round: int = 1, twin: str = ""
) -> Metric:
    """A cost in seconds (of a batch, or per item of it)."""
    return Metric(name, Kind.COST, pair=pair, role=role, per_round=per_round, twin=twin)


def ratio(
    name: str,
    *,
    better: Better = Better.LOWER,
    offset: float = 0.0,
    pair: str = "",
    role: Role = Role.NONE,
    per_round: int = 1,
    twin: str = "",
) -> Metric:
    """A dimensionless ratio; an overhead or gain recorded as ``ratio - 1`` has offset 1."""
    kind = Kind.OVERHEAD if offset else Kind.RATIO
    return Metric(name, kind, "ratio", better, offset, pair, role, per_round, twin)


@dataclass(frozen=True, slots=True)
class WorkloadInfo:
    """One workload: its module, the clock its figures are on, the metrics it records.

    ``pyperf_twin``: the instruction metric of the path pyperf's own values time
    (see :attr:`Metric.twin`), "" when that path waits. ``hot_path``: the profile
    (:class:`harness.measure.profiles.HotPath` value) whose functions explain this
    workload's time, "" when none does.
    """

    name: str
    description: str
    clock: Literal["wall", "trace", "instructions"]
    metrics: tuple[Metric, ...]
    traces: tuple[str, ...] = ()
    pyperf_twin: str = ""
    hot_path: str = ""

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The names of :attr:`metrics`, in order."""
        return tuple(metric.name for metric in self.metrics)

    def metric(self, name: str) -> Metric | None:
        """The description of metric ``name``, or None when this workload records no such."""
        return next((metric for metric in self.metrics if metric.name == name), None)


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

_HIGHER = Better.HIGHER
_REPLAYED_BOTH_MODES = ("kernel-small", "mcp-tools", "prp-nightly")


def _pool_twin(concurrency: int) -> str:
    return f"instructions_pool_item_c{concurrency}"


_FANOUT_INVOCATIONS = {16: 24, 256: 4}
_GRAPH_BATCHES = 4
# Values a round records of the per-operation metrics (kernel-small: 200 tasks a run;
# mcp-tools: 96 calls a mode; prp-nightly: 43 approvals a mode; fanout_vs_langgraph:
# 24 invocations of 16 items, 4 of 256; graph_vs_langgraph: 4 batches a side).
_KERNEL_SMALL_TASKS = 200
_MCP_CALLS = 96
_PRP_APPROVALS = 43

WORKLOADS: dict[str, WorkloadInfo] = {
    info.name: info
    for info in (
        WorkloadInfo(
            "pool_overhead",
            "Per-item cost of the ordered pool vs Semaphore+gather, TaskGroup, aiometer; "
            "I/O efficiency",
            "wall",
            (
                *(
                    cost(f"item_cost_ordered_pool_c{c}", pair="pool", twin=_pool_twin(c))
                    for c in (1, 4, 16, 64)
                ),
                # Results dropped (no commit callback): the pool's own cost, on the
                # floor's terms. Its twin counts the same pool path with a no-op callback.
                cost("item_cost_ordered_pool_no_commit_c16", pair="pool", twin=_pool_twin(16)),
                cost("item_cost_semaphore_gather_c16", pair="pool", role=Role.PEER),
                cost("item_cost_task_group_c16", pair="pool", role=Role.PEER),
                cost("item_cost_aiometer_c16", pair="pool", role=Role.PEER),
                cost("item_cost_floor_c16", pair="pool", role=Role.PEER),
                cost("item_cost_sequential", pair="pool", role=Role.PEER),
                ratio("item_cost_ratio_vs_semaphore", twin=_pool_twin(16)),
                ratio("item_cost_ratio_vs_floor", twin=_pool_twin(16)),
                ratio("io_efficiency", better=_HIGHER, pair="io", role=Role.OURS),
                ratio("io_efficiency_semaphore", better=_HIGHER, pair="io", role=Role.PEER),
                ratio("io_efficiency_vs_semaphore", better=_HIGHER),
            ),
            pyperf_twin=_pool_twin(16),
            hot_path="pool",
        ),
        WorkloadInfo(
            "scheduler_latency",
            "Per-task latency of the pooled scheduler replaying kernel-small (scaled durations)",
            "wall",
            (latency("task_latency", _KERNEL_SMALL_TASKS),),
            ("kernel-small",),
            hot_path="scheduler",
        ),
        WorkloadInfo(
            "scheduler_throughput",
            "Pooled vs legacy scheduler on the same trace, interleaved ABBA in one run",
            "wall",
            (
                ratio("throughput_gain", better=_HIGHER, offset=1.0),
                cost("makespan_legacy", pair="makespan", role=Role.LEGACY),
                cost("makespan_pooled", pair="makespan", role=Role.IMPROVED),
            ),
            ("kernel-small",),
            hot_path="scheduler",
        ),
        WorkloadInfo(
            "hook_latency",
            "MCP pre+post hook time per tool call, cached hooks (pooled) vs rebuilt (legacy)",
            "wall",
            (
                latency(
                    "hook_latency_pooled",
                    _MCP_CALLS,
                    pair="hook_latency",
                    role=Role.IMPROVED,
                    twin="instructions_hook_call_pooled",
                ),
                latency(
                    "hook_latency_legacy",
                    _MCP_CALLS,
                    pair="hook_latency",
                    role=Role.LEGACY,
                    twin="instructions_hook_call_legacy",
                ),
            ),
            ("mcp-tools",),
            pyperf_twin="instructions_hook_call_pooled",
            hot_path="mcp_hooks",
        ),
        WorkloadInfo(
            "proof_import",
            "Proof module import: cold in a fresh process, and per invocation when cached",
            "wall",
            (
                cost(
                    "per_invocation_cached",
                    pair="per_invocation",
                    role=Role.IMPROVED,
                    twin="instructions_proof_import_cached",
                ),
                cost(
                    "per_invocation_legacy",
                    pair="per_invocation",
                    role=Role.LEGACY,
                    twin="instructions_proof_import_legacy",
                ),
                # The same import as a legacy re-import (module found, read, executed).
                cost("cold_import", twin="instructions_proof_import_legacy"),
            ),
            pyperf_twin="instructions_proof_import_cached",
        ),
        WorkloadInfo(
            "prp_end_to_end",
            "prp-nightly on the virtual clock: makespan in trace seconds, legacy and pooled",
            "trace",
            (
                cost("makespan_pooled", pair="makespan", role=Role.IMPROVED),
                cost("makespan_legacy", pair="makespan", role=Role.LEGACY),
            ),
            ("prp-nightly",),
        ),
        WorkloadInfo(
            "gate_throughput",
            "prp-nightly on the virtual clock: gates per hour of trace time",
            "trace",
            (
                Metric(
                    "gates_per_hour_pooled",
                    Kind.RATE,
                    "per_hour",
                    _HIGHER,
                    pair="gates_per_hour",
                    role=Role.IMPROVED,
                ),
                Metric(
                    "gates_per_hour_legacy",
                    Kind.RATE,
                    "per_hour",
                    _HIGHER,
                    pair="gates_per_hour",
                    role=Role.LEGACY,
                ),
            ),
            ("prp-nightly",),
        ),
        WorkloadInfo(
            "approval_wait",
            "prp-nightly on the virtual clock: each approval's wait in trace seconds",
            "trace",
            (
                latency(
                    "approval_wait_pooled", _PRP_APPROVALS, pair="approval_wait", role=Role.IMPROVED
                ),
                latency(
                    "approval_wait_legacy", _PRP_APPROVALS, pair="approval_wait", role=Role.LEGACY
                ),
            ),
            ("prp-nightly",),
        ),
        WorkloadInfo(
            "telemetry_overhead",
            "Pooled scheduler with telemetry on (memory reader) vs off, interleaved",
            "wall",
            (
                ratio("overhead_kernel_small", offset=1.0),
                ratio("overhead_noop_items", offset=1.0, twin="instructions_telemetry_record"),
            ),
            ("kernel-small",),
            hot_path="scheduler",
        ),
        WorkloadInfo(
            INSTRUCTIONS,
            "Instructions per operation of the CPU-bound paths under cachegrind (hash seed "
            "fixed, ASLR off): a difference of two sizes in separate processes; exact run to "
            "run on one machine",
            "instructions",
            tuple(
                Metric(op.metric, Kind.COST, "instructions", pair="instructions")
                for op in INSTRUCTION_OPS
            ),
        ),
        WorkloadInfo(
            "graph_vs_langgraph",
            "Per-run overhead of the strategy -> build -> evaluation graph: ours (pooled, "
            "checkpoints, telemetry on) vs LangGraph with and without its in-memory checkpointer",
            "wall",
            (
                cost("overhead_ours", pair="graph", role=Role.OURS, per_round=_GRAPH_BATCHES),
                cost("overhead_langgraph", pair="graph", role=Role.PEER, per_round=_GRAPH_BATCHES),
                cost(
                    "overhead_langgraph_checkpointer",
                    pair="graph",
                    role=Role.PEER,
                    per_round=_GRAPH_BATCHES,
                ),
                cost("overhead_plain", pair="graph", role=Role.PEER, per_round=_GRAPH_BATCHES),
                ratio("ratio_vs_langgraph"),
                ratio("ratio_vs_langgraph_checkpointer"),
            ),
        ),
        WorkloadInfo(
            "fanout_vs_langgraph",
            "One node fanning out 16 or 256 sleeping tool calls joined in order: our ordered "
            "pool vs LangGraph's Send fan-out, same concurrency bound",
            "wall",
            tuple(
                metric
                for n, runs in _FANOUT_INVOCATIONS.items()
                for metric in (
                    ratio(
                        f"makespan_over_ideal_ours_n{n}",
                        pair=f"fanout_n{n}",
                        role=Role.OURS,
                        per_round=runs,
                    ),
                    ratio(
                        f"makespan_over_ideal_langgraph_n{n}", pair=f"fanout_n{n}", role=Role.PEER
                    ),
                    cost(f"item_overhead_ours_n{n}", pair=f"fanout_item_n{n}", role=Role.OURS),
                    cost(f"item_overhead_langgraph_n{n}", pair=f"fanout_item_n{n}", role=Role.PEER),
                    ratio(f"ratio_vs_langgraph_n{n}"),
                )
            ),
        ),
    )
}


@dataclass(frozen=True, slots=True)
class ReplayCheck:
    """How `harness run` replays one shipped trace for its determinism check."""

    trace: str
    modes: tuple[Mode, ...]
    concurrencies: tuple[int, ...]
    runs: int


_BOTH = (Mode.LEGACY, Mode.POOLED)
# The determinism check of `harness run`, per profile: each shipped trace replayed in
# these modes and concurrencies, with REPLAY_JITTER, each setting `runs` times.
# kernel-large runs pooled only: its canonical legacy pass re-imports the proof module
# 20,000 times (about a minute); the nightly replays it in both modes (`nox -s replay`).
REPLAY_CHECKS: dict[str, tuple[ReplayCheck, ...]] = {
    profile: (
        *(ReplayCheck(trace, _BOTH, (1, 4, 16), runs) for trace in _REPLAYED_BOTH_MODES),
        ReplayCheck("kernel-large", (Mode.POOLED,), large, 1),
    )
    for profile, runs, large in (
        ("fast", 1, (16,)),
        ("default", 2, (4, 16)),
        ("rigorous", 3, (1, 4, 16)),
    )
}
REPLAY_JITTER = 0.3


def describe(workload: str, metric: str) -> Metric | None:
    """The registry's description of ``metric`` of ``workload``; None when it has none."""
    info = WORKLOADS.get(workload)
    return info.metric(metric) if info is not None else None


def command(name: str, profile: Profile, output: Path) -> list[str]:
    """The argv that runs workload ``name`` under pyperf, writing ``output``."""
    return [
        sys.executable,
        "-m",
        f"workloads.{name}",
        *profile.pyperf_args(),
        "--inherit-environ=AGENTBENCH_SAMPLES_DIR,AGENTBENCH_PROFILE,AGENTBENCH_INJECT_SLOWDOWN,"
        "AGENTBENCH_LOOP",
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
