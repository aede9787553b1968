"""The demonstration command runs the bundled example in both modes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reference_impl.prp.demo import main

ROOT = Path(__file__).resolve().parents[3]


def test_the_demo_prints_gates_order_and_both_makespans(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in (
        "PRP_SPOOL_CONCURRENCY",
        "PRP_SPOOL_MAX_CONCURRENCY",
        "PRP_APPROVAL_BATCH_SIZE",
    ):
        monkeypatch.delenv(variable, raising=False)
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "merge-approval" in out and "design-review" in out
    assert "commit order: checkout -> build -> lint" in out
    assert "legacy  makespan    2011 s (33m31s)" in out
    assert "pooled  makespan     870 s (14m30s)" in out
    assert "speed-up 2.31x; same order, events and evidence digest: yes" in out
    assert len(out.splitlines()) < 30


def test_the_demo_runs_as_a_module_and_reports_bad_config_in_one_line() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PRP_SPOOL_CONCURRENCY": "2"}
    done = subprocess.run(
        [sys.executable, "-m", "reference_impl.prp.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "pooled  makespan" in done.stdout and "concurrency 2..4" in done.stdout
    env["PRP_SPOOL_CONCURRENCY"] = "many"
    bad = subprocess.run(
        [sys.executable, "-m", "reference_impl.prp.demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr == ("error: PRP_SPOOL_CONCURRENCY: expected a positive integer, got 'many'\n")
