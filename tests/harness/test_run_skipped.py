"""``harness run`` with a workload that skips itself: shown, recorded, never silently dropped."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from harness.bundle.files import load_bundle
from harness.bundle.verdicts import TargetOutcome
from harness.errors import WorkloadError
from harness.measure.run import (
    RunOptions,
    format_table,
    run,
)
from harness.store.db import HistoryStore
from workloads import registry
from workloads.registry import Profile, WorkloadInfo, latency

from . import _fake_workload as fake

PEER = "peer"
SKIP_LINE = registry.skip_line(PEER, "PeerLib is not installed; pip install 'agentbench[peers]'")

PEER_TARGET = """
[[target]]
name = "peer_ratio"
workload = "peer"
metric = "ratio_vs_peer"
statistic = "median"
clock = "wall"
unit = "ratio"
bound = 1.0
direction = "max"
description = "a target of the workload that skips itself"
"""


def _install(monkeypatch: pytest.MonkeyPatch, directory: Path, *, peer_script: str) -> None:
    """The fake workload that runs, and ``peer`` running ``peer_script``."""
    fake.install(monkeypatch, directory)
    fake_command = registry.command
    script = directory / "peer_workload.py"
    script.write_text(peer_script, encoding="utf-8")

    def command(name: str, profile: Profile, output: Path) -> list[str]:
        if name == PEER:
            return [sys.executable, str(script)]
        return fake_command(name, profile, output)

    peer = WorkloadInfo(
        PEER, "a workload whose peer is absent", "wall", (latency("ratio_vs_peer", 1),)
    )
    monkeypatch.setattr(registry, "WORKLOADS", {**registry.WORKLOADS, PEER: peer})
    monkeypatch.setattr(registry, "command", command)


def _skipping(line: str) -> str:
    """A script that writes a setup line, then ``line``, and exits with the skip status."""
    return "\n".join(
        (
            "import sys",
            "print('setting up', file=sys.stderr)",
            f"print({line!r}, file=sys.stderr)",
            f"sys.exit({registry.SKIP_EXIT_STATUS})",
        )
    )


def _options(tmp_path: Path, bound: float = 0.25, **overrides: object) -> RunOptions:
    targets = fake.write_targets(tmp_path, bound=bound, extra=PEER_TARGET)
    return RunOptions(
        profile="fast",
        out_dir=tmp_path / "reports",
        targets_path=targets,
        system_show=False,
        **overrides,  # type: ignore[arg-type]
    )


def test_a_skipped_workload_is_shown_recorded_and_does_not_fail_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(monkeypatch, tmp_path, peer_script=_skipping(SKIP_LINE))
    progress = io.StringIO()
    result = run(_options(tmp_path), progress=progress)

    shown = progress.getvalue()
    assert f"[2/2] {PEER} ... SKIPPED" in shown
    assert f"    {SKIP_LINE}\n" in shown
    assert "setting up" not in shown
    manifest = load_bundle(result.bundle_path).manifest
    runs = {w.name: w for w in manifest.workloads}
    assert runs[PEER].skipped == SKIP_LINE
    assert runs[PEER].benchmarks == []
    assert runs[PEER].samples == 0
    assert runs["fake"].skipped == ""
    outcomes = {v.target.name: v.outcome for v in manifest.verdicts}
    assert outcomes["peer_ratio"] is TargetOutcome.SKIPPED
    assert outcomes["op_latency_p95"] is TargetOutcome.PASS
    assert result.exit_status == 0
    table = format_table(manifest.verdicts, manifest.determinism)
    assert any(line.startswith("peer_ratio") and "SKIPPED" in line for line in table.splitlines())
    stored = HistoryStore(tmp_path / "reports" / "history.sqlite").query(
        "SELECT target, outcome, value FROM verdicts WHERE target = 'peer_ratio'"
    )
    assert stored["outcome"].tolist() == ["skipped"]


def test_a_skip_does_not_hide_a_missed_target_of_another_workload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(monkeypatch, tmp_path, peer_script=_skipping(SKIP_LINE))
    result = run(_options(tmp_path, bound=0.001, history=False), progress=io.StringIO())
    assert {v.target.name: v.outcome for v in result.manifest.verdicts}["peer_ratio"] is (
        TargetOutcome.SKIPPED
    )
    assert result.exit_status == 1


def test_the_skip_status_without_its_line_is_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(monkeypatch, tmp_path, peer_script=_skipping("Traceback: something broke"))
    progress = io.StringIO()
    with pytest.raises(WorkloadError, match=f"exited with status {registry.SKIP_EXIT_STATUS}"):
        run(_options(tmp_path), progress=progress)
    assert f"FAILED (exit status {registry.SKIP_EXIT_STATUS})" in progress.getvalue()


def test_a_run_whose_every_workload_skipped_itself_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(monkeypatch, tmp_path, peer_script=_skipping(SKIP_LINE))
    progress = io.StringIO()
    with pytest.raises(WorkloadError, match="nothing was measured"):
        run(_options(tmp_path, workloads=(PEER,)), progress=progress)
    assert f"    {SKIP_LINE}\n" in progress.getvalue()
    assert list((tmp_path / "reports").iterdir()) == []
