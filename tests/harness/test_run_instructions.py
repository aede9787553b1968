"""The instruction clock inside `harness run`: its samples, and its skip without valgrind."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from harness.errors import WorkloadSkipped
from harness.measure.workload_process import Progress, instruction_samples
from workloads import instructions, registry


def test_without_valgrind_the_instruction_rows_are_skipped_saying_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no valgrind on it
    with pytest.raises(WorkloadSkipped) as skipped:
        instruction_samples({}, Progress(io.StringIO(), 1), 1)
    line = skipped.value.line
    assert line.startswith("instructions: skipped: ")
    assert "apt-get install valgrind" in line and "\n" not in line


def test_each_counted_path_is_one_sample_on_the_instruction_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, object] = {}

    def measure_all(**kwargs: object) -> list[instructions.InstructionFigure]:
        seen.update(kwargs)
        return [
            instructions.InstructionFigure(
                op=op.name,
                metric=op.metric,
                n=op.n,
                instructions_n=1_000_000,
                instructions_0=900_000,
                per_op=100_000 / op.n,
                wall_s=1.0,
            )
            for op in instructions.INSTRUCTION_OPS
        ]

    monkeypatch.setattr(instructions, "require_tools", lambda: None)
    monkeypatch.setattr(instructions, "measure_all", measure_all)
    env = {"AGENTBENCH_INJECT_CPU": "0.01", "HOME": "/root"}
    samples, _ = instruction_samples(env, Progress(io.StringIO(), 1), 1)
    assert seen["env"] == {"AGENTBENCH_INJECT_CPU": "0.01"}  # the planted switch goes through
    info = registry.WORKLOADS[registry.INSTRUCTIONS]
    assert [s.metric for s in samples] == list(info.metric_names)
    assert {(s.workload, s.unit, s.clock) for s in samples} == {
        ("instructions", "instructions", "instructions")
    }
