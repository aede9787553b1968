"""The console script stops cleanly on SIGTERM (a cancelled CI job) as on Ctrl-C."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from harness import cli
from harness.errors import ExitCode


@pytest.fixture
def restore_sigterm() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.usefixtures("restore_sigterm")
def test_sigterm_unwinds_the_command_and_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    released: list[str] = []

    def command() -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100):  # bounded: the signal lands at once or the test fails
                time.sleep(0.05)
            return 0
        finally:
            released.append("worktrees removed")  # what a command's cleanup would do

    monkeypatch.setattr(cli, "main", command)
    with pytest.raises(SystemExit) as stopped:
        cli.entry()
    assert stopped.value.code == ExitCode.INTERRUPTED == 130
    assert released == ["worktrees removed"]
    assert capsys.readouterr().err == "harness: interrupted\n"


@pytest.mark.usefixtures("restore_sigterm")
def test_the_console_script_exits_with_mains_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "main", lambda: 2)
    with pytest.raises(SystemExit) as stopped:
        cli.entry()
    assert stopped.value.code == 2


def test_python_dash_m_harness_is_the_console_script() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "harness", "history", "--db", "/nonexistent/dir/h.sqlite"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == ExitCode.BAD_INPUT, done.stderr
    assert done.stderr.startswith("harness: error: ") and done.stderr.count("\n") == 1
