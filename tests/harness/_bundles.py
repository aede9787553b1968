"""Builders of small run bundles for the harness tests (pyperf's API, no workload run)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyperf

from harness.bundle.environment import Environment, Fingerprint, GitState
from harness.bundle.files import (
    Determinism,
    DeterminismStatus,
    Manifest,
    ProfileRecord,
    WorkloadRun,
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
from workloads.samples import MetricSamples


def make_suite(benchmarks: Mapping[str, Sequence[Sequence[float]]]) -> Any:
    """A pyperf suite: per benchmark name, the values of each run (one run = one process)."""
    suite: Any = None
    for name, runs in benchmarks.items():
        bench = pyperf.Benchmark(
            [
                pyperf.Run(
                    list(values),
                    warmups=[(1, values[0])],
                    metadata={"name": name, "unit": "second", "loops": 1},
                    collect_metadata=False,
                )
                for values in runs
            ]
        )
        if suite is None:
            suite = pyperf.BenchmarkSuite([bench])
        else:
            suite.add_benchmark(bench)
    return suite


def make_environment(sha: str | None = "0123456789abcdef0123456789abcdef01234567") -> Environment:
    """A fixed environment (no subprocess)."""
    fingerprint = Fingerprint(
        cpu_model="Test CPU",
        cpu_count=2,
        os="Linux",
        kernel="6.0",
        python_implementation="CPython",
        python_version="3.11.7",
        dependencies={"pyperf": "2.10.0"},
    )
    return Environment(
        git=GitState(sha=sha, branch="main", dirty=False),
        machine="x86_64",
        hostname="test",
        cpu_model="Test CPU",
        cpu_count=2,
        cpu_affinity=2,
        os="Linux",
        kernel="6.0",
        python_implementation="CPython",
        python_version="3.11.7",
        python_executable="/usr/bin/python3",
        dependencies={"pyperf": "2.10.0"},
        system_tuning=[],
        system_tuning_note="not run",
        fingerprint=fingerprint,
        fingerprint_digest=fingerprint.digest,
    )


LATENCY_TARGET = Target(
    name="op_latency_p95",
    workload="fake",
    metric="op_latency",
    statistic=Statistic.P95,
    clock=Clock.WALL,
    unit=Unit.SECONDS,
    bound=0.25,
    direction=Direction.MAX,
    description="p95 of a fake operation",
    line=3,
)


def make_samples() -> list[MetricSamples]:
    """Two rounds of a fake workload's latency samples."""
    return [
        MetricSamples("fake", "op_latency", "1-1", "s", "wall", (0.010, 0.020, 0.030)),
        MetricSamples("fake", "op_latency", "1-2", "s", "wall", (0.012, 0.022, 0.032)),
    ]


def make_manifest(
    run_id: str = "20240101T000000Z-0123456-abcdef",
    *,
    verdicts: Sequence[Verdict] | None = None,
    started_utc: str = "2024-01-01T00:00:00+00:00",
) -> Manifest:
    """A manifest of one fake workload whose pyperf benchmark is ``fake_op``."""
    if verdicts is None:
        samples = make_samples()
        values = [v for s in samples for v in s.values]
        rounds = [s.round for s in samples for _ in s.values]
        verdicts = [evaluate(LATENCY_TARGET, values, rounds=rounds)]
    return Manifest(
        run_id=run_id,
        profile=ProfileRecord(name="fast", processes=2, values=3, warmups=1, min_time_s=0.01),
        workloads=[
            WorkloadRun(
                name="fake",
                clock="wall",
                benchmarks=["fake_op"],
                samples=2,
                elapsed_s=1.0,
                traces=[],
            )
        ],
        started_utc=started_utc,
        finished_utc=started_utc,
        environment=make_environment(),
        traces={},
        targets_file="targets.toml",
        targets_sha256="0" * 64,
        verdicts=list(verdicts),
        determinism=Determinism(status=DeterminismStatus.NOT_RUN, reason="test"),
    )


def build_bundle(
    out_dir: Path, run_id: str = "20240101T000000Z-0123456-abcdef", **manifest: Any
) -> Path:
    """Write a complete small bundle under ``out_dir``; its path."""
    suite = make_suite({"fake_op": [[0.001, 0.0011, 0.0012], [0.0010, 0.0013, 0.0011]]})
    metrics = [{"name": "kernel.pool.active", "kind": "gauge", "unit": "{job}", "attributes": {}}]
    return write_bundle(out_dir, make_manifest(run_id, **manifest), suite, make_samples(), metrics)
