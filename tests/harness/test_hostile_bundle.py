"""Hostile bundles: bad bytes, missing lines, impossible values are one BundleError line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.bundle.files import MANIFEST, METRICS, RESULTS, SAMPLES, load_bundle
from harness.cli import main
from harness.errors import BundleError

from ._bundles import build_bundle


def _one_line(exc: BundleError) -> str:
    text = str(exc)
    assert "\n" not in text
    return text


def test_a_manifest_with_invalid_utf8_in_a_field_the_schema_pass_skips(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path)
    manifest = bundle / MANIFEST
    data = manifest.read_bytes()
    assert data.count(b'"hostname": "test"') == 1
    manifest.write_bytes(data.replace(b'"hostname": "test"', b'"hostname": "te\xffst"'))
    with pytest.raises(BundleError) as info:
        load_bundle(bundle)
    text = _one_line(info.value)
    assert str(manifest) in text
    assert "UTF-8" in text


@pytest.mark.parametrize("name", [MANIFEST, RESULTS, SAMPLES, METRICS])
def test_bad_bytes_in_any_bundle_file_are_one_error_naming_it(tmp_path: Path, name: str) -> None:
    bundle = build_bundle(tmp_path)
    path = bundle / name
    data = path.read_bytes()
    # Inside the first string of the file: still "JSON" to a byte-blind reader.
    at = data.index(b'"') + 1
    path.write_bytes(data[:at] + b"\xc3\x28\xff" + data[at:])
    with pytest.raises(BundleError) as info:
        load_bundle(bundle)
    assert str(path) in _one_line(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "top level is a JSON list"),
        ("null", "top level is a JSON NoneType"),
        ('"suite"', "top level is a JSON str"),
        ('{"version": "1.0", "metadata": 5, "benchmarks": []}', "metadata is a JSON int"),
        ('{"version": "1.0", "benchmarks": [5]}', "not a benchmark object"),
        ('{"version": "1.0", "benchmarks": [{"runs": ["x"]}]}', "not a benchmark object"),
    ],
)
def test_results_that_pyperf_would_meet_with_an_attribute_error(
    tmp_path: Path, content: str, message: str
) -> None:
    bundle = build_bundle(tmp_path)
    (bundle / RESULTS).write_text(content)
    with pytest.raises(BundleError, match=message) as info:
        load_bundle(bundle)
    assert str(bundle / RESULTS) in _one_line(info.value)


def test_a_samples_file_missing_lines_is_refused(tmp_path: Path) -> None:
    bundle = build_bundle(tmp_path)
    samples = bundle / SAMPLES
    lines = samples.read_text().splitlines(keepends=True)
    assert len(lines) == 2  # the manifest records 2 for workload "fake"
    samples.write_text(lines[0])
    with pytest.raises(BundleError) as info:
        load_bundle(bundle)
    text = _one_line(info.value)
    assert "1 sample lines of workload fake, but the manifest records 2" in text
    assert str(samples) in text


def test_sample_lines_of_a_workload_the_manifest_does_not_list_are_refused(
    tmp_path: Path,
) -> None:
    bundle = build_bundle(tmp_path)
    samples = bundle / SAMPLES
    lines = samples.read_text().splitlines(keepends=True)
    stray = json.loads(lines[0])
    stray["workload"] = "ghost"
    samples.write_text("".join(lines) + json.dumps(stray) + "\n")
    with pytest.raises(BundleError, match="workload ghost, which the manifest does not list"):
        load_bundle(bundle)


@pytest.mark.parametrize("unit", ["s", "per_hour"])
def test_a_negative_value_on_the_trace_clock_names_workload_metric_and_round(
    tmp_path: Path, unit: str
) -> None:
    bundle = build_bundle(tmp_path)
    samples = bundle / SAMPLES
    lines = samples.read_text().splitlines()
    second = json.loads(lines[1])
    second.update(clock="trace", unit=unit, values=[12.0, -3.5, 4.0])
    lines[1] = json.dumps(second)
    samples.write_text("\n".join(lines) + "\n")
    with pytest.raises(BundleError) as info:
        load_bundle(bundle)
    text = _one_line(info.value)
    assert f"{samples}:2" in text
    assert f"workload fake, metric op_latency, round {second['round']}: -3.5 {unit}" in text


def test_a_negative_wall_clock_value_is_kept(tmp_path: Path) -> None:
    """A wall-clock difference (an overhead: on minus off) may be below zero."""
    bundle = build_bundle(tmp_path)
    samples = bundle / SAMPLES
    lines = samples.read_text().splitlines()
    first = json.loads(lines[0])
    first["values"] = [-0.001, 0.002]
    lines[0] = json.dumps(first)
    samples.write_text("\n".join(lines) + "\n")
    assert load_bundle(bundle).samples[0].values == (-0.001, 0.002)


def test_the_report_command_says_it_in_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = build_bundle(tmp_path)
    (bundle / MANIFEST).write_bytes(b"\xff\xfe{}")
    assert main(["report", str(bundle), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("harness: error: ") and str(bundle / MANIFEST) in err[0]
    assert not (tmp_path / "r.html").exists()
