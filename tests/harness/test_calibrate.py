"""``harness calibrate``: the A/A run, its noise and MDE, stored with the fingerprint."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import sqlite3
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.errors import WorkloadSkipped
from harness.judge.stats import RowVerdict
from harness.measure import interleave
from harness.measure.calibrate import (
    CalibrateOptions,
    balanced_orders,
    calibrate,
    format_calibration,
)
from harness.store.db import SCHEMA_VERSION, CalibrationRow, HistoryStore
from workloads import registry
from workloads.registry import Profile
from workloads.samples import MetricSamples

from . import _fake_workload as fake
from ._bundles import make_environment
from .test_compare import FAKE_WORKLOADS, sched_calibration, sched_spec, write_side


def test_the_order_is_balanced_abba() -> None:
    assert balanced_orders(4) == ("AB", "BA", "AB", "BA")
    orders = balanced_orders(7)
    assert abs(orders.count("AB") - orders.count("BA")) <= 1


@pytest.fixture(autouse=True)
def _registry_of_the_fake_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every workload records what :class:`NoisyRunner` gives (its metrics described)."""
    extra = (registry.latency("task_latency", 100), registry.cost("makespan"))
    workloads = {
        name: dataclasses.replace(info, metrics=(*info.metrics, *extra))
        for name, info in registry.WORKLOADS.items()
    }
    workloads.update((info.name, info) for info in FAKE_WORKLOADS)  # sched_spec()'s
    monkeypatch.setattr(registry, "WORKLOADS", workloads)


class NoisyRunner:
    """A fake side: pyperf values with 2 % lognormal noise, 100 latencies a round."""

    def __init__(self, skip: str = "") -> None:
        self.rng = np.random.default_rng(42)
        self.calls: list[str] = []
        self.skip = skip

    def __call__(
        self, name: str, profile: Profile, workdir: Path, env: Mapping[str, str]
    ) -> list[MetricSamples]:
        assert profile.processes == 1
        self.calls.append(name)
        if name == self.skip:
            raise WorkloadSkipped(f"{name}: skipped: no peers", elapsed_s=0.0)
        latencies = tuple(float(v) for v in self.rng.lognormal(-4.6, 0.3, 100))
        pyperf_values = tuple(float(v) for v in self.rng.lognormal(-0.7, 0.02, 3))
        return [
            MetricSamples(name, "task_latency", "1-1", "s", "wall", latencies),
            MetricSamples(name, "pyperf", "pyperf", "s", "wall", pyperf_values),
            MetricSamples(name, "makespan", "1-1", "s", "trace", (545.4,)),
        ]


def test_calibration_measures_noise_and_mde_and_stores_them(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite"
    runner = NoisyRunner()
    options = CalibrateOptions(
        rounds=12, workloads=("scheduler_latency", "hook_latency"), db=db, seed=1
    )
    result = calibrate(options, progress=io.StringIO(), runner=runner)
    assert len(runner.calls) == 12 * 2 * 2
    assert result.orders == balanced_orders(12)
    by_key = {(r.workload, r.metric, r.statistic): r for r in result.rows}
    pyperf = by_key[("scheduler_latency", "pyperf", "median")]
    # two sides of 2 % noise a run: a one-round log ratio has sd about 2 % * sqrt(2)
    assert pyperf.noise is not None and 0.01 < pyperf.noise < 0.06
    assert pyperf.mde is not None and 0 < pyperf.mde < 0.2
    assert pyperf.paired
    assert by_key[("hook_latency", "task_latency", "p95")].rounds == 12
    assert by_key[("hook_latency", "makespan", "median")].noise == 0.0  # trace clock
    assert not any(r.verdict is RowVerdict.REGRESSION for r in result.rows)

    stored = HistoryStore(db).latest_calibration(result.fingerprint)
    assert {(r.workload, r.metric, r.statistic) for r in stored} == set(by_key)
    assert all(r.rounds == 12 and r.calibration_id == result.calibration_id for r in stored)
    text = format_calibration(result)
    assert text.splitlines()[0].startswith(f"calibration {result.calibration_id}")
    assert f"{pyperf.mde:.1%}" in text
    assert "rounds for thr" in text
    assert str(db) in text


def test_by_default_a_round_is_an_interleaved_comparisons_round() -> None:
    # Its noise is then the noise `harness compare` meets, and its rounds are enough
    # for compare to use it (a calibration of fewer rounds than a comparison is not).
    seen: list[Profile] = []

    def runner(
        name: str, profile: Profile, workdir: Path, env: Mapping[str, str]
    ) -> list[MetricSamples]:
        seen.append(profile)
        return NoisyRunner()(name, profile, workdir, env)

    options = CalibrateOptions(workloads=("scheduler_latency",), store=False)
    result = calibrate(options, progress=io.StringIO(), runner=runner)
    assert options.rounds == result.rounds == interleave.DEFAULT_ROUNDS
    assert set(seen) == {interleave.ROUND_PROFILE}
    assert result.profile == interleave.ROUND_PROFILE.name


def test_a_workload_that_skips_itself_is_left_out(tmp_path: Path) -> None:
    runner = NoisyRunner(skip="hook_latency")
    result = calibrate(
        CalibrateOptions(rounds=2, workloads=("scheduler_latency", "hook_latency"), store=False),
        progress=io.StringIO(),
        runner=runner,
    )
    assert runner.calls.count("hook_latency") == 1
    assert {r.workload for r in result.rows} == {"scheduler_latency"}
    assert result.skipped == ("hook_latency: skipped: no peers",)
    assert result.stored_in is None


def test_calibrate_runs_the_real_workload_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fake pyperf script, for real: one process a side and round, samples read back."""
    fake.install(monkeypatch, tmp_path)
    db = tmp_path / "history.sqlite"
    progress = io.StringIO()
    result = calibrate(CalibrateOptions(rounds=2, db=db), progress=progress)
    metrics = {(r.metric, r.statistic) for r in result.rows}
    assert ("pyperf", "median") in metrics
    assert ("op_latency", "median") in metrics
    latency = next(r for r in result.rows if r.metric == "op_latency")
    assert latency.ratio == 1.0  # the fake records the same values every round
    assert "[4/4] fake ... done" in progress.getvalue()
    assert HistoryStore(db).latest_calibration(result.fingerprint)


def test_a_schema_1_store_is_migrated_when_a_calibration_is_stored(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as connection, connection:
        connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        connection.execute("INSERT INTO schema_version VALUES (1)")
    store = HistoryStore(db)
    assert store.latest_calibration("abc") == ()  # no table yet: none, no error
    row = CalibrationRow(
        calibration_id="c1",
        fingerprint="abc",
        profile="fast",
        workload="w",
        metric="pyperf",
        statistic="median",
        unit="s",
        clock="wall",
        rounds=6,
        noise=0.02,
        mde=math.inf,
        created="2024-01-01T00:00:00+00:00",
    )
    store.append_calibration([row])
    assert store.query("SELECT version FROM schema_version")["version"].tolist() == [SCHEMA_VERSION]
    (found,) = store.latest_calibration("abc")
    assert found == row  # inf is stored as NULL and read back as inf


def test_compare_uses_the_stored_calibration_of_the_same_fingerprint(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite"
    HistoryStore(db).append_calibration(
        [
            sched_calibration(
                make_environment().fingerprint_digest,
                calibration_id="cal-x",
                rounds=50,
                noise=0.01,
                mde=0.01,
            )
        ]
    )
    base = write_side(tmp_path, "base", sched_spec())
    candidate = write_side(tmp_path, "candidate", sched_spec())
    out = tmp_path / "c.json"
    argv = ["compare", str(base.path), str(candidate.path), "--db", str(db), "--json", str(out)]
    assert main(argv) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["calibration"]["id"] == "cal-x"
    row = next(r for r in data["rows"] if r["metric"] == "pyperf")
    assert row["noise"] == 0.01
    assert "calibration cal-x" in row["noise_source"]
    assert main([*argv, "--no-calibration"]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["calibration"] is None
