"""Determinism that leans on Python's salted hash(): caught across processes, named by event.

A scheduler tie-break through ``hash()`` is planted in this process by monkeypatching
and in child processes by a ``sitecustomize`` module on their ``PYTHONPATH`` (Python
imports it at startup), so that no production code needs a test hook.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import reference_impl.kernel.scheduler as scheduler
from harness.cli import main
from harness.errors import HarnessError, TraceError
from harness.measure.replay import (
    SecondRecording,
    replay_trace,
    settings_matrix,
)
from reference_impl.kernel.scheduler import TaskSpec
from reference_impl.mode import Mode
from reference_impl.pool import OrderedPool
from workloads.registry import trace_path
from workloads.scenarios import record

PLANT = '''\
"""Test plant: the kernel scheduler breaks priority ties with Python's salted hash()."""
import reference_impl.kernel.scheduler as scheduler


def _order_key(seed):
    def key(task):
        return (task.priority, hash(task.task_id))

    return key


scheduler._order_key = _order_key
'''


def _salted_order_key(seed: int) -> Callable[[TaskSpec], tuple[int, int]]:
    del seed

    def key(task: TaskSpec) -> tuple[int, int]:
        return (task.priority, hash(task.task_id))

    return key


@pytest.fixture
def salted_children(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Child processes (replay workers, second recordings) get the salted tie-break."""
    plant = tmp_path / "plant"
    plant.mkdir()
    (plant / "sitecustomize.py").write_text(PLANT)
    existing = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(plant), existing])))


@pytest.fixture
def salted_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process gets the salted tie-break too."""
    monkeypatch.setattr(scheduler, "_order_key", _salted_order_key)


def test_settings_are_dealt_to_processes_of_each_hash_seed() -> None:
    settings = settings_matrix([Mode.POOLED], [1, 4, 16], jitter=0.3, runs=1, seed=3)
    report = replay_trace(trace_path("kernel-small"), settings, hash_seeds=(5, 6))
    assert [v.deterministic for v in report.verdicts] == [True, True, True]
    assert [v.hash_seed for v in report.verdicts] == [5, 6, 5]
    assert [v.setting for v in report.verdicts] == settings
    assert [v.as_json()["hash_seed"] for v in report.verdicts] == [5, 6, 5]


@pytest.mark.usefixtures("salted_here", "salted_children")
def test_a_salted_tie_break_hides_in_one_process_and_shows_across_hash_seeds(
    tmp_path: Path,
) -> None:
    trace = tmp_path / "salted.jsonl"
    record("kernel-small", 1, trace)  # recorded in this process: its footer agrees with it
    settings = settings_matrix([Mode.LEGACY, Mode.POOLED], [4], jitter=0.3, runs=1, seed=0)

    alone = replay_trace(trace, settings)  # the blind spot: one process, one hash seed
    assert all(v.deterministic for v in alone.verdicts)

    across = replay_trace(trace, settings, hash_seeds=(1, 2))
    assert not any(v.deterministic for v in across.verdicts)
    for verdict in across.verdicts:
        divergence = verdict.divergence
        assert divergence is not None
        # Neither seed reproduces this process's footer, and they differ from each other:
        # the first event where they do is named, in full, with the hash seeds.
        assert divergence.index >= 0
        assert divergence.expected is not None and divergence.actual is not None
        assert divergence.expected["seq"] == divergence.actual["seq"] == divergence.index
        assert divergence.expected["task_id"] != divergence.actual["task_id"]
        assert "depends on the hash seed" in divergence.field
        assert verdict.reproduce().startswith(f"PYTHONHASHSEED={verdict.hash_seed} harness replay")


@pytest.mark.usefixtures("salted_children")
def test_the_seed_that_reproduces_the_footer_names_the_event_and_the_reproduce_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "seed7.jsonl"
    with SecondRecording("kernel-small", 1, 7) as recording:  # recorded under seed 7
        trace.write_bytes(recording.data())
    argv = ["replay", str(trace), "--mode", "pooled", "--concurrency", "1,4", "--runs", "1"]
    assert main([*argv, "--hash-seeds", "7,8"]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"{trace}: 2 settings, PYTHONHASHSEED=7,8"
    assert lines[1].startswith("  ok       --mode pooled --concurrency 1 ")
    assert lines[2].startswith("  DIVERGED --mode pooled --concurrency 4 ")
    assert "first diverging event: #" in lines[3]
    assert "reproduces the footer under PYTHONHASHSEED=7 but not under PYTHONHASHSEED=8" in out
    assert lines[4].lstrip().startswith("expected: {") and lines[5].lstrip().startswith("actual:")
    assert (
        f"reproduce: PYTHONHASHSEED=8 harness replay {trace} --mode pooled --concurrency 4 "
        "--jitter 0.3 --seed 0 --runs 1"
    ) in out
    assert "#-1" not in out


@pytest.mark.usefixtures("salted_here", "salted_children")
def test_record_refuses_a_trace_that_depends_on_the_hash_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.jsonl"
    assert main(["record", "--scenario", "kernel-small", "--seed", "1", "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    header, *rest = printed.splitlines()
    assert header.startswith("NOT REPRODUCIBLE: kernel-small seed 1 recorded under ")
    assert header.endswith("differs at line 202 (footer)")  # header + 200 tasks, then footer
    assert "first diverging event: #" in printed
    assert "expected: {" in printed and "actual:   {" in printed
    assert f"nothing was written to {out}" in rest[-1]
    assert not out.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_record_writes_when_both_recordings_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.jsonl"
    assert main(["record", "--scenario", "mcp-tools", "--seed", "2", "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out} (")
    with SecondRecording("mcp-tools", 2, 3) as recording:
        assert out.read_bytes() == recording.data()


def test_a_bad_trace_in_a_child_is_the_same_one_line_trace_error(tmp_path: Path) -> None:
    edited = tmp_path / "edited.jsonl"
    shutil.copy(trace_path("kernel-small"), edited)
    lines = edited.read_text().splitlines()
    lines[5] = lines[5].replace('"priority":', '"priority":9,"_":', 1)
    edited.write_text("\n".join(lines) + "\n")
    with pytest.raises(TraceError) as info:
        replay_trace(edited, settings_matrix([Mode.POOLED], [4], 0.0, 1, 0), hash_seeds=(1,))
    assert f"{edited}:6" in str(info.value)


def test_a_child_that_dies_is_a_harness_error_with_its_last_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant = tmp_path / "plant"
    plant.mkdir()
    (plant / "sitecustomize.py").write_text("raise SystemExit('planted: the worker died')\n")
    monkeypatch.setenv("PYTHONPATH", str(plant))
    settings = settings_matrix([Mode.POOLED], [4], 0.0, 1, 0)
    with pytest.raises(HarnessError, match="stopped after 0 of 1 runs") as info:
        replay_trace(trace_path("kernel-small"), settings, hash_seeds=(1,))
    assert "planted: the worker died" in str(info.value)
    assert "PYTHONHASHSEED=1" in str(info.value)


def test_a_pool_factory_cannot_cross_into_a_child() -> None:
    with pytest.raises(ValueError, match="pool_factory"):
        replay_trace(
            trace_path("kernel-small"),
            settings_matrix([Mode.POOLED], [4], 0.0, 1, 0),
            hash_seeds=(1,),
            pool_factory=OrderedPool,
        )
