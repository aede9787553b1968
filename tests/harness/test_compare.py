"""``harness compare`` on synthetic bundles with known shifts (no benchmark runs)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from harness.bundle import comparison as contract
from harness.bundle.environment import Environment
from harness.bundle.files import (
    Bundle,
    Determinism,
    DeterminismStatus,
    Interleaving,
    Manifest,
    ProfileRecord,
    WorkloadRun,
    load_bundle,
    write_bundle,
)
from harness.bundle.verdicts import (
    Clock,
    Direction,
    Statistic,
    Target,
    TargetOutcome,
    Unit,
    Verdict,
)
from harness.errors import BundleError, EnvironmentRefused
from harness.judge.compare import (
    Calibration,
    CompareOptions,
    ComparisonVerdict,
    compare_bundles,
    exit_status,
    fingerprint_differences,
    last_good_bundle,
    resolve_bundle,
    verdict_table,
)
from harness.judge.readout import format_markdown, format_table
from harness.judge.stats import RowVerdict
from harness.store.db import CalibrationRow, HistoryStore
from workloads import registry
from workloads.registry import Better, Metric, WorkloadInfo, cost, latency, ratio
from workloads.samples import MetricSamples

from ._bundles import make_environment, make_suite

# The synthetic workloads of these tests, described as the registry describes real ones.
FAKE_WORKLOADS = (
    WorkloadInfo(
        "sched",
        "synthetic scheduler",
        "wall",
        (
            latency("task_latency", 200),
            ratio("throughput_gain", better=Better.HIGHER, offset=1.0),
        ),
    ),
    WorkloadInfo(
        "w",
        "synthetic wall-clock workload",
        "wall",
        (
            *(cost(name) for name in ("faster", "slower", "same", "regressed", "noisy")),
            ratio("broken"),
            ratio("gain"),
            cost("peer_cost", role=registry.Role.PEER),
            latency("few_values", 24),
        ),
    ),
    WorkloadInfo(
        "prp",
        "synthetic trace-clock workload",
        "trace",
        (
            *(cost(name) for name in ("same", "worse", "a_little_worse")),
            Metric("gates_per_hour", registry.Kind.RATE, "per_hour", Better.HIGHER),
        ),
    ),
    WorkloadInfo(
        "approval",
        "synthetic waits",
        "trace",
        tuple(latency(name, 40) for name in ("zero", "to_zero", "from_zero")),
    ),
    WorkloadInfo(
        "cpu",
        "synthetic CPU-bound path with an instruction twin",
        "wall",
        (cost("item_cost", twin="instructions_pool_item_c1"), cost("wait_cost")),
        pyperf_twin="instructions_pool_item_c1",
    ),
)


@pytest.fixture(autouse=True)
def _fake_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    workloads = {**registry.WORKLOADS, **{info.name: info for info in FAKE_WORKLOADS}}
    monkeypatch.setattr(registry, "WORKLOADS", workloads)


ROUNDS = 12
# Per round: a value of the round's own machine state (shared by both sides of
# the round), so pairing cancels it.
RoundFn = Callable[[np.random.Generator, int, str], list[float]]


@dataclass
class Spec:
    """What one synthetic side holds: per (workload, metric), a function of (rng, round, side)."""

    metrics: dict[tuple[str, str], tuple[str, str, RoundFn]] = field(default_factory=dict)
    pyperf: dict[str, RoundFn] = field(default_factory=dict)


def lognormal(
    median: float, noise: float, *, count: int = 1, slow: float = 1.0, drift: float = 0.01
) -> RoundFn:
    """Values around ``median`` with lognormal ``noise``, the candidate ``slow`` times slower."""

    def values(rng: np.random.Generator, k: int, side: str) -> list[float]:
        factor = (1.0 + drift * k) * (slow if side == "candidate" else 1.0)
        drawn = rng.lognormal(math.log(median), noise, count) * factor
        return [float(v) for v in drawn]

    return values


def constant(value: float, *, candidate: float | None = None) -> RoundFn:
    def values(rng: np.random.Generator, k: int, side: str) -> list[float]:
        return [candidate if side == "candidate" and candidate is not None else value]

    return values


def write_side(
    out: Path,
    side: str,
    spec: Spec,
    *,
    rounds: int = ROUNDS,
    seed: int = 1,
    interleaved: bool = True,
    environment: Environment | None = None,
    verdicts: Sequence[Verdict] = (),
    determinism: DeterminismStatus = DeterminismStatus.DETERMINISTIC,
    order: Sequence[str] | None = None,
    run_id: str | None = None,
) -> Bundle:
    """One synthetic bundle; ``seed`` and the side name seed its values."""
    rng = np.random.default_rng([seed, 0 if side == "base" else 1])
    samples: list[MetricSamples] = []
    workloads = sorted({w for w, _ in spec.metrics} | set(spec.pyperf))
    for k in range(rounds):
        for (workload, metric), (unit, clock, fn) in sorted(spec.metrics.items()):
            round_id = f"r{k}:{side}:{k}-1" if interleaved else f"{100 + k}-1"
            samples.append(
                MetricSamples(workload, metric, round_id, unit, clock, tuple(fn(rng, k, side)))  # type: ignore[arg-type]
            )
    runs = {w: [spec.pyperf[w](rng, k, side) for k in range(rounds)] for w in spec.pyperf}
    for workload in workloads:
        runs.setdefault(workload, [[0.1, 0.1, 0.1]] * rounds)
    manifest = Manifest(
        run_id=run_id or f"20240101T00000{0 if side == 'base' else 1}Z-0123456-{side[:6]:0>6}",
        profile=ProfileRecord(name="fast", processes=1, values=3, warmups=1, min_time_s=0.01),
        workloads=[
            WorkloadRun(
                name=w,
                clock="wall",
                benchmarks=[w],
                samples=sum(1 for s in samples if s.workload == w),
                elapsed_s=1.0,
                traces=[],
            )
            for w in workloads
        ],
        started_utc=f"2024-01-01T00:00:0{0 if side == 'base' else 1}+00:00",
        finished_utc="2024-01-01T00:01:00+00:00",
        environment=environment or make_environment(),
        traces={},
        targets_file="targets.toml",
        targets_sha256="0" * 64,
        verdicts=list(verdicts),
        determinism=Determinism(status=determinism, reason="test"),
        interleaving=(
            Interleaving(
                side=side,
                ref="HEAD",
                sha="0" * 40,
                method="ABBA",
                seed=None,
                rounds=rounds,
                order=list(order or ["AB" if k % 2 == 0 else "BA" for k in range(rounds)]),
                pair_id="pair",
            )
            if interleaved
            else None
        ),
    )
    return load_bundle(write_bundle(out, manifest, make_suite(runs), samples, []))


def pair(
    tmp_path: Path, base: Spec, candidate: Spec | None = None, **kwargs: object
) -> tuple[Bundle, Bundle]:
    return (
        write_side(tmp_path, "base", base, **kwargs),  # type: ignore[arg-type]
        write_side(tmp_path, "candidate", candidate or base, **kwargs),  # type: ignore[arg-type]
    )


def rows_by(comparison_rows: Sequence[object]) -> dict[tuple[str, str, str], RowVerdict]:
    return {
        (r.workload, r.metric, r.statistic): r.verdict  # type: ignore[attr-defined]
        for r in comparison_rows
    }


def sched_spec(slow: float = 1.0, noise: float = 0.02) -> Spec:
    return Spec(
        metrics={
            ("sched", "task_latency"): ("s", "wall", lognormal(0.01, 0.3, count=200, slow=slow)),
        },
        pyperf={"sched": lognormal(0.5, noise, count=3, slow=slow)},
    )


# --------------------------------------------------------------------------- issue 7 acceptance


def test_a_ten_percent_slowdown_is_flagged(tmp_path: Path) -> None:
    base, candidate = (
        write_side(tmp_path, "base", sched_spec()),
        write_side(tmp_path, "candidate", sched_spec(slow=1.10)),
    )
    comparison = compare_bundles(base, candidate)
    assert comparison.verdict is ComparisonVerdict.REGRESSION
    assert comparison.exit_status() == 1
    verdicts = rows_by(comparison.rows)
    assert verdicts[("sched", "pyperf", "median")] is RowVerdict.REGRESSION
    assert verdicts[("sched", "task_latency", "p50")] is RowVerdict.REGRESSION
    assert comparison.paired
    assert "Wilcoxon signed-rank" in comparison.method
    assert "Hodges-Lehmann" in comparison.method


def test_an_aa_pair_is_not_flagged(tmp_path: Path) -> None:
    base, candidate = pair(tmp_path, sched_spec())
    comparison = compare_bundles(base, candidate)
    assert comparison.verdict in (ComparisonVerdict.PASS, ComparisonVerdict.INCONCLUSIVE)
    assert comparison.exit_status() == 0
    assert all(
        row.verdict in (RowVerdict.NO_CHANGE, RowVerdict.INCONCLUSIVE) for row in comparison.rows
    )


def test_a_two_percent_change_below_the_threshold_is_no_change_with_its_mde(
    tmp_path: Path,
) -> None:
    """5 % noise a side, 20 rounds: the MDE (about 4.7 %) is within the threshold, and a
    2 % change is below it (this seed draws a non-significant case; others say "slower",
    significant but within the threshold, never "regression")."""
    spec = Spec(pyperf={"w": lognormal(0.5, 0.05, count=1, drift=0.0)})
    slower = Spec(pyperf={"w": lognormal(0.5, 0.05, count=1, slow=1.02, drift=0.0)})
    base = write_side(tmp_path, "base", spec, rounds=20, seed=3)
    candidate = write_side(tmp_path, "candidate", slower, rounds=20, seed=3)
    comparison = compare_bundles(base, candidate)
    (row,) = comparison.rows
    assert row.verdict is RowVerdict.NO_CHANGE
    assert row.mde is not None and 0.02 < row.mde <= 0.05
    assert row.rounds_needed is not None and row.rounds_needed <= 20
    assert comparison.verdict is ComparisonVerdict.PASS
    assert f"{row.mde:.1%}" in format_table(comparison)


def test_a_change_below_an_mde_above_the_threshold_is_inconclusive_never_no_change(
    tmp_path: Path,
) -> None:
    noisy = Spec(pyperf={"w": lognormal(0.5, 0.15, count=1, drift=0.0)})
    noisy_slower = Spec(pyperf={"w": lognormal(0.5, 0.15, count=1, slow=1.02, drift=0.0)})
    base = write_side(tmp_path, "base", noisy)
    candidate = write_side(tmp_path, "candidate", noisy_slower)
    comparison = compare_bundles(base, candidate)
    (row,) = comparison.rows
    assert row.verdict is RowVerdict.INCONCLUSIVE
    assert row.mde is not None and row.mde > 0.05
    assert row.rounds_needed is not None and row.rounds_needed > ROUNDS
    assert comparison.verdict is ComparisonVerdict.INCONCLUSIVE
    assert comparison.exit_status() == 0
    assert comparison.exit_status(fail_on_inconclusive=True) == 1


def test_p95_up_30_percent_with_the_median_unchanged_is_flagged_on_p95_only(
    tmp_path: Path,
) -> None:
    """Each round: 1000 lognormal latencies; the candidate's values between ranks
    90 % and 98 % are 1.3x (capped at the rank-98 % value, so the order above holds)."""

    def latencies(rng: np.random.Generator, k: int, side: str) -> list[float]:
        values = np.sort(rng.lognormal(math.log(0.01), 0.8, 1000)) * (1.0 + 0.01 * k)
        if side == "candidate":
            values[900:980] = np.minimum(values[900:980] * 1.3, values[980])
        return [float(v) for v in rng.permutation(values)]

    spec = Spec(metrics={("sched", "task_latency"): ("s", "wall", latencies)})
    comparison = compare_bundles(*pair(tmp_path, spec, rounds=20))
    verdicts = rows_by(comparison.rows)
    assert verdicts[("sched", "task_latency", "p95")] is RowVerdict.REGRESSION
    assert verdicts[("sched", "task_latency", "p50")] is RowVerdict.NO_CHANGE
    assert verdicts[("sched", "task_latency", "p99")] is not RowVerdict.REGRESSION
    p95 = next(r for r in comparison.rows if r.statistic == "p95")
    assert p95.ratio == pytest.approx(1.3, abs=0.05)


# --------------------------------------------------------------------------- every verdict


def test_every_row_verdict_is_produced(tmp_path: Path) -> None:
    quiet = 0.005
    base = Spec(
        metrics={
            ("w", "faster"): ("s", "wall", lognormal(1.0, quiet)),
            ("w", "slower"): ("s", "wall", lognormal(1.0, quiet)),
            ("w", "same"): ("s", "wall", lognormal(1.0, quiet)),
            ("w", "regressed"): ("s", "wall", lognormal(1.0, quiet)),
            ("w", "noisy"): ("s", "wall", lognormal(1.0, 0.3)),
            ("w", "broken"): ("ratio", "wall", constant(0.5)),
        }
    )
    candidate = Spec(
        metrics={
            ("w", "faster"): ("s", "wall", lognormal(1.0, quiet, slow=0.90)),
            ("w", "slower"): ("s", "wall", lognormal(1.0, quiet, slow=1.03)),
            ("w", "same"): ("s", "wall", lognormal(1.0, quiet)),
            ("w", "regressed"): ("s", "wall", lognormal(1.0, quiet, slow=1.10)),
            ("w", "noisy"): ("s", "wall", lognormal(1.0, 0.3)),
            ("w", "broken"): ("ratio", "wall", constant(-0.5)),
        }
    )
    comparison = compare_bundles(*pair(tmp_path, base, candidate))
    verdicts = {row.metric: row.verdict for row in comparison.rows}
    assert verdicts == {
        "broken": RowVerdict.ERROR,
        "faster": RowVerdict.FASTER,
        "noisy": RowVerdict.INCONCLUSIVE,
        "pyperf": RowVerdict.NO_CHANGE,
        "regressed": RowVerdict.REGRESSION,
        "same": RowVerdict.NO_CHANGE,
        "slower": RowVerdict.SLOWER,
    }
    broken = next(row for row in comparison.rows if row.metric == "broken")
    assert broken.error is not None and "not positive" in broken.error
    assert "error: " in format_table(comparison)
    # A regression outranks the harness error; both reasons are given.
    assert comparison.verdict is ComparisonVerdict.REGRESSION
    assert any("1 error" in reason for reason in comparison.reasons)


def _failed_verdict() -> Verdict:
    target = Target(
        name="p95",
        workload="sched",
        metric="task_latency",
        statistic=Statistic.P95,
        clock=Clock.WALL,
        unit=Unit.SECONDS,
        bound=0.001,
        direction=Direction.MAX,
        description="t",
    )
    return Verdict(
        target, TargetOutcome.FAIL, 0.02, (0.01, 0.03), "none", 0.001, -19.0, False, 9, 3
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("case", "expected", "status"),
    [
        ("pass", ComparisonVerdict.PASS, 0),
        ("regression", ComparisonVerdict.REGRESSION, 1),
        ("target missed", ComparisonVerdict.TARGET_MISSED, 1),
        ("nondeterministic", ComparisonVerdict.NONDETERMINISTIC, 1),
        ("inconclusive", ComparisonVerdict.INCONCLUSIVE, 0),
        ("harness error", ComparisonVerdict.HARNESS_ERROR, 2),
    ],
)
def test_every_comparison_verdict_is_produced(
    tmp_path: Path, case: str, expected: ComparisonVerdict, status: int
) -> None:
    base_spec = Spec(pyperf={"w": lognormal(0.5, 0.005)})
    candidate_spec = base_spec
    kwargs: dict[str, object] = {}
    if case == "regression":
        candidate_spec = Spec(pyperf={"w": lognormal(0.5, 0.005, slow=1.2)})
    elif case == "inconclusive":
        base_spec = candidate_spec = Spec(pyperf={"w": lognormal(0.5, 0.005)})
        kwargs["rounds"] = 4  # too few rounds for the rank test to reach the level
    elif case == "harness error":
        base_spec = Spec(metrics={("w", "gain"): ("ratio", "wall", constant(0.0))})
        candidate_spec = base_spec
    base = write_side(tmp_path, "base", base_spec, **kwargs)  # type: ignore[arg-type]
    candidate = write_side(
        tmp_path,
        "candidate",
        candidate_spec,
        verdicts=[_failed_verdict()] if case == "target missed" else [],
        determinism=(
            DeterminismStatus.DIVERGED
            if case == "nondeterministic"
            else DeterminismStatus.DETERMINISTIC
        ),
        **kwargs,  # type: ignore[arg-type]
    )
    comparison = compare_bundles(base, candidate)
    assert comparison.verdict is expected
    assert comparison.exit_status() == status
    assert format_table(comparison).splitlines()[0].startswith(f"verdict: {expected.upper()}")
    assert format_markdown(comparison).splitlines()[0] == f"**Comparison verdict: {expected}**"


def test_exit_statuses_follow_the_table() -> None:
    assert exit_status(ComparisonVerdict.INCONCLUSIVE) == 0
    assert exit_status(ComparisonVerdict.INCONCLUSIVE, fail_on_inconclusive=True) == 1
    assert exit_status(ComparisonVerdict.PASS, fail_on_inconclusive=True) == 0
    table = verdict_table()
    for verdict in (*ComparisonVerdict, *RowVerdict):
        assert verdict.value in table


# --------------------------------------------------------------------------- kinds of metric


def test_trace_clock_metrics_are_compared_exactly(tmp_path: Path) -> None:
    base = Spec(
        metrics={
            ("prp", "same"): ("s", "trace", constant(545.4)),
            ("prp", "worse"): ("s", "trace", constant(545.4, candidate=600.0)),
            ("prp", "a_little_worse"): ("s", "trace", constant(545.4, candidate=550.0)),
            ("prp", "gates_per_hour"): ("per_hour", "trace", constant(290.0, candidate=250.0)),
        }
    )
    comparison = compare_bundles(*pair(tmp_path, base))
    rows = {row.metric: row for row in comparison.rows if row.clock == "trace"}
    assert rows["same"].verdict is RowVerdict.NO_CHANGE
    assert rows["worse"].verdict is RowVerdict.REGRESSION
    assert rows["a_little_worse"].verdict is RowVerdict.SLOWER
    assert rows["gates_per_hour"].verdict is RowVerdict.REGRESSION  # higher is better
    assert rows["gates_per_hour"].direction.value == "higher"
    assert all(row.p_raw is None and row.mde == 0.0 for row in rows.values())
    assert "compared exactly" in comparison.method


def test_a_trace_clock_zero_on_both_sides_is_no_change_and_a_move_to_or_from_0_an_error(
    tmp_path: Path,
) -> None:
    # prp-nightly's pooled approvals mostly wait 0 s: p50 = 0 on both sides of a
    # nightly comparison is the same figure, not an error that fails the night.
    base = Spec(
        metrics={
            ("approval", "zero"): ("s", "trace", constant(0.0)),
            ("approval", "to_zero"): ("s", "trace", constant(2.0, candidate=0.0)),
            ("approval", "from_zero"): ("s", "trace", constant(0.0, candidate=2.0)),
        }
    )
    comparison = compare_bundles(*pair(tmp_path, base))
    rows = {row.metric: row for row in comparison.rows}
    assert rows["zero"].verdict is RowVerdict.NO_CHANGE and rows["zero"].ratio == 1.0
    assert rows["from_zero"].verdict is rows["to_zero"].verdict is RowVerdict.ERROR
    assert "moved from 0 to 2" in str(rows["from_zero"].error)
    assert "moved from 2 to 0" in str(rows["to_zero"].error)


def test_offset_ratios_and_higher_is_better_ratios(tmp_path: Path) -> None:
    """``throughput_gain`` is ``ratio - 1``: compared as 1 + value; a lower gain is worse."""
    base = Spec(metrics={("sched", "throughput_gain"): ("ratio", "wall", lognormal(6.0, 0.005))})
    candidate = Spec(
        metrics={("sched", "throughput_gain"): ("ratio", "wall", lognormal(6.0, 0.005, slow=0.8))}
    )
    comparison = compare_bundles(*pair(tmp_path, base, candidate))
    row = next(row for row in comparison.rows if row.metric == "throughput_gain")
    assert row.scale == "1 + value"
    assert row.direction.value == "higher"
    assert row.ratio == pytest.approx((1 + 6.0 * 0.8) / 7.0, rel=0.01)
    assert row.verdict is RowVerdict.REGRESSION


def test_bundles_without_interleaved_rounds_are_compared_unpaired(tmp_path: Path) -> None:
    base, candidate = pair(tmp_path, sched_spec(), sched_spec(slow=1.10), interleaved=False)
    comparison = compare_bundles(base, candidate)
    assert not comparison.paired
    assert all(not row.paired for row in comparison.rows)
    assert "Mann-Whitney U" in comparison.method
    assert "independently" in comparison.method
    assert rows_by(comparison.rows)[("sched", "pyperf", "median")] is RowVerdict.REGRESSION


def test_an_unbalanced_order_is_warned_about(tmp_path: Path) -> None:
    base, candidate = pair(tmp_path, sched_spec(), order=["AB"] * ROUNDS)
    comparison = compare_bundles(base, candidate)
    assert any("unbalanced order" in warning for warning in comparison.warnings)


def test_per_workload_thresholds_override_the_default(tmp_path: Path) -> None:
    base, candidate = pair(tmp_path, sched_spec(), sched_spec(slow=1.10))
    lenient = compare_bundles(base, candidate, options=CompareOptions(thresholds={"sched": 0.2}))
    assert all(row.threshold == 0.2 for row in lenient.rows)
    assert all(row.verdict is not RowVerdict.REGRESSION for row in lenient.rows)
    assert lenient.verdict is not ComparisonVerdict.REGRESSION


# --------------------------------------------------------------------------- environments, inputs


def _other_environment() -> Environment:
    environment = make_environment()
    fingerprint = msgspec.structs.replace(environment.fingerprint, python_version="3.12.1")
    return msgspec.structs.replace(
        environment,
        python_version="3.12.1",
        fingerprint=fingerprint,
        fingerprint_digest=fingerprint.digest,
    )


def test_fingerprint_differences_name_each_field() -> None:
    other = _other_environment()
    assert fingerprint_differences(make_environment(), other) == [
        "python_version: 3.11.7 vs 3.12.1"
    ]
    deps = msgspec.structs.replace(
        other.fingerprint, python_version="3.11.7", dependencies={"pyperf": "2.11.0"}
    )
    assert fingerprint_differences(
        make_environment(), msgspec.structs.replace(other, fingerprint=deps)
    ) == ["dependencies.pyperf: 2.10.0 vs 2.11.0"]


def test_different_fingerprints_are_refused_in_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    base = write_side(tmp_path, "base", sched_spec())
    candidate = write_side(tmp_path, "candidate", sched_spec(), environment=_other_environment())
    with pytest.raises(EnvironmentRefused, match=re.escape("python_version: 3.11.7 vs 3.12.1")):
        compare_bundles(base, candidate)
    status = main(["compare", str(base.path), str(candidate.path), "--db", str(tmp_path / "h")])
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.strip().splitlines()) == 1
    assert "python_version: 3.11.7 vs 3.12.1" in err
    assert "--allow-different-environments" in err


def test_different_environments_compared_on_request_carry_a_warning(tmp_path: Path) -> None:
    from harness.cli import main

    base = write_side(tmp_path, "base", sched_spec())
    candidate = write_side(tmp_path, "candidate", sched_spec(), environment=_other_environment())
    out_json, out_md = tmp_path / "c.json", tmp_path / "c.md"
    argv = ["compare", str(base.path), str(candidate.path), "--db", str(tmp_path / "h")]
    status = main(
        [
            *argv,
            "--allow-different-environments",
            "--json",
            str(out_json),
            "--markdown",
            str(out_md),
        ]
    )
    assert status in (0, 1)
    data = json.loads(out_json.read_text(encoding="utf-8"))
    assert any("DIFFERENT ENVIRONMENTS" in w for w in data["warnings"])
    assert "**Warning:** DIFFERENT ENVIRONMENTS" in out_md.read_text(encoding="utf-8")


def test_bundles_of_different_workloads_are_refused_naming_them(tmp_path: Path) -> None:
    base = write_side(tmp_path, "base", sched_spec())
    candidate = write_side(
        tmp_path, "candidate", Spec(pyperf={"sched": lognormal(0.5, 0.01), "new": constant(1.0)})
    )
    with pytest.raises(BundleError, match="only in candidate: new"):
        compare_bundles(base, candidate)


def test_a_missing_bundle_is_a_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    status = main(["compare", str(tmp_path / "nope"), str(tmp_path / "nada")])
    assert status == 2
    assert "nada" in capsys.readouterr().err
    with pytest.raises(BundleError, match="no bundle directory and no stored run"):
        resolve_bundle("20990101T000000Z-nothing-000000", tmp_path / "h.sqlite")


# --------------------------------------------------------------------------- outputs


def test_the_json_carries_the_schema_the_report_reads(tmp_path: Path) -> None:
    comparison = compare_bundles(*pair(tmp_path, sched_spec(), sched_spec(slow=1.1)))
    data = json.loads(json.dumps(comparison.as_json(), allow_nan=False))
    assert data["schema"] == 1
    for key in (
        "verdict", "method", "fdr_q", "threshold", "paired", "base", "candidate",
        "warnings", "calibration", "rows",
    ):  # fmt: skip
        assert key in data
    assert set(data["base"]) == {"run_id", "path"}
    row_keys = {
        "workload", "metric", "statistic", "unit", "clock", "rounds", "ratio", "ci_low",
        "ci_high", "p_raw", "p_adjusted", "noise", "mde", "rounds_needed", "threshold",
        "verdict", "direction",
    }  # fmt: skip
    assert all(row_keys <= set(row) for row in data["rows"])
    assert data["verdict"] == "regression"
    # The report reads it back through the same declared shape, losing nothing.
    read = msgspec.convert(data, contract.Comparison)
    assert msgspec.to_builtins(read) == data


def test_markdown_puts_the_verdict_first_and_folds_the_details(tmp_path: Path) -> None:
    comparison = compare_bundles(*pair(tmp_path, sched_spec(), sched_spec(slow=1.1)))
    markdown = format_markdown(comparison)
    assert markdown.startswith("**Comparison verdict: regression**")
    assert markdown.index("| workload") < markdown.index("<details>")
    assert "method:" in markdown.split("<details>")[1]


# --------------------------------------------------------------------------- history


def sched_calibration(fingerprint: str, **fields: Any) -> CalibrationRow:
    """A stored calibration row of sched_spec's pyperf median (``fields`` override)."""
    values: dict[str, Any] = {
        "calibration_id": "cal-1",
        "fingerprint": fingerprint,
        "profile": "fast",
        "workload": "sched",
        "metric": "pyperf",
        "statistic": "median",
        "unit": "s",
        "clock": "wall",
        "rounds": 40,
        "noise": 0.5,
        "mde": 0.3,
        "created": "2024-01-01T00:00:00+00:00",
    }
    return CalibrationRow(**{**values, **fields})


def test_a_calibration_with_more_rounds_supplies_the_noise(tmp_path: Path) -> None:
    base, candidate = pair(tmp_path, sched_spec())
    digest = candidate.manifest.environment.fingerprint_digest
    rows = [sched_calibration(digest)]
    calibration = Calibration.of(rows)
    comparison = compare_bundles(base, candidate, options=CompareOptions(calibration=calibration))
    row = next(r for r in comparison.rows if r.metric == "pyperf")
    assert row.noise == 0.5
    assert "calibration cal-1" in row.noise_source
    assert row.verdict is RowVerdict.INCONCLUSIVE  # the calibrated noise is large
    assert comparison.as_json()["calibration"]["rows_used"] == 1
    other = Calibration.of([_with_fingerprint(rows[0], "other")])
    ignored = compare_bundles(base, candidate, options=CompareOptions(calibration=other))
    assert ignored.calibration is None
    assert any("another fingerprint" in w for w in ignored.warnings)


def test_a_calibration_serves_only_rounds_of_its_profile_and_not_fewer_than_compared(
    tmp_path: Path,
) -> None:
    base, candidate = pair(tmp_path, sched_spec())
    digest = candidate.manifest.environment.fingerprint_digest
    compared = next(r for r in compare_bundles(base, candidate).rows if r.metric == "pyperf")

    def noise_with(profile: str, rounds: int) -> tuple[float | None, tuple[str, ...]]:
        stored = sched_calibration(digest, calibration_id="cal-2", profile=profile, rounds=rounds)
        options = CompareOptions(calibration=Calibration.of([stored]))
        comparison = compare_bundles(base, candidate, options=options)
        row = next(r for r in comparison.rows if r.metric == "pyperf")
        return row.noise, comparison.warnings

    profile = candidate.manifest.profile.name
    assert noise_with(profile, compared.rounds)[0] == 0.5  # as many rounds: used
    assert noise_with(profile, compared.rounds - 1)[0] == compared.noise  # fewer: its own
    noise, warnings = noise_with("rigorous", 100)  # rounds of another profile: not used
    assert noise == compared.noise != 0.5
    assert any("profile 'rigorous'" in w and "not used" in w for w in warnings)


def _with_fingerprint(row: CalibrationRow, fingerprint: str) -> CalibrationRow:
    from dataclasses import replace

    return replace(row, fingerprint=fingerprint)


def test_last_good_is_the_last_run_that_passed_with_a_deterministic_replay(
    tmp_path: Path,
) -> None:
    db = tmp_path / "history.sqlite"
    store = HistoryStore(db)
    good = write_side(tmp_path, "base", sched_spec(), run_id="20240101T000000Z-0123456-good00")
    bad = write_side(
        tmp_path,
        "base",
        sched_spec(),
        run_id="20240102T000000Z-0123456-bad000",
        verdicts=[_failed_verdict()],
    )
    candidate = write_side(
        tmp_path, "candidate", sched_spec(), run_id="20240103T000000Z-0123456-cand00"
    )
    for bundle in (good, bad, candidate):
        store.append_run(bundle)
    chosen = last_good_bundle(db, exclude=candidate.manifest.run_id)
    assert chosen.manifest.run_id == good.manifest.run_id
    assert resolve_bundle(good.manifest.run_id, db).manifest.run_id == good.manifest.run_id


def test_the_thresholds_table_of_the_targets_file(tmp_path: Path) -> None:
    from harness.errors import TargetsError
    from harness.judge.targets import (
        DEFAULT_TARGETS_PATH,
        load_targets,
        load_thresholds,
    )

    assert load_thresholds(DEFAULT_TARGETS_PATH) == {}
    assert load_targets(DEFAULT_TARGETS_PATH)  # the shipped file still loads
    path = tmp_path / "targets.toml"
    header = "schema = 1\n\n[[target]]\n" + "\n".join(
        f'{key} = "{value}"'
        for key, value in {
            "name": "t",
            "workload": "scheduler_latency",
            "metric": "task_latency",
            "statistic": "p95",
            "clock": "wall",
            "unit": "s",
            "direction": "max",
            "description": "d",
        }.items()
    )
    path.write_text(
        header + "\nbound = 0.25\n\n[thresholds]\nscheduler_latency = 0.08\n", encoding="utf-8"
    )
    assert load_thresholds(path) == {"scheduler_latency": 0.08}
    assert len(load_targets(path)) == 1
    path.write_text(header + "\nbound = 0.25\n\n[thresholds]\nnope = 0.08\n", encoding="utf-8")
    with pytest.raises(TargetsError, match=r"targets.toml:15: field thresholds.nope"):
        load_thresholds(path)
    with pytest.raises(TargetsError, match="unknown workload 'nope'"):
        load_targets(path)
    path.write_text(
        header + "\nbound = 0.25\n\n[thresholds]\nscheduler_latency = 5\n", encoding="utf-8"
    )
    with pytest.raises(TargetsError, match=r"a fraction in \(0, 1\)"):
        load_thresholds(path)


def test_the_readme_and_help_show_the_same_verdict_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from harness.cli import main

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Verdicts and exit codes", 1)[1]
    assert verdict_table() in section
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    assert verdict_table() in capsys.readouterr().out


def test_a_metric_the_registry_does_not_describe_is_an_error_naming_it(tmp_path: Path) -> None:
    spec = Spec(metrics={("w", "unheard_of"): ("s", "wall", lognormal(1.0, 0.01))})
    base = write_side(tmp_path, "base", spec)
    candidate = write_side(tmp_path, "candidate", spec)
    with pytest.raises(BundleError, match="'unheard_of' of workload 'w' is not in the workload"):
        compare_bundles(base, candidate)


def test_a_peers_own_figure_is_shown_never_judged(tmp_path: Path) -> None:
    """LangGraph's own overhead 'faster' between two runs of one commit was machine drift."""
    base = Spec(metrics={("w", "peer_cost"): ("s", "wall", lognormal(1.0, 0.002))})
    candidate = Spec(metrics={("w", "peer_cost"): ("s", "wall", lognormal(1.0, 0.002, slow=0.9))})
    comparison = compare_bundles(*pair(tmp_path, base, candidate))
    (row,) = [row for row in comparison.rows if row.metric == "peer_cost"]
    assert row.verdict is RowVerdict.REFERENCE
    assert row.ratio == pytest.approx(0.9, rel=0.02)  # its figure is there
    assert row.p_adjusted is None  # and it is not among the tests BH adjusts over
    assert comparison.verdict is ComparisonVerdict.PASS


def test_a_percentile_the_rounds_are_too_small_for_is_left_out_saying_why(
    tmp_path: Path,
) -> None:
    spec = Spec(metrics={("w", "few_values"): ("s", "wall", lognormal(1.0, 0.3, count=24))})
    comparison = compare_bundles(*pair(tmp_path, spec))
    assert {r.statistic for r in comparison.rows if r.metric == "few_values"} == {"p50", "p95"}
    assert any(
        "p99 left out of 1 row(s) with fewer than 100 values a round: w/few_values" in warning
        for warning in comparison.warnings
    )


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (10_000.0, RowVerdict.NO_CHANGE),  # the same count
        (10_015.0, RowVerdict.NO_CHANGE),  # 0.15 %: within the clock's floor (memory layout)
        (10_040.0, RowVerdict.NO_CHANGE),  # 0.4 %: as far as two worktrees of a commit differ
        (10_070.0, RowVerdict.SLOWER),  # 0.7 %: a real change, within the 1 % threshold
        (10_150.0, RowVerdict.REGRESSION),  # 1.5 %: beyond the instruction clock's 1 %
        (9_800.0, RowVerdict.FASTER),
    ],
)
def test_instruction_rows_are_judged_exactly_with_their_own_floor_and_threshold(
    tmp_path: Path, candidate: float, expected: RowVerdict
) -> None:
    key = ("instructions", "instructions_pool_item_c1")
    base = Spec(metrics={key: ("instructions", "instructions", constant(10_000.0))})
    other = Spec(
        metrics={key: ("instructions", "instructions", constant(10_000.0, candidate=candidate))}
    )
    comparison = compare_bundles(*pair(tmp_path, base, other, rounds=1, interleaved=False))
    (row,) = [r for r in comparison.rows if r.metric == key[1]]
    assert (row.clock, row.verdict, row.threshold) == ("instructions", expected, 0.01)
    assert row.mde == pytest.approx(0.005) and row.p_raw is None
    assert row.ratio == pytest.approx(candidate / 10_000.0)


# --------------------------------------------------------------------------- instruction twins

_TWIN = ("instructions", "instructions_pool_item_c1")


def _cpu_spec(
    *, wall_noise: float, wall_slow: float = 1.0, instructions: float | None = 10_000.0
) -> tuple[Spec, Spec]:
    """Base and candidate: cpu/item_cost in wall time, and (unless None) its twin's count."""
    sides = []
    for candidate in (False, True):
        metrics: dict[tuple[str, str], tuple[str, str, RoundFn]] = {
            ("cpu", "item_cost"): (
                "s",
                "wall",
                lognormal(1e-6, wall_noise, slow=wall_slow, drift=0.0),
            ),
        }
        if instructions is not None:
            count = instructions if candidate else 10_000.0
            metrics[_TWIN] = ("instructions", "instructions", constant(count))
        sides.append(Spec(metrics=metrics))
    return sides[0], sides[1]


def _row(comparison: object, workload: str, metric: str) -> Any:
    return next(
        r
        for r in comparison.rows  # type: ignore[attr-defined]
        if (r.workload, r.metric) == (workload, metric)
    )


def test_a_wall_row_its_noise_leaves_undecided_is_decided_by_its_instruction_twin(
    tmp_path: Path,
) -> None:
    base, candidate = _cpu_spec(wall_noise=0.3)
    comparison = compare_bundles(*pair(tmp_path, base, candidate))
    wall = _row(comparison, "cpu", "item_cost")
    assert wall.verdict is RowVerdict.BY_INSTRUCTIONS
    assert wall.mde > wall.threshold  # the wall clock alone could not tell
    assert "instructions/instructions_pool_item_c1: no change 1.000" in wall.note
    assert f"wall undecided (MDE {wall.mde:.1%} > 5%)" in wall.note

    assert _row(comparison, *_TWIN).verdict is RowVerdict.NO_CHANGE
    assert comparison.verdict is ComparisonVerdict.PASS
    assert wall.as_json()["verdict"] == "by instructions" and wall.as_json()["note"] == wall.note
    assert "notes (wall rows beside their instruction twins):" in format_table(comparison)
    assert f"cpu/item_cost/median: {wall.note}" in format_table(comparison)


def test_an_unbounded_wall_mde_is_said_in_words(tmp_path: Path) -> None:
    base, candidate = _cpu_spec(wall_noise=0.3)
    wall = _row(compare_bundles(*pair(tmp_path, base, candidate, rounds=2)), "cpu", "item_cost")
    assert wall.verdict is RowVerdict.BY_INSTRUCTIONS
    assert wall.note.startswith("wall undecided (MDE unbounded > 5%)")


def test_without_its_twin_an_undecided_wall_row_stays_inconclusive(tmp_path: Path) -> None:
    base, candidate = _cpu_spec(wall_noise=0.3, instructions=None)
    comparison = compare_bundles(*pair(tmp_path, base, candidate))
    wall = _row(comparison, "cpu", "item_cost")
    assert (wall.verdict, wall.note) == (RowVerdict.INCONCLUSIVE, "")
    assert comparison.verdict is ComparisonVerdict.INCONCLUSIVE


def test_a_twin_that_regressed_decides_the_undecided_wall_row_and_the_comparison(
    tmp_path: Path,
) -> None:
    base, candidate = _cpu_spec(wall_noise=0.3, instructions=10_150.0)
    comparison = compare_bundles(*pair(tmp_path, base, candidate))
    wall = _row(comparison, "cpu", "item_cost")
    assert wall.verdict is RowVerdict.BY_INSTRUCTIONS
    assert "regression 1.015" in wall.note
    assert comparison.verdict is ComparisonVerdict.REGRESSION
    assert any("instructions/instructions_pool_item_c1" in r for r in comparison.reasons)


@pytest.mark.parametrize(
    ("wall_slow", "instructions", "verdict", "meaning"),
    [
        (1.3, 10_000.0, RowVerdict.REGRESSION, "waiting or scheduling, not more CPU work"),
        (1.0, 10_150.0, RowVerdict.NO_CHANGE, "more CPU work on this path, within the wall"),
        (0.7, 10_000.0, RowVerdict.FASTER, "waiting or scheduling, not less CPU work"),
        (1.0, 9_800.0, RowVerdict.NO_CHANGE, "less CPU work on this path"),
    ],
)
def test_a_decided_wall_row_says_when_its_twin_disagrees(
    tmp_path: Path, wall_slow: float, instructions: float, verdict: RowVerdict, meaning: str
) -> None:
    base, candidate = _cpu_spec(wall_noise=0.005, wall_slow=wall_slow, instructions=instructions)
    wall = _row(compare_bundles(*pair(tmp_path, base, candidate)), "cpu", "item_cost")
    assert wall.verdict is verdict  # its own verdict is kept
    assert wall.note.startswith("clocks disagree: wall ") and meaning in wall.note


def test_clocks_that_agree_add_no_note(tmp_path: Path) -> None:
    base, candidate = _cpu_spec(wall_noise=0.005, wall_slow=1.3, instructions=13_000.0)
    wall = _row(compare_bundles(*pair(tmp_path, base, candidate)), "cpu", "item_cost")
    assert (wall.verdict, wall.note) == (RowVerdict.REGRESSION, "")


def test_a_workloads_pyperf_row_reads_its_pyperf_twin(tmp_path: Path) -> None:
    base, candidate = _cpu_spec(wall_noise=0.005)
    for spec in (base, candidate):
        spec.pyperf["cpu"] = lognormal(0.5, 0.3, count=3, drift=0.0)
    comparison = compare_bundles(*pair(tmp_path, base, candidate))
    assert _row(comparison, "cpu", "pyperf").verdict is RowVerdict.BY_INSTRUCTIONS


def test_every_twin_in_the_registry_is_an_instruction_metric() -> None:
    instruction_metrics = set(registry.WORKLOADS["instructions"].metric_names)
    fake = {info.name for info in FAKE_WORKLOADS}
    twins = {
        (info.name, twin)
        for info in registry.WORKLOADS.values()
        if info.name not in fake
        for twin in (info.pyperf_twin, *(m.twin for m in info.metrics))
        if twin
    }
    assert twins and {twin for _, twin in twins} <= instruction_metrics
    # Only wall-clock workloads have twins, and never the instruction pass itself.
    assert {registry.WORKLOADS[name].clock for name, _ in twins} == {"wall"}
