"""The targets file's validation and a target's verdict."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from harness.bundle.verdicts import (
    Direction,
    SpreadMethod,
    Statistic,
    TargetOutcome,
    statistic_of,
)
from harness.errors import TargetsError, WorkloadError
from harness.judge.targets import (
    DEFAULT_TARGETS_PATH,
    load_targets,
    parse_targets,
)
from harness.judge.verdict import evaluate, measurement_of
from workloads.registry import WORKLOADS, WorkloadInfo, latency
from workloads.samples import MetricSamples

from ._bundles import LATENCY_TARGET

FAKE_WORKLOADS = {
    "fake": WorkloadInfo("fake", "a fake workload", "wall", (latency("op_latency", 1),))
}

GOOD = """\
schema = 1

[[target]]
name = "op_latency_p95"
workload = "fake"
metric = "op_latency"
statistic = "p95"
clock = "wall"
unit = "s"
bound = 0.25
direction = "max"
description = "p95 of a fake operation"

[[target]]
name = "op_median"
workload = "fake"
metric = "op_latency"
statistic = "median"
clock = "wall"
unit = "s"
bound = 1
direction = "max"
description = "median of a fake operation"
"""


def test_shipped_targets_name_known_workloads_and_metrics() -> None:
    targets = load_targets(DEFAULT_TARGETS_PATH)
    assert len(targets) == 13
    assert len({t.name for t in targets}) == 13
    for target in targets:
        assert WORKLOADS[target.workload].metric(target.metric) is not None
        assert target.clock.value == WORKLOADS[target.workload].clock
    by_name = {t.name: t for t in targets}
    assert by_name["scheduler_p95_latency"].bound == 0.25
    assert by_name["gate_throughput"].direction is Direction.MIN
    # Ours over LangGraph's: a regression that erases the lead fails the night.
    assert by_name["graph_overhead_vs_langgraph_checkpointer"].bound == 0.10
    assert by_name["fanout_makespan_vs_langgraph_n256"].bound == 1.0


def test_parses_every_field_and_the_header_line() -> None:
    first, second = parse_targets(GOOD, "t.toml", FAKE_WORKLOADS)
    assert first == dataclasses.replace(LATENCY_TARGET, line=3)
    assert second.bound == 1.0
    assert isinstance(second.bound, float)
    assert second.line == 14


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ("bound = 0.25", "bound = ", 10, "not valid TOML"),
        ('unit = "s"\n', "", 3, "missing field 'unit'"),
        ("bound = 0.25", 'bound = "0.25"', 10, "a finite number"),
        ("bound = 0.25", "bound = true", 10, "a finite number"),
        ('workload = "fake"', 'workload = "nope"', 5, "unknown workload 'nope'"),
        ('metric = "op_latency"', 'metric = "op_latncy"', 6, "records no metric 'op_latncy'"),
        ('statistic = "p95"', 'statistic = "p90"', 7, "one of p50, p95, p99, median, mean"),
        ('direction = "max"', 'direction = "below"', 11, "one of max, min"),
        ('clock = "wall"', 'clock = "trace"', 8, "is on wall"),
        ('description = "p95 of a fake operation"', 'descripton = "x"', 12, "unknown field"),
        ('name = "op_median"', 'name = "op_latency_p95"', 15, "duplicate target name"),
        ('name = "op_latency_p95"', 'name = "Op Latency"', 4, "lower-case letters"),
        ("schema = 1", "schema = 2", 1, "schema version 2"),
    ],
)
def test_malformed_targets_name_file_line_and_expectation(
    old: str, new: str, line: int, message: str
) -> None:
    text = GOOD.replace(old, new, 1)
    with pytest.raises(TargetsError) as caught:
        parse_targets(text, "t.toml", FAKE_WORKLOADS)
    error = str(caught.value)
    assert f"t.toml:{line}" in error
    assert message in error
    assert caught.value.expected or "TOML" in error


def test_unknown_workload_error_lists_the_valid_ones() -> None:
    with pytest.raises(TargetsError) as caught:
        parse_targets(GOOD.replace('"fake"', '"nope"', 1), "t.toml", FAKE_WORKLOADS)
    assert caught.value.expected == "one of fake"
    assert "field workload" in caught.value.where


def test_pyperf_metric_must_be_wall_seconds() -> None:
    text = GOOD.replace('metric = "op_latency"', 'metric = "pyperf"', 1)
    assert parse_targets(text, "t.toml", FAKE_WORKLOADS)[0].metric == "pyperf"
    with pytest.raises(TargetsError, match="clock wall and unit s"):
        parse_targets(text.replace('unit = "s"', 'unit = "ratio"', 1), "t.toml", FAKE_WORKLOADS)


def test_no_targets_and_unreadable_file_are_errors(tmp_path: Path) -> None:
    with pytest.raises(TargetsError, match="no targets"):
        parse_targets("schema = 1\n", "t.toml", FAKE_WORKLOADS)
    with pytest.raises(TargetsError, match="cannot read") as caught:
        load_targets(tmp_path / "absent.toml", FAKE_WORKLOADS)
    assert caught.value.where == str(tmp_path / "absent.toml")


def test_max_target_passes_at_or_below_the_bound_with_positive_margin() -> None:
    verdict = evaluate(LATENCY_TARGET, [0.2] * 10)
    assert verdict.outcome is TargetOutcome.PASS
    assert verdict.passed
    assert verdict.value == pytest.approx(0.2)
    assert verdict.margin == pytest.approx(0.2)
    assert evaluate(LATENCY_TARGET, [0.25] * 3).passed


def test_max_target_fails_above_the_bound_with_negative_margin() -> None:
    verdict = evaluate(LATENCY_TARGET, [0.3] * 10)
    assert verdict.outcome is TargetOutcome.FAIL
    assert not verdict.passed
    assert verdict.margin == pytest.approx(-0.2)


def test_min_target_passes_above_and_fails_below_the_bound() -> None:
    gain = dataclasses.replace(
        LATENCY_TARGET, statistic=Statistic.MEDIAN, bound=0.2, direction=Direction.MIN
    )
    above = evaluate(gain, [0.3, 0.3, 0.3])
    below = evaluate(gain, [0.1, 0.1, 0.1])
    assert above.passed and above.margin == pytest.approx(0.5)
    assert not below.passed and below.margin == pytest.approx(-0.5)
    assert evaluate(gain, [0.2]).passed


def test_zero_bound_margin_is_absolute() -> None:
    target = dataclasses.replace(LATENCY_TARGET, bound=0.0)
    assert evaluate(target, [0.5]).margin == pytest.approx(-0.5)


def test_no_values_is_a_missing_verdict_that_fails() -> None:
    verdict = evaluate(LATENCY_TARGET, [])
    assert verdict.outcome is TargetOutcome.MISSING
    assert not verdict.passed
    assert verdict.value is None and verdict.margin is None and verdict.spread is None
    assert verdict.n == 0


def test_spread_resamples_rounds_contains_the_value_and_is_seeded() -> None:
    values = [0.01 * (i % 7 + 1) + 0.001 * (i // 10) for i in range(100)]
    rounds = [f"r{i // 10}" for i in range(100)]
    verdict = evaluate(LATENCY_TARGET, values, rounds=rounds)
    assert verdict.spread_method is SpreadMethod.BOOTSTRAP_ROUNDS
    assert verdict.rounds == 10 and verdict.n == 100
    assert verdict.spread is not None and verdict.value is not None
    low, high = verdict.spread
    assert low <= verdict.value <= high
    assert evaluate(LATENCY_TARGET, values, rounds=rounds) == verdict


def test_spread_resamples_values_without_rounds() -> None:
    verdict = evaluate(LATENCY_TARGET, [0.1, 0.2, 0.3])
    assert verdict.spread_method is SpreadMethod.BOOTSTRAP_VALUES
    assert evaluate(LATENCY_TARGET, [0.1, 0.2], rounds=["a", "a"]).spread_method is (
        SpreadMethod.BOOTSTRAP_VALUES
    )


def test_round_labels_must_match_the_values() -> None:
    with pytest.raises(ValueError, match="round labels"):
        evaluate(LATENCY_TARGET, [0.1, 0.2], rounds=["a"])


@pytest.mark.parametrize(
    ("statistic", "expected"),
    [
        (Statistic.P50, 50.5),
        (Statistic.MEDIAN, 50.5),
        (Statistic.P95, 95.05),
        (Statistic.P99, 99.01),
        (Statistic.MEAN, 50.5),
    ],
)
def test_statistics_use_linear_percentiles(statistic: Statistic, expected: float) -> None:
    assert statistic_of(range(1, 101), statistic) == pytest.approx(expected)


def test_measurement_keeps_each_value_with_its_round() -> None:
    samples = [
        MetricSamples("fake", "op_latency", "1-1", "s", "wall", (0.1, 0.2)),
        MetricSamples("fake", "other", "1-1", "s", "wall", (9.0,)),
        MetricSamples("fake", "op_latency", "2-1", "s", "wall", (0.3,)),
    ]
    measurement = measurement_of(LATENCY_TARGET, samples)
    assert measurement.values == (0.1, 0.2, 0.3)
    assert measurement.rounds == ("1-1", "1-1", "2-1")


def test_measurement_in_another_unit_is_a_workload_error() -> None:
    samples = [MetricSamples("fake", "op_latency", "1-1", "ms", "wall", (100.0,))]
    with pytest.raises(WorkloadError, match=re.escape("unit 'ms'")):
        measurement_of(LATENCY_TARGET, samples)
    nan = [MetricSamples("fake", "op_latency", "1-1", "s", "wall", (float("nan"),))]
    with pytest.raises(WorkloadError, match="not finite"):
        measurement_of(LATENCY_TARGET, nan)
