"""Change points over the stored nights: `harness history --changes` and the nightly's rule."""

from __future__ import annotations

import io
import re
from pathlib import Path

import msgspec
import pytest

from harness.bundle.files import Determinism, DeterminismStatus, WorkloadRun, load_bundle
from harness.bundle.files import write_bundle as write
from harness.cli import main
from harness.cli.nightly import _change_points
from harness.store.db import HISTORY_FILE, HistoryStore
from workloads.samples import MetricSamples

from ._bundles import make_manifest, make_suite


def _night(reports: Path, night: int, makespan: float, latency: float) -> Path:
    """Night ``night``: prp_end_to_end's makespan (trace clock) and a wall-clock latency."""
    run_id = f"2026{night:04d}T000000Z-{night:07d}-aaaaaa"
    manifest = make_manifest(run_id, verdicts=[], started_utc=f"2026-01-01T{night:02d}:00:00")
    environment = msgspec.structs.replace(
        manifest.environment,
        git=msgspec.structs.replace(manifest.environment.git, sha=str(night) * 40),
    )
    samples = [
        MetricSamples("prp_end_to_end", "makespan_pooled", "1-1", "s", "trace", (makespan,)),
        MetricSamples("scheduler_latency", "task_latency", "1-1", "s", "wall", (latency,) * 5),
    ]
    manifest = msgspec.structs.replace(
        manifest,
        environment=environment,
        workloads=[
            WorkloadRun(
                name=name,
                clock=clock,
                benchmarks=[f"{name}_op"],
                samples=1,
                elapsed_s=1.0,
                traces=[],
            )
            for name, clock in (("prp_end_to_end", "trace"), ("scheduler_latency", "wall"))
        ],
        determinism=Determinism(status=DeterminismStatus.DETERMINISTIC, reason=""),
    )
    suite = make_suite(
        {f"{n}_op": [[0.01, 0.01, 0.01]] for n in ("prp_end_to_end", "scheduler_latency")}
    )
    path = write(reports, manifest, suite, samples, [])
    HistoryStore(reports / HISTORY_FILE).append_run(load_bundle(path))
    return path


def test_a_trace_clock_step_is_listed_with_its_commit_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Five nights of one trace, then five of a trace whose gate takes longer."""
    for night in range(10):
        _night(tmp_path, night, 545.4 if night < 5 else 600.0, 0.010)
    assert main(["history", "--changes", "--db", str(tmp_path / HISTORY_FILE)]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "makespan_pooled" in line]
    assert len(lines) == 1, out
    assert "slower x1.100" in lines[0] and "trace clock, exact" in lines[0]
    assert "commits 444444444444..555555555555" in lines[0]
    assert "REGRESSION" in lines[0]
    assert "task_latency" not in out  # a flat wall-clock series has none


def test_too_few_nights_is_one_line_not_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for night in range(3):
        _night(tmp_path, night, 545.4, 0.010)
    assert main(["history", "--changes", "--db", str(tmp_path / HISTORY_FILE)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"series not judged yet: needs \d+ nights, has 3", out), out
    assert "0 found" in out


def test_one_outlier_night_is_never_a_change_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for night in range(12):
        _night(tmp_path, night, 545.4, 0.050 if night == 6 else 0.010 * (1 + 0.002 * night))
    assert main(["history", "--changes", "--db", str(tmp_path / HISTORY_FILE)]) == 0
    assert "task_latency" not in capsys.readouterr().out


def test_the_nightly_fails_on_a_step_tonight_opens(tmp_path: Path) -> None:
    """The step began last night; tonight, its second night, confirms it (exact clock)."""
    for night in range(8):
        path = _night(tmp_path, night, 545.4 if night < 6 else 600.0, 0.010)
    log = io.StringIO()
    assert _change_points(tmp_path / HISTORY_FILE, load_bundle(path).manifest, log) == 1
    assert "1 regression(s) opened tonight" in log.getvalue()
    assert "nightly: change point: prp_end_to_end/makespan_pooled" in log.getvalue()
    # the next night, the same step is known: not opened again
    path = _night(tmp_path, 8, 600.0, 0.010)
    assert _change_points(tmp_path / HISTORY_FILE, load_bundle(path).manifest, io.StringIO()) == 0
