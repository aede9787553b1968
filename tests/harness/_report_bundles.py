"""Synthetic bundles, history and comparisons for the report tests (no workload run)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from harness.bundle.environment import GitState
from harness.bundle.files import (
    Determinism,
    DeterminismStatus,
    HotPathProfile,
    Manifest,
    ProfileRecord,
    WorkloadRun,
    load_bundle,
    write_bundle,
)
from harness.bundle.verdicts import (
    Clock,
    Direction,
    Statistic,
    Target,
    Unit,
    Verdict,
)
from harness.judge.verdict import evaluate
from harness.store.db import HISTORY_FILE, HistoryStore
from workloads.samples import MetricSamples

from ._bundles import make_environment, make_suite

ROUNDS = 3


def _target(
    name: str,
    workload: str,
    metric: str,
    statistic: Statistic,
    clock: Clock,
    unit: Unit,
    bound: float,
    direction: Direction = Direction.MAX,
) -> Target:
    return Target(
        name=name,
        workload=workload,
        metric=metric,
        statistic=statistic,
        clock=clock,
        unit=unit,
        bound=bound,
        direction=direction,
        description=f"{statistic.value} of {metric} <in {workload}>",
        line=1,
    )


TARGETS = (
    _target(
        "scheduler_p95_latency",
        "scheduler_latency",
        "task_latency",
        Statistic.P95,
        Clock.WALL,
        Unit.SECONDS,
        0.25,
    ),
    _target(
        "hook_latency_p95",
        "hook_latency",
        "hook_latency_pooled",
        Statistic.P95,
        Clock.WALL,
        Unit.SECONDS,
        0.05,
    ),
    _target(
        "prp_end_to_end_makespan",
        "prp_end_to_end",
        "makespan_pooled",
        Statistic.MEDIAN,
        Clock.TRACE,
        Unit.SECONDS,
        600.0,
    ),
    _target(
        "gate_throughput",
        "gate_throughput",
        "gates_per_hour_pooled",
        Statistic.MEDIAN,
        Clock.TRACE,
        Unit.PER_HOUR,
        30.0,
        Direction.MIN,
    ),
)
# Distribution charts: task_latency, hook_latency_legacy, hook_latency_pooled.
MANY_VALUE_METRICS = 3
PAIR_WORKLOADS = ("hook_latency", "prp_end_to_end", "gate_throughput")


def make_samples(seed: int, *, slowdown: float = 1.0, peers: bool = True) -> list[MetricSamples]:
    """Samples of five workloads: many-valued latencies, legacy/pooled pairs, peer ratios."""
    rng = np.random.default_rng(seed)
    samples: list[MetricSamples] = []

    def add(workload: str, metric: str, values: Any, unit: str = "s", clock: str = "wall") -> None:
        for index in range(ROUNDS):
            chunk = np.asarray(values)[index::ROUNDS]
            samples.append(
                MetricSamples(
                    workload,
                    metric,
                    f"{seed}-{index}",
                    unit,
                    clock,  # type: ignore[arg-type]
                    tuple(float(v) for v in chunk),
                )
            )

    add("scheduler_latency", "task_latency", rng.gamma(4.0, 0.02, 150) * slowdown)
    add("hook_latency", "hook_latency_legacy", rng.normal(0.015, 0.002, 90).clip(0.001))
    add("hook_latency", "hook_latency_pooled", rng.normal(0.011, 0.002, 90).clip(0.001))
    add("prp_end_to_end", "makespan_legacy", [1360.0, 1362.0, 1361.0], clock="trace")
    add("prp_end_to_end", "makespan_pooled", [545.0, 546.0, 544.0], clock="trace")
    add("gate_throughput", "gates_per_hour_legacy", [116.0, 117.0, 115.0], "per_hour", "trace")
    add("gate_throughput", "gates_per_hour_pooled", [290.0, 291.0, 289.0], "per_hour", "trace")
    if peers:
        add("graph_vs_langgraph", "ratio_vs_langgraph", [0.42, 0.45, 0.40], "ratio")
        add("graph_vs_langgraph", "overhead_ours", [0.001, 0.0011, 0.0012])
        add("fanout_vs_langgraph", "ratio_vs_langgraph_n16", [0.8, 0.85, 0.82], "ratio")
    return samples


def _verdicts(samples: Sequence[MetricSamples]) -> list[Verdict]:
    verdicts = []
    for target in TARGETS:
        chosen = [s for s in samples if s.workload == target.workload and s.metric == target.metric]
        values = [v for s in chosen for v in s.values]
        rounds = [s.round for s in chosen for _ in s.values]
        verdicts.append(evaluate(target, values, rounds=rounds, resamples=200))
    return verdicts


def _determinism(diverged: bool) -> Determinism:
    results: list[dict[str, Any]] = [
        {
            "trace": f"/repo/workloads/traces/{trace}.jsonl",
            "mode": mode,
            "concurrency": concurrency,
            "jitter": 0.3,
            "seed": 0,
            "deterministic": True,
            "events": 200,
            "makespan_s": 9.5,
        }
        for trace in ("kernel-small", "mcp-tools")
        for mode in ("legacy", "pooled")
        for concurrency in (1, 4)
    ]
    if not diverged:
        return Determinism(
            status=DeterminismStatus.DETERMINISTIC,
            reason=f"{len(results)} replays identical",
            results=results,
        )
    results[-1] = {
        **results[-1],
        "deterministic": False,
        "divergence": {
            "index": 17,
            "field": "events",
            "expected": {"kind": "task.committed", "task_id": "t17", "index": 17},
            "actual": {"kind": "task.committed", "task_id": "t18", "index": 17},
        },
    }
    return Determinism(
        status=DeterminismStatus.DIVERGED,
        reason=f"1 of {len(results)} replays diverged",
        results=results,
    )


def build_report_bundle(
    out_dir: Path,
    run_id: str = "20240105T000000Z-0123456-abcdef",
    *,
    seed: int = 0,
    branch: str = "main",
    started_utc: str = "2024-01-05T00:00:00+00:00",
    peers: bool = True,
    diverged: bool = False,
    slowdown: float = 1.0,
    profiles: Sequence[HotPathProfile] = (),
) -> Path:
    """Write a bundle that exercises every section of the report; its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = make_samples(seed, slowdown=slowdown, peers=peers)
    environment = make_environment()
    dependencies = {**environment.dependencies, **({"langgraph": "0.6.1"} if peers else {})}
    environment = msgspec.structs.replace(
        environment,
        git=GitState(sha=f"{seed:07d}" + "0" * 33, branch=branch, dirty=False),
        dependencies=dependencies,
        system_tuning=["warning: CPU frequency scaling is on"],
        system_tuning_note="not tuned for benchmarking",
    )
    workloads = sorted({s.workload for s in samples}, key=[s.workload for s in samples].index)
    clocks = {s.workload: s.clock for s in samples}
    manifest = Manifest(
        run_id=run_id,
        profile=ProfileRecord(name="fast", processes=3, values=3, warmups=1, min_time_s=0.05),
        workloads=[
            WorkloadRun(
                name=name,
                clock=clocks[name],
                benchmarks=[f"{name}_bench"],
                samples=sum(1 for s in samples if s.workload == name),
                elapsed_s=1.0,
                traces=[],
            )
            for name in workloads
        ],
        started_utc=started_utc,
        finished_utc=started_utc,
        environment=environment,
        traces={"kernel-small": "ab" * 32},
        targets_file="workloads/targets.toml",
        targets_sha256="0" * 64,
        verdicts=_verdicts(samples),
        determinism=_determinism(diverged),
    )
    suite = make_suite({f"{name}_bench": [[0.01, 0.011, 0.012]] * ROUNDS for name in workloads})
    return write_bundle(out_dir, manifest, suite, samples, [], profiles)


def build_history(
    out_dir: Path,
    runs: int = 4,
    *,
    other_branch_runs: int = 1,
    profiles: Sequence[HotPathProfile] = (),
) -> list[Path]:
    """``runs`` bundles of branch main (and some of another branch) appended to the history;
    the last one of main carries ``profiles``."""
    store = HistoryStore(out_dir / HISTORY_FILE)
    paths = []
    for index in range(runs + other_branch_runs):
        branch = "main" if index < runs else "feature"
        path = build_report_bundle(
            out_dir,
            f"2024010{index + 1}T000000Z-{index:07d}-abcdef",
            seed=index,
            branch=branch,
            started_utc=f"2024-01-0{index + 1}T00:00:00+00:00",
            slowdown=1.0 + 0.05 * index,
            profiles=profiles if index == runs - 1 else (),
        )
        store.append_run(load_bundle(path))
        if branch == "main":
            paths.append(path)
    return paths


def comparison_json(path: Path, *, regression: bool = True, warnings: Sequence[str] = ()) -> Path:
    """Write a synthetic ``harness compare --json`` document (schema 1); its path."""
    rows = [
        {
            "workload": "scheduler_latency",
            "metric": "task_latency",
            "statistic": "p95",
            "unit": "s",
            "clock": "wall",
            "rounds": 9,
            "ratio": 1.10 if regression else 1.01,
            "ci_low": 1.06 if regression else 0.98,
            "ci_high": 1.14 if regression else 1.04,
            "p_raw": 0.001,
            "p_adjusted": 0.004,
            "noise": 0.021,
            "mde": 0.035,
            "rounds_needed": None,
            "threshold": 0.05,
            "verdict": "regression" if regression else "no change",
            "direction": "lower is better",
        },
        {
            "workload": "hook_latency",
            "metric": "hook_latency_pooled",
            "statistic": "p95",
            "unit": "s",
            "clock": "wall",
            "rounds": 9,
            "ratio": 0.99,
            "ci_low": 0.95,
            "ci_high": 1.03,
            "p_raw": 0.6,
            "p_adjusted": 0.6,
            "noise": 0.03,
            "mde": 0.048,
            "rounds_needed": 14,
            "threshold": 0.05,
            "verdict": "no change",
            "direction": "lower is better",
        },
    ]
    document = {
        "schema": 1,
        "verdict": "regression" if regression else "pass",
        "method": "bootstrap of per-round ratios (10000 resamples), paired ABBA",
        "fdr_q": 0.05,
        "threshold": 0.05,
        "paired": True,
        "base": {"run_id": "20240101T000000Z-0000000-abcdef", "path": "reports/base"},
        "candidate": {"run_id": "20240105T000000Z-0123456-abcdef", "path": "reports/cand"},
        "warnings": list(warnings),
        "calibration": {"aa_pairs": 5, "false_positives": 0},
        "rows": rows,
    }
    path.write_text(json.dumps(document), encoding="utf-8")
    return path
