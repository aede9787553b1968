"""``harness.measure.run.run`` end to end, on a fake registry running a tiny real pyperf script."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pytest

import harness.measure.replay
import harness.measure.run
from harness.bundle.files import DeterminismStatus, load_bundle
from harness.bundle.verdicts import (
    TargetOutcome,
    Unit,
    format_quantity,
)
from harness.errors import EnvironmentRefused, TargetsError, TraceError, WorkloadError
from harness.measure.run import (
    RunOptions,
    format_table,
    run,
)
from harness.store.db import HistoryStore
from reference_impl.telemetry import MetricPoint
from workloads import registry
from workloads.registry import WorkloadInfo, latency

from . import _fake_workload as fake


def _options(tmp_path: Path, targets: Path, **overrides: object) -> RunOptions:
    values: dict[str, object] = {
        "profile": "fast",
        "out_dir": tmp_path / "reports",
        "targets_path": targets,
        "system_show": False,
    }
    values.update(overrides)
    return RunOptions(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _ReplayVerdict:
    trace: str
    deterministic: bool

    def as_json(self) -> dict[str, object]:
        return {"trace": self.trace, "deterministic": self.deterministic}


def test_run_writes_a_valid_bundle_and_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.install(monkeypatch, tmp_path)
    progress = io.StringIO()
    result = run(_options(tmp_path, fake.write_targets(tmp_path)), progress=progress)

    assert result.exit_status == 0
    assert result.bundle_path.parent == tmp_path / "reports"
    bundle = load_bundle(result.bundle_path)
    manifest = bundle.manifest
    assert manifest.run_id == result.bundle_path.name
    assert [w.name for w in manifest.workloads] == ["fake"]
    assert manifest.workloads[0].benchmarks == ["fake_op"]
    assert manifest.profile.name == "fast"
    assert manifest.determinism.status is DeterminismStatus.NOT_RUN
    assert manifest.determinism.reason == "no trace to replay"
    assert manifest.environment.fingerprint_digest == manifest.environment.fingerprint.digest
    assert {v.target.name: v.outcome for v in manifest.verdicts} == {
        "op_latency_p95": TargetOutcome.PASS,
        "fake_op_pyperf_median": TargetOutcome.PASS,
    }
    latency = manifest.verdicts[0]
    assert latency.value == pytest.approx(0.03)
    assert latency.n == 3 * latency.rounds
    assert {s.values for s in bundle.samples} == {fake.SAMPLE_VALUES}
    assert bundle.metrics == ()
    assert [p.name for p in (tmp_path / "reports").iterdir() if p.name.startswith(".tmp-")] == []
    assert "[1/1] fake ... done in" in progress.getvalue()
    stored = HistoryStore(tmp_path / "reports" / "history.sqlite").query("SELECT * FROM runs")
    assert stored["run_id"].tolist() == [manifest.run_id]


def test_a_missed_target_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.install(monkeypatch, tmp_path)
    result = run(
        _options(tmp_path, fake.write_targets(tmp_path, bound=0.001), history=False),
        progress=io.StringIO(),
    )
    assert result.exit_status == 1
    assert result.manifest.verdicts[0].outcome is TargetOutcome.FAIL
    assert result.manifest.verdicts[0].margin is not None and result.manifest.verdicts[0].margin < 0
    assert result.history_path is None
    assert not (tmp_path / "reports" / "history.sqlite").exists()


def test_a_metric_never_recorded_is_missing_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.install(monkeypatch, tmp_path)
    extra = """
[[target]]
name = "op_other_median"
workload = "fake"
metric = "op_other"
statistic = "median"
clock = "wall"
unit = "s"
bound = 1.0
direction = "max"
description = "a metric the fake workload never records"
"""
    targets = fake.write_targets(tmp_path, extra=extra)
    result = run(_options(tmp_path, targets, history=False), progress=io.StringIO())
    assert result.exit_status == 1
    assert result.manifest.verdicts[-1].outcome is TargetOutcome.MISSING


def test_a_diverged_replay_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.install(monkeypatch, tmp_path)
    monkeypatch.setattr(
        harness.measure.replay,
        "check_shipped_traces",
        lambda profile: [
            _ReplayVerdict("kernel-small", True),
            _ReplayVerdict("prp-nightly", False),
        ],
    )
    point = MetricPoint("kernel.pool.active", "gauge", "{job}", {}, value=0.0)
    monkeypatch.setattr(
        harness.measure.replay, "collect_metrics", lambda profile, otlp_endpoint: [point]
    )
    result = run(_options(tmp_path, fake.write_targets(tmp_path)), progress=io.StringIO())
    assert result.exit_status == 1
    determinism = result.manifest.determinism
    assert determinism.status is DeterminismStatus.DIVERGED
    assert determinism.results[1] == {"trace": "prp-nightly", "deterministic": False}
    assert load_bundle(result.bundle_path).metrics[0]["name"] == "kernel.pool.active"


def test_a_deterministic_replay_passes_and_no_replay_skips_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.install(monkeypatch, tmp_path)
    calls: list[str] = []

    def check(profile: registry.Profile) -> list[_ReplayVerdict]:
        calls.append(profile.name)
        return [_ReplayVerdict("kernel-small", True)]

    monkeypatch.setattr(harness.measure.replay, "check_shipped_traces", check)
    targets = fake.write_targets(tmp_path)
    result = run(_options(tmp_path, targets), progress=io.StringIO())
    assert result.exit_status == 0
    assert result.manifest.determinism.status is DeterminismStatus.DETERMINISTIC
    skipped = run(_options(tmp_path, targets, replay=False), progress=io.StringIO())
    assert skipped.manifest.determinism.reason == "--no-replay"
    assert calls == ["fast"]


def test_a_failing_workload_shows_its_stderr_and_leaves_no_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.install(monkeypatch, tmp_path, fail=True)
    progress = io.StringIO()
    with pytest.raises(WorkloadError, match="workload fake exited with status 3"):
        run(_options(tmp_path, fake.write_targets(tmp_path)), progress=progress)
    assert "RuntimeError: boom" in progress.getvalue()
    assert "FAILED (exit status 3)" in progress.getvalue()
    assert list((tmp_path / "reports").iterdir()) == []


def test_bad_input_is_refused_before_any_workload_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = fake.install(monkeypatch, tmp_path)
    script.unlink()  # a workload that ran would fail: none must run
    targets = fake.write_targets(tmp_path)
    with pytest.raises(WorkloadError, match="unknown workload 'nope'") as unknown:
        run(_options(tmp_path, targets, workloads=("nope",)))
    assert unknown.value.expected == "one of fake"
    with pytest.raises(WorkloadError, match="unknown profile"):
        run(_options(tmp_path, targets, profile="sloppy"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(EnvironmentRefused, match="cannot write to the output directory"):
        run(_options(tmp_path, targets, out_dir=blocker / "reports"))
    with pytest.raises(EnvironmentRefused, match="not an OTLP endpoint"):
        run(_options(tmp_path, targets, otlp_endpoint="localhost:4318"))
    with pytest.raises(TargetsError):
        run(_options(tmp_path, tmp_path / "absent.toml"))


def test_a_missing_shipped_trace_is_a_trace_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.install(monkeypatch, tmp_path)
    traced = WorkloadInfo(
        "fake", "reads a trace", "wall", (latency("op_latency", 1),), ("no-such-trace",)
    )
    monkeypatch.setattr(registry, "WORKLOADS", {"fake": traced})
    with pytest.raises(TraceError, match="shipped trace 'no-such-trace'"):
        run(_options(tmp_path, fake.write_targets(tmp_path)))


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.25, Unit.SECONDS, "250 ms"),
        (600.0, Unit.SECONDS, "600 s"),
        (12e-6, Unit.SECONDS, "12 µs"),
        (0.2, Unit.RATIO, "0.2"),
        (30.0, Unit.PER_HOUR, "30/h"),
        (None, Unit.SECONDS, "-"),
    ],
)
def test_quantities_are_shown_in_readable_units(value: float | None, unit: Unit, text: str) -> None:
    assert format_quantity(value, unit) == text


def test_table_has_a_row_per_verdict_and_the_determinism_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.install(monkeypatch, tmp_path)
    result = run(
        _options(tmp_path, fake.write_targets(tmp_path), history=False), progress=io.StringIO()
    )
    table = format_table(result.manifest.verdicts, result.manifest.determinism)
    lines = table.splitlines()
    assert lines[0].split() == [
        "target",
        "value",
        "95%",
        "CI",
        "bound",
        "margin",
        "result",
        "clock",
        "n",
    ]
    assert lines[1].startswith("op_latency_p95")
    assert "30 ms" in lines[1] and "<= 250 ms" in lines[1] and "+88.0%" in lines[1]
    assert "PASS" in lines[1]
    assert lines[-1].startswith("determinism: not run")


def test_figures_list_every_metric_with_its_median_and_p95() -> None:
    from harness.measure.run import format_figures
    from workloads.samples import MetricSamples

    samples = [
        MetricSamples("graph_vs_langgraph", "overhead_ours", "1-1", "s", "wall", (0.0001,) * 30),
        MetricSamples("graph_vs_langgraph", "ratio_vs_langgraph", "1-1", "ratio", "wall", (0.05,)),
        MetricSamples(
            "gate_throughput", "gates_per_hour_pooled", "1-1", "per_hour", "trace", (290.0,)
        ),
    ]
    text = format_figures(samples).splitlines()
    assert text[1] == "  graph_vs_langgraph"
    assert "overhead_ours" in text[2] and "median 100 µs, p95 100 µs" in text[2]
    assert "(wall, n=30)" in text[2]
    assert "median 0.05" in text[3] and "p95" not in text[3]
    assert text[4] == "  gate_throughput"
    assert "median 290/h" in text[5] and "(trace, n=1)" in text[5]


def test_the_event_loop_is_recorded_in_the_fingerprint_and_asyncio_keeps_old_digests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import msgspec

    fake.install(monkeypatch, tmp_path)
    targets = fake.write_targets(tmp_path)
    monkeypatch.delenv("AGENTBENCH_LOOP", raising=False)
    plain = run(_options(tmp_path, targets, history=False)).manifest.environment
    uv = run(_options(tmp_path, targets, history=False, loop="uvloop")).manifest.environment
    assert plain.fingerprint.event_loop == "asyncio"
    assert uv.fingerprint.event_loop.startswith("uvloop 0.")
    assert uv.fingerprint_digest != plain.fingerprint_digest
    # An asyncio run encodes no event_loop: its digest is the one of before the dimension.
    encoded = msgspec.to_builtins(plain.fingerprint)
    assert "event_loop" not in encoded and "event_loop" in msgspec.to_builtins(uv.fingerprint)


def test_a_bad_agentbench_loop_is_refused_before_any_workload_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.install(monkeypatch, tmp_path)
    monkeypatch.setenv("AGENTBENCH_LOOP", "trio")
    progress = io.StringIO()
    with pytest.raises(EnvironmentRefused, match="AGENTBENCH_LOOP='trio'"):
        run(_options(tmp_path, fake.write_targets(tmp_path)), progress=progress)
    assert "fake" not in progress.getvalue()
