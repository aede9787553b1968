"""Trace format, record -> replay round trips, and first-divergence diagnostics."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main as harness_main
from harness.errors import TraceError
from harness.measure.replay import replay_trace, settings_matrix
from reference_impl.mode import Mode
from reference_impl.pool import OrderedPool, PoolRun
from workloads.registry import trace_path
from workloads.scenarios import record
from workloads.trace import TraceFormatError, iter_inputs, trace_id

SHIPPED = ["kernel-small", "mcp-tools", "prp-nightly"]
BOTH = [Mode.LEGACY, Mode.POOLED]


class CompletionOrderPool(OrderedPool[Any]):
    """A deliberately broken pool: commits results in completion order (tests only)."""

    async def run(
        self,
        jobs: Iterable[Callable[[], Awaitable[Any]]],
        on_commit: Callable[[int, Any], object] | None = None,
    ) -> PoolRun:
        async def indexed(index: int, job: Callable[[], Awaitable[Any]]) -> tuple[int, Any]:
            return index, await job()

        tasks = [asyncio.ensure_future(indexed(i, j)) for i, j in enumerate(jobs)]
        for next_done in asyncio.as_completed(tasks):
            index, value = await next_done
            if on_commit is not None:
                on_commit(index, value)
        return PoolRun(len(tasks), len(tasks), 0, 0, ())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_traces_replay_deterministically_in_both_modes(name: str) -> None:
    settings = settings_matrix(BOTH, [1, 4, 16], jitter=0.3, runs=1, seed=7)
    report = replay_trace(trace_path(name), settings)
    assert [v.deterministic for v in report.verdicts] == [True] * len(settings)


def test_record_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl.gz"
    record("kernel-small", 3, first)
    record("kernel-small", 3, second)
    assert first.read_bytes() == gzip.decompress(second.read_bytes())
    assert trace_id(first) == trace_id(tmp_path / "a.jsonl")
    record("kernel-small", 4, tmp_path / "c.jsonl")
    assert trace_id(tmp_path / "c.jsonl") != trace_id(first)


def test_a_pool_committing_in_completion_order_is_caught_at_the_first_event() -> None:
    settings = settings_matrix([Mode.POOLED], [4], jitter=0.5, runs=1, seed=1)
    report = replay_trace(
        trace_path("kernel-small"), settings, pool_factory=lambda width: CompletionOrderPool(width)
    )
    (verdict,) = report.verdicts
    assert not verdict.deterministic
    divergence = verdict.divergence
    assert divergence is not None
    assert divergence.index >= 0
    assert divergence.expected is not None and divergence.actual is not None
    assert divergence.expected["seq"] == divergence.actual["seq"] == divergence.index
    assert divergence.expected["task_id"] != divergence.actual["task_id"]
    assert "first diverging event: #" in divergence.describe()


def test_a_hand_edited_duration_is_caught_by_the_footer(tmp_path: Path) -> None:
    edited = tmp_path / "edited.jsonl"
    lines = trace_path("kernel-small").read_text().splitlines()
    task = json.loads(lines[5])
    task["duration_s"] = task["duration_s"] + 0.001
    lines[5] = json.dumps(task, sort_keys=True, separators=(",", ":"))
    edited.write_text("\n".join(lines) + "\n")
    with pytest.raises(TraceError, match="inputs_digest"):
        replay_trace(edited, settings_matrix([Mode.POOLED], [4], 0.0, 1, 0))


def _bad_trace(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    return path


def _good_lines() -> list[str]:
    return trace_path("kernel-small").read_text().splitlines()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda lines: lines[:-1], "no footer"),
        (lambda lines: [lines[0].replace('"schema":1', '"schema":9'), *lines[1:]], "schema"),
        (lambda lines: [lines[0], "{not json", *lines[1:]], "not JSON"),
        (lambda lines: [lines[0], '{"type":"teleport"}', *lines[1:]], "unknown record type"),
        (
            lambda lines: [
                lines[0],
                lines[1].replace('"priority":', '"priority":"x","p":'),
                *lines[2:],
            ],
            "priority",
        ),
        (lambda lines: lines[1:], "not a header"),
        (lambda lines: [], "empty file"),
    ],
    ids=["truncated", "schema", "non-json", "unknown-type", "bad-field", "no-header", "empty"],
)
def test_bad_traces_give_one_clear_error(
    tmp_path: Path, mutate: Callable[[list[str]], list[str]], message: str
) -> None:
    path = _bad_trace(tmp_path, "\n".join(mutate(_good_lines())) + "\n")
    with pytest.raises(TraceFormatError, match=message) as info:
        list(iter_inputs(path))
    assert str(path) in str(info.value)


def test_bad_field_error_names_line_and_field(tmp_path: Path) -> None:
    lines = _good_lines()
    lines[3] = lines[3].replace('"priority":', '"priority":"high","_":')
    path = _bad_trace(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(TraceFormatError) as info:
        list(iter_inputs(path))
    assert info.value.line == 4
    assert info.value.field == "$.priority"
    assert "Expected `int`" in info.value.message


def test_cli_replay_exit_statuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "kernel-small.jsonl"
    shutil.copy(trace_path("kernel-small"), good)
    assert harness_main(["replay", str(good), "--concurrency", "1,4", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "4/4 settings deterministic" in out
    truncated = _bad_trace(tmp_path, "\n".join(_good_lines()[:-1]) + "\n")
    assert harness_main(["replay", str(truncated)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "no footer" in err[0] and str(truncated) in err[0]


def test_cli_record_writes_a_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "t.jsonl"
    assert (
        harness_main(["record", "--scenario", "mcp-tools", "--seed", "2", "--out", str(out)]) == 0
    )
    assert "wrote" in capsys.readouterr().out
    assert harness_main(["record", "--scenario", "nope", "--seed", "2", "--out", str(out)]) == 2
    assert "unknown scenario" in capsys.readouterr().err
