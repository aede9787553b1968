"""The instruction clock: its arithmetic, its one-line refusal, and exact counts under valgrind.

The tests marked ``slow`` run cachegrind for real (about 6 s of CPU per
measurement). Without valgrind they skip on a developer's machine and fail in CI
(``CI`` set), where its absence would otherwise hide them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path

import pytest

from reference_impl import pool as pool_module
from reference_impl.errors import ConfigError
from reference_impl.pool import INJECT_CPU_ENV, OrderedPool, injected_cpu
from workloads import _instr_ops
from workloads.errors import WorkloadsError
from workloads.instructions import (
    INSTRUCTION_OPS,
    InstructionFigure,
    InstructionsError,
    InstructionsUnavailable,
    _parse_summary,
    measure,
    measure_all,
    require_tools,
)

HAVE_VALGRIND = shutil.which("valgrind") is not None and shutil.which("setarch") is not None


def _require_valgrind() -> None:
    """Skip without valgrind, except in CI, where its absence is a failure."""
    if HAVE_VALGRIND:
        return
    if os.environ.get("CI"):
        pytest.fail("valgrind is missing in CI: apt-get install valgrind")
    pytest.skip("valgrind is not installed (apt-get install valgrind)")


class FakeCount:
    """Counts ``base + per_unit x size`` and remembers what it was asked."""

    def __init__(self, base: int, per_unit: int) -> None:
        self.base = base
        self.per_unit = per_unit
        self.calls: list[tuple[str, int, dict[str, str]]] = []

    def __call__(self, op: str, size: int, env: Mapping[str, str]) -> int:
        self.calls.append((op, size, dict(env)))
        return self.base + self.per_unit * size


# -- the table and the arithmetic ----------------------------------------------------


def test_every_op_has_an_entry_point_and_a_distinct_metric() -> None:
    names = [op.name for op in INSTRUCTION_OPS]
    metrics = [op.metric for op in INSTRUCTION_OPS]
    assert set(names) == set(_instr_ops.OPS)
    assert len(set(metrics)) == len(metrics)
    assert all(op.unit == "instructions" and op.n >= 1 for op in INSTRUCTION_OPS)


def test_per_op_is_the_difference_of_two_sizes_over_n() -> None:
    count = FakeCount(base=300_000_000, per_unit=10_145)
    figure = measure("pool_item_c1", n=2000, env={INJECT_CPU_ENV: "0.1"}, count=count)
    assert figure == InstructionFigure(
        op="pool_item_c1",
        metric="instructions_pool_item_c1",
        n=2000,
        instructions_n=300_000_000 + 10_145 * 2000,
        instructions_0=300_000_000,
        per_op=10_145.0,
        wall_s=figure.wall_s,
    )
    # Both sizes ran, with the same extra environment.
    assert sorted(size for _, size, _ in count.calls) == [0, 2000]
    assert all(env == {INJECT_CPU_ENV: "0.1"} for _, _, env in count.calls)


def test_per_op_keeps_a_fraction_and_uses_the_op_default_n() -> None:
    totals = {0: 1000, 3: 1007}
    figure = measure("proof_import_legacy", count=lambda _op, size, _env: totals[size])
    assert (figure.n, figure.instructions_n, figure.instructions_0) == (3, 1007, 1000)
    assert figure.per_op == 7 / 3


def test_measure_all_measures_each_named_op_once_in_order() -> None:
    count = FakeCount(base=10, per_unit=3)
    seen: list[str] = []
    figures = measure_all(
        ["telemetry_record", "pool_item_c4"], count=count, on_figure=lambda f: seen.append(f.op)
    )
    assert [f.op for f in figures] == seen == ["telemetry_record", "pool_item_c4"]
    assert [f.per_op for f in figures] == [3.0, 3.0]
    assert sorted((op, size) for op, size, _ in count.calls) == [
        ("pool_item_c4", 0),
        ("pool_item_c4", 2000),
        ("telemetry_record", 0),
        ("telemetry_record", 1000),
    ]


def test_an_unknown_op_or_a_size_below_one_is_refused() -> None:
    count = FakeCount(base=0, per_unit=1)
    with pytest.raises(ValueError, match="unknown instruction op 'nope'"):
        measure("nope", count=count)
    with pytest.raises(ValueError, match="unknown instruction op 'nope'"):
        measure_all(["pool_item_c1", "nope"], count=count)
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        measure("pool_item_c1", n=0, count=count)
    assert count.calls == []


def test_the_ir_total_is_read_from_the_summary_line() -> None:
    text = "desc: I1 cache\ncmd: python\nevents: Ir I1mr ILmr\nfl=x\n1 2 3 4\nsummary: 987 12 3\n"
    assert _parse_summary(text, "out") == 987
    with pytest.raises(InstructionsError, match="out: no 'summary:' line with an Ir count"):
        _parse_summary("events: Ir\n", "out")


# -- unavailable ------------------------------------------------------------------------


def _fake_tool(directory: Path, name: str) -> None:
    tool = directory / name
    tool.write_text(f"#!/bin/sh\necho '{name}: broken here' >&2\nexit 3\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)


def test_without_valgrind_one_line_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_tool(tmp_path, "setarch")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InstructionsUnavailable) as caught:
        measure("pool_item_c1")
    message = str(caught.value)
    assert "\n" not in message
    assert "valgrind" in message and "apt-get install valgrind" in message
    assert isinstance(caught.value, WorkloadsError)
    with pytest.raises(InstructionsUnavailable, match="apt-get install valgrind"):
        measure_all()


def test_without_setarch_the_line_names_setarch(tmp_path: Path) -> None:
    _fake_tool(tmp_path, "valgrind")
    with pytest.raises(InstructionsUnavailable, match=r"setarch .*apt-get install util-linux"):
        require_tools(str(tmp_path))


def test_a_failing_process_is_one_line_with_its_last_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_tool(tmp_path, "setarch")
    _fake_tool(tmp_path, "valgrind")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    with pytest.raises(InstructionsError) as caught:
        measure("pool_item_c1", n=10)
    assert str(caught.value) == "cachegrind pool_item_c1 10: exit status 3: setarch: broken here"


# -- the entry points ---------------------------------------------------------------------


# Runs every entry point in one process, failing if any starts a thread: a thread's
# scheduling under valgrind depends on timing, so it would make the counts inexact.
_NO_THREAD = """
import sys, threading
def refuse(self):
    raise RuntimeError(f"an entry point started a thread: {self.name}")
threading.Thread.start = refuse
from workloads import _instr_ops
sys.exit(_instr_ops.main([",".join(_instr_ops.OPS), "2"]))
"""


def test_every_entry_point_runs_without_valgrind_and_starts_no_thread() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _NO_THREAD],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("argv", [[], ["pool_item_c1"], ["nope", "1"], ["pool_item_c1", "-1"]])
def test_the_entry_point_refuses_bad_arguments(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _instr_ops.main(argv) == 2
    assert capsys.readouterr().err.startswith("usage: python -m workloads._instr_ops")


# -- the planted CPU slowdown: the switch ----------------------------------------------


@pytest.fixture
def fresh_switch() -> Iterator[None]:
    """The pool reads the switch once per process: forget it around the test."""
    pool_module._cpu_burn.cache_clear()
    yield
    pool_module._cpu_burn.cache_clear()


@pytest.mark.parametrize("text", ["abc", "-0.1", "nan", "inf", "10", "1e3"])
def test_a_bad_inject_cpu_value_is_a_config_error_naming_the_variable(
    text: str, monkeypatch: pytest.MonkeyPatch, fresh_switch: None
) -> None:
    monkeypatch.setenv(INJECT_CPU_ENV, text)
    with pytest.raises(ConfigError, match=rf"^{INJECT_CPU_ENV}: '{text}': expected a fraction"):
        injected_cpu()
    with pytest.raises(ConfigError):
        OrderedPool(1)


@pytest.mark.parametrize(("text", "value"), [("", 0.0), (" ", 0.0), ("0", 0.0), ("0.1", 0.1)])
def test_inject_cpu_is_off_by_default_and_reads_a_fraction(
    text: str, value: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(INJECT_CPU_ENV, text)
    assert injected_cpu() == value
    monkeypatch.delenv(INJECT_CPU_ENV)
    assert injected_cpu() == 0.0


def test_the_planted_slowdown_changes_no_commit(
    monkeypatch: pytest.MonkeyPatch, fresh_switch: None
) -> None:
    monkeypatch.setenv(INJECT_CPU_ENV, "0.5")
    pool: OrderedPool[int] = OrderedPool(4)
    assert pool._cpu_burn > 0

    def job(index: int) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            return index

        return run

    assert asyncio.run(pool.map([job(i) for i in range(50)])) == list(range(50))


# -- under valgrind (slow) ------------------------------------------------------------------

# Fewer items than the table's 2000: the count is exact, so a smaller n loses nothing.
POOL_ITEMS = 500


@pytest.fixture(scope="module")
def pool_baseline() -> InstructionFigure:
    _require_valgrind()
    return measure("pool_item_c1", n=POOL_ITEMS, env={INJECT_CPU_ENV: "0"})


@pytest.mark.slow
def test_two_measurements_give_identical_counts(pool_baseline: InstructionFigure) -> None:
    again = measure("pool_item_c1", n=POOL_ITEMS, env={INJECT_CPU_ENV: "0"})
    assert again.per_op == pool_baseline.per_op
    assert (again.instructions_n, again.instructions_0) == (
        pool_baseline.instructions_n,
        pool_baseline.instructions_0,
    )
    # A pool item is thousands of instructions, start-up hundreds of millions.
    assert 1_000 < pool_baseline.per_op < 100_000
    assert pool_baseline.instructions_0 > 10_000_000


@pytest.mark.slow
@pytest.mark.parametrize(("fraction", "low", "high"), [("0.01", 0.005, 0.02), ("0.10", 0.08, 0.12)])
def test_the_planted_cpu_slowdown_raises_the_pool_item_count_by_its_fraction(
    pool_baseline: InstructionFigure, fraction: str, low: float, high: float
) -> None:
    slowed = measure("pool_item_c1", n=POOL_ITEMS, env={INJECT_CPU_ENV: fraction})
    rise = slowed.per_op / pool_baseline.per_op - 1.0
    assert low <= rise <= high, f"{INJECT_CPU_ENV}={fraction}: the count rose by {rise:.2%}"


def test_the_developer_entry_point_refuses_an_unknown_op_with_usage_and_status_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from workloads.instructions import main

    with pytest.raises(SystemExit) as info:
        main(["pool_item_c1", "../etc"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown op '../etc'; expected one of pool_item_c1," in err
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0 and "cachegrind" in capsys.readouterr().out
