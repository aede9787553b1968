"""Run bundles: atomic writes, pyperf-readable results, validated loading."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.bundle.files import (
    MANIFEST,
    METRICS,
    RESULTS,
    SAMPLES,
    SCHEMA_VERSION,
    load_bundle,
    merge_results,
    new_run_id,
    write_bundle,
)
from harness.errors import BundleError, WorkloadError

from ._bundles import build_bundle, make_manifest, make_samples, make_suite

RUN_ID = "20240101T000000Z-0123456-abcdef"


def test_bundle_round_trips_every_file(tmp_path: Path) -> None:
    path = build_bundle(tmp_path, RUN_ID)
    assert path == tmp_path / RUN_ID
    assert sorted(p.name for p in path.iterdir()) == sorted([RESULTS, SAMPLES, METRICS, MANIFEST])
    loaded = load_bundle(path)
    assert loaded.manifest == make_manifest(RUN_ID)
    assert loaded.manifest.schema == SCHEMA_VERSION
    assert list(loaded.samples) == make_samples()
    assert loaded.metrics[0]["name"] == "kernel.pool.active"
    assert loaded.suite.get_benchmark_names() == ["fake_op"]
    assert json.loads((path / MANIFEST).read_text())["schema"] == SCHEMA_VERSION


def test_pyperf_values_become_one_round_per_process(tmp_path: Path) -> None:
    loaded = load_bundle(build_bundle(tmp_path, RUN_ID))
    rounds = loaded.pyperf_samples()
    assert [s.round for s in rounds] == ["fake_op-0", "fake_op-1"]
    assert {(s.workload, s.metric, s.unit, s.clock) for s in rounds} == {
        ("fake", "pyperf", "s", "wall")
    }
    assert rounds[0].values == (0.001, 0.0011, 0.0012)


def test_pyperf_stats_and_compare_to_read_results_unchanged(tmp_path: Path) -> None:
    first = build_bundle(tmp_path, RUN_ID)
    second = build_bundle(tmp_path, "20240102T000000Z-0123456-abcdef")
    stats = subprocess.run(
        [sys.executable, "-m", "pyperf", "stats", str(first / RESULTS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert stats.returncode == 0, stats.stderr
    assert "Raw value minimum: 1.00 ms" in stats.stdout
    compare = subprocess.run(
        [sys.executable, "-m", "pyperf", "compare_to", str(first / RESULTS), str(second / RESULTS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert compare.returncode == 0, compare.stderr


def test_exception_mid_write_leaves_no_bundle_and_no_temp_dir(tmp_path: Path) -> None:
    suite = make_suite({"fake_op": [[0.001, 0.002]]})
    unencodable = [{"name": "x", "value": object()}]
    with pytest.raises(TypeError):
        write_bundle(tmp_path, make_manifest(RUN_ID), suite, make_samples(), unencodable)
    assert list(tmp_path.iterdir()) == []


def test_failed_rename_leaves_no_bundle_and_no_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []

    def interrupted_rename(src: Path, dst: Path) -> None:
        seen.append(sorted(p.name for p in Path(src).iterdir()))
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "rename", interrupted_rename)
    with pytest.raises(KeyboardInterrupt):
        build_bundle(tmp_path, RUN_ID)
    assert seen == [sorted([RESULTS, SAMPLES, METRICS, MANIFEST])]
    assert list(tmp_path.iterdir()) == []


def test_an_existing_bundle_is_never_overwritten(tmp_path: Path) -> None:
    build_bundle(tmp_path, RUN_ID)
    before = (tmp_path / RUN_ID / MANIFEST).read_bytes()
    with pytest.raises(BundleError, match="already exists"):
        build_bundle(tmp_path, RUN_ID)
    assert (tmp_path / RUN_ID / MANIFEST).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [RUN_ID]


@pytest.mark.parametrize("missing", [RESULTS, SAMPLES, METRICS, MANIFEST])
def test_load_names_the_missing_file(tmp_path: Path, missing: str) -> None:
    path = build_bundle(tmp_path, RUN_ID)
    (path / missing).unlink()
    with pytest.raises(BundleError, match=f"{missing} is missing") as caught:
        load_bundle(path)
    assert caught.value.where == str(path / missing)


def test_load_rejects_a_directory_that_is_not_there(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no bundle directory"):
        load_bundle(tmp_path / "absent")


def test_load_names_the_bad_manifest_field(tmp_path: Path) -> None:
    path = build_bundle(tmp_path, RUN_ID)
    data = json.loads((path / MANIFEST).read_text())
    data["profile"]["processes"] = "many"
    (path / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(BundleError) as caught:
        load_bundle(path)
    assert caught.value.where == f"{path / MANIFEST}: field $.profile.processes"


def test_load_refuses_another_schema_version(tmp_path: Path) -> None:
    path = build_bundle(tmp_path, RUN_ID)
    data = json.loads((path / MANIFEST).read_text())
    data["schema"] = SCHEMA_VERSION + 1
    (path / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(BundleError, match=f"schema version {SCHEMA_VERSION + 1}"):
        load_bundle(path)


def test_load_names_the_bad_samples_line(tmp_path: Path) -> None:
    path = build_bundle(tmp_path, RUN_ID)
    with (path / SAMPLES).open("a") as fh:
        fh.write('{"workload": "fake"}\n')
    with pytest.raises(BundleError) as caught:
        load_bundle(path)
    assert caught.value.where == f"{path / SAMPLES}:3"


def test_load_rejects_results_that_are_not_pyperf(tmp_path: Path) -> None:
    path = build_bundle(tmp_path, RUN_ID)
    (path / RESULTS).write_text("{}")
    with pytest.raises(BundleError, match="not a pyperf benchmark suite"):
        load_bundle(path)


def test_load_rejects_a_manifest_benchmark_absent_from_results(tmp_path: Path) -> None:
    path = build_bundle(tmp_path, RUN_ID)
    other = make_suite({"other_op": [[0.1]]})
    (path / RESULTS).unlink()
    with (path / RESULTS).open("w") as fh:
        other.dump(fh)
    with pytest.raises(BundleError, match="'fake_op'"):
        load_bundle(path)


def test_merge_results_keeps_each_workloads_benchmarks(tmp_path: Path) -> None:
    outputs = []
    for workload, bench in (("a", "a_op"), ("b", "b_op")):
        output = tmp_path / f"{workload}.json"
        make_suite({bench: [[0.1, 0.2]]}).dump(str(output))
        outputs.append((workload, output))
    suite, benchmarks = merge_results(outputs)
    assert suite.get_benchmark_names() == ["a_op", "b_op"]
    assert benchmarks == {"a": ["a_op"], "b": ["b_op"]}


def test_merge_results_refuses_clashing_benchmark_names(tmp_path: Path) -> None:
    for workload in ("a", "b"):
        make_suite({"op": [[0.1]]}).dump(str(tmp_path / f"{workload}.json"))
    with pytest.raises(WorkloadError, match="both name a benchmark 'op'"):
        merge_results([("a", tmp_path / "a.json"), ("b", tmp_path / "b.json")])


def test_merge_results_reports_a_workload_without_results(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="workload a left no readable pyperf results"):
        merge_results([("a", tmp_path / "absent.json")])


def test_run_ids_sort_by_start_time() -> None:
    early = new_run_id("abc1234", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    late = new_run_id("0000000", datetime(2024, 1, 2, 3, 4, 6, tzinfo=UTC))
    assert re.fullmatch(r"20240102T030405Z-abc1234-[0-9a-f]{6}", early)
    assert sorted([late, early]) == [early, late]
    assert new_run_id("x") != new_run_id("x")


def test_bundle_files_are_fsynced_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    build_bundle(tmp_path, RUN_ID)
    # four files, the temporary directory, the output directory
    assert len(synced) == 6
