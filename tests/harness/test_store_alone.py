"""The history store alone is enough: a run rebuilt from it compares as its bundle does.

The nightly CI job keeps only ``reports/history.sqlite`` between nights; these
tests copy the store into an empty directory, delete every bundle directory and
check that ``harness compare --last-good`` and the trends still work.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import msgspec
import pytest

from harness.bundle.files import Bundle, WorkloadRun, load_bundle, write_bundle
from harness.cli import main
from harness.judge.compare import last_good_bundle, resolve_bundle
from harness.judge.rounds import metric_rounds
from harness.report.sections import trend_section
from harness.store import queries
from harness.store.db import HistoryStore

from ._bundles import make_manifest, make_samples, make_suite
from .test_store_size import synthetic_bundle

WORKLOADS = ("scheduler_latency", "hook_latency", "approval_wait", "scheduler_throughput")
BASE_ID = "20240101T000000Z-0123456-000base"
CANDIDATE_ID = "20240102T000000Z-0123456-candid"


def _stored(tmp_path: Path, bundle_dir: Path) -> tuple[Bundle, Bundle]:
    """The bundle at ``bundle_dir``, and the same run rebuilt from a store alone."""
    store = HistoryStore(tmp_path / "history.sqlite")
    bundle = load_bundle(bundle_dir)
    assert store.append_run(bundle)
    shutil.rmtree(bundle_dir)
    return bundle, store.load_run(bundle.manifest.run_id)


def test_a_run_rebuilt_from_the_store_is_its_bundle(tmp_path: Path) -> None:
    bundle, rebuilt = _stored(tmp_path, synthetic_bundle(tmp_path, "fast"))
    assert rebuilt.path == bundle.path.resolve()
    assert not rebuilt.path.exists()
    assert rebuilt.manifest == bundle.manifest
    assert rebuilt.samples == bundle.samples  # same order, bit-identical values
    assert rebuilt.pyperf_samples() == bundle.pyperf_samples()
    assert metric_rounds(rebuilt) == metric_rounds(bundle)
    assert rebuilt.metrics == () and rebuilt.profiles == ()


def test_interleaved_rounds_still_pair_by_round_after_the_store(tmp_path: Path) -> None:
    bundle, rebuilt = _stored(
        tmp_path, synthetic_bundle(tmp_path, "fast", workloads=WORKLOADS, interleave="candidate")
    )
    rounds = metric_rounds(rebuilt)
    assert rounds == metric_rounds(bundle)
    pyperf = rounds[("scheduler_latency", "pyperf")]
    assert [name for name, _ in pyperf.rounds] == [f"r{k}" for k in range(9)]


def test_a_workload_of_two_benchmarks_keeps_each_one(tmp_path: Path) -> None:
    manifest = make_manifest()
    (workload,) = manifest.workloads
    two = msgspec.structs.replace(workload, benchmarks=["fake_a", "fake_b"])
    manifest = msgspec.structs.replace(manifest, workloads=[two, _other_workload()])
    suite = make_suite(
        {"fake_a": [[0.1, 0.2], [0.3]], "fake_b": [[0.4]], "other": [[0.5, 0.6, 0.7]]}
    )
    bundle_dir = write_bundle(tmp_path, manifest, suite, make_samples(), [])
    bundle, rebuilt = _stored(tmp_path, bundle_dir)
    rounds = metric_rounds(rebuilt)
    assert rounds == metric_rounds(bundle)
    assert {key for key in rounds if key[1].startswith("pyperf")} == {
        ("fake", "pyperf:fake_a"),
        ("fake", "pyperf:fake_b"),
        ("other", "pyperf"),
    }
    assert rounds[("fake", "pyperf:fake_a")].rounds == (("run0", (0.1, 0.2)), ("run1", (0.3,)))


def _other_workload() -> WorkloadRun:
    return WorkloadRun(
        name="other", clock="wall", benchmarks=["other"], samples=0, elapsed_s=1.0, traces=[]
    )


def _two_nights(reports: Path) -> Path:
    """A good night and a slower one in ``reports``, both stored; the store's path."""
    base = synthetic_bundle(
        reports, "fast", run_id=BASE_ID, workloads=WORKLOADS, started_utc="2024-01-01T00:00:00Z"
    )
    candidate = synthetic_bundle(
        reports,
        "fast",
        run_id=CANDIDATE_ID,
        workloads=WORKLOADS,
        started_utc="2024-01-02T00:00:00Z",
        seed=1,
        slow=1.3,
    )
    store = HistoryStore(reports / "history.sqlite")
    for path in (base, candidate):
        assert store.append_run(load_bundle(path))
    return store.path


def _compare(db: Path, out: Path) -> tuple[int, dict[str, object]]:
    status = main(["compare", "--last-good", CANDIDATE_ID, "--db", str(db), "--json", str(out)])
    data = json.loads(out.read_text(encoding="utf-8"))
    return status, data


def test_compare_last_good_works_with_only_the_history_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    db = _two_nights(reports)
    status_dirs, with_dirs = _compare(db, tmp_path / "with-dirs.json")
    # Tomorrow's fresh runner: the store restored alone, no bundle directory.
    runner = tmp_path / "fresh-runner"
    runner.mkdir()
    shutil.copy(db, runner / "history.sqlite")
    shutil.rmtree(reports)
    capsys.readouterr()
    status, alone = _compare(runner / "history.sqlite", tmp_path / "alone.json")
    table = capsys.readouterr().out
    assert status in (0, 1)
    assert status == status_dirs
    assert alone == with_dirs  # the same rows, numbers and verdict as with the directories
    assert alone["base"] == {"run_id": BASE_ID, "path": str(reports.resolve() / BASE_ID)}
    assert table.startswith("verdict: ")
    assert "scheduler_latency" in table and "task_latency" in table
    rows = alone["rows"]
    assert isinstance(rows, list) and len(rows) > 10


def test_trends_and_last_good_read_the_store_alone(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    db = _two_nights(reports)
    shutil.rmtree(reports / BASE_ID)
    shutil.rmtree(reports / CANDIDATE_ID)
    base = last_good_bundle(db, exclude=CANDIDATE_ID)
    assert base.manifest.run_id == BASE_ID
    good = HistoryStore(db).last_good_run(exclude=CANDIDATE_ID)
    assert good is not None and good.run_id == BASE_ID and good.values_stored
    assert good.git_sha == base.manifest.environment.git.sha
    assert good.fingerprint == base.manifest.environment.fingerprint_digest
    candidate = resolve_bundle(CANDIDATE_ID, db)
    trends = trend_section(candidate, db, limit=10)
    assert trends.charts and len(trends.charts) == len(candidate.manifest.verdicts)
    frame = queries.runs(HistoryStore(db))
    assert frame["run_id"].tolist() == [BASE_ID, CANDIDATE_ID]
    assert frame["values"].tolist() == [True, True]
    target = candidate.manifest.verdicts[0].target.name
    values = queries.target_history(HistoryStore(db), target)["value"].tolist()
    assert values[-1] == candidate.manifest.verdicts[0].value


def test_a_bundle_directory_that_still_exists_is_read_from_disk(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    db = _two_nights(reports)
    from_disk = resolve_bundle(BASE_ID, db)
    assert from_disk.metrics  # the store keeps no OpenTelemetry points; the directory does
    assert from_disk.path == reports.resolve() / BASE_ID
