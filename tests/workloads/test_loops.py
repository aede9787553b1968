"""The event loop a workload runs on (``AGENTBENCH_LOOP``, ``harness run --loop``)."""

from __future__ import annotations

import asyncio

import pytest

from workloads import _bench, loops
from workloads.errors import SettingError
from workloads.registry import SKIP_EXIT_STATUS


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.parametrize(("value", "expected"), [(None, "asyncio"), ("", "asyncio")])
def test_unset_or_empty_is_asyncio(
    monkeypatch: pytest.MonkeyPatch, value: str | None, expected: str
) -> None:
    if value is None:
        monkeypatch.delenv(loops.LOOP_ENV, raising=False)
    else:
        monkeypatch.setenv(loops.LOOP_ENV, value)
    assert loops.chosen() is loops.EventLoop.ASYNCIO
    assert loops.run(_loop_module()).startswith(expected)


def test_uvloop_runs_the_round_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(loops.LOOP_ENV, "uvloop")
    assert loops.missing(loops.EventLoop.UVLOOP) == ""  # the dev group installs it
    assert loops.run(_loop_module()) == "uvloop"
    assert _bench.run_async(_loop_module()) == "uvloop"


def test_an_unknown_loop_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(loops.LOOP_ENV, "trio")
    with pytest.raises(SettingError, match=r"^AGENTBENCH_LOOP='trio': expected asyncio or uvloop$"):
        loops.chosen()


def test_a_workload_asked_for_a_missing_loop_skips_itself_with_the_install_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(loops.LOOP_ENV, "uvloop")
    monkeypatch.setattr(loops.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SystemExit) as info:
        _bench.main("pool_overhead", lambda round_, number: 0.0, "never measured")
    assert info.value.code == SKIP_EXIT_STATUS
    assert capsys.readouterr().err == (
        "pool_overhead: skipped: uvloop is not installed: pip install 'agentbench[uvloop]'\n"
    )
