"""A fake workload registry for ``harness run`` tests: one tiny real pyperf script.

The real workloads are too slow for unit tests; this one runs pyperf for real
(worker processes, JSON output) and records fixed samples through SampleSink, so
the verdicts do not depend on the machine's speed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import harness.measure.replay
import harness.measure.run
from workloads import registry
from workloads.registry import Profile, WorkloadInfo, latency

FAKE = "fake"
SAMPLE_VALUES = (0.010, 0.020, 0.030)

SCRIPT = """\
import sys

import pyperf

from workloads.samples import SampleSink

FAIL = {fail}


def operation():
    return sum(range(100))


if __name__ == "__main__":
    if FAIL:
        print("setting up the fake workload", file=sys.stderr)
        print("RuntimeError: boom", file=sys.stderr)
        sys.exit(3)
    runner = pyperf.Runner()
    args = runner.parse_args()
    sink = SampleSink("fake")
    if args.worker and not args.calibrate_loops:
        sink.write("op_latency", {values!r}, round_id=sink.next_round())
    runner.bench_func("fake_op", operation)
"""

TARGETS = """\
schema = 1

[[target]]
name = "op_latency_p95"
workload = "fake"
metric = "op_latency"
statistic = "p95"
clock = "wall"
unit = "s"
bound = {bound}
direction = "max"
description = "p95 of the fake operation's recorded latency"

[[target]]
name = "fake_op_pyperf_median"
workload = "fake"
metric = "pyperf"
statistic = "median"
clock = "wall"
unit = "s"
bound = 60.0
direction = "max"
description = "median pyperf value of the fake operation"
"""


def write_targets(directory: Path, bound: float = 0.25, extra: str = "") -> Path:
    """A targets file for the fake workload (p95 of op_latency <= ``bound``)."""
    path = directory / "targets.toml"
    path.write_text(TARGETS.format(bound=bound) + extra, encoding="utf-8")
    return path


def install(monkeypatch: pytest.MonkeyPatch, directory: Path, *, fail: bool = False) -> Path:
    """Make the registry know only the fake workload; its script's path."""
    script = directory / "fake_workload.py"
    script.write_text(SCRIPT.format(fail=fail, values=list(SAMPLE_VALUES)), encoding="utf-8")

    def command(name: str, profile: Profile, output: Path) -> list[str]:
        assert name == FAKE
        return [
            sys.executable,
            str(script),
            *profile.pyperf_args(),
            "--loops=1",
            "--inherit-environ=AGENTBENCH_SAMPLES_DIR,AGENTBENCH_PROFILE",
            "--quiet",
            f"--output={output}",
        ]

    fake = WorkloadInfo(
        FAKE, "a tiny pyperf script", "wall", (latency("op_latency", 1), latency("op_other", 1))
    )
    monkeypatch.setattr(registry, "WORKLOADS", {FAKE: fake})
    monkeypatch.setattr(registry, "command", command)
    monkeypatch.setitem(
        registry.PROFILES,
        "fast",
        Profile("fast", processes=2, values=2, warmups=1, min_time_s=0.001),
    )
    # The real replay of the shipped traces is tested in tests/workloads; here: none.
    monkeypatch.setattr(harness.measure.replay, "check_shipped_traces", lambda profile: [])
    monkeypatch.setattr(
        harness.measure.replay, "collect_metrics", lambda profile, otlp_endpoint: []
    )
    return script
