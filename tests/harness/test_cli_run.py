"""``harness run`` and ``harness history`` through the CLI: output and exit statuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.bundle.files import load_bundle
from harness.cli import main

from . import _fake_workload as fake


def _run_argv(tmp_path: Path, targets: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--profile",
        "fast",
        "--out",
        str(tmp_path / "reports"),
        "--targets",
        str(targets),
        *extra,
    ]


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("harness: error: ")
    return lines[0]


def test_run_prints_the_table_and_the_bundle_and_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.install(monkeypatch, tmp_path)
    status = main(_run_argv(tmp_path, fake.write_targets(tmp_path)))
    out, err = capsys.readouterr()
    assert status == 0
    assert "[1/1] fake ... done in" in err
    assert out.splitlines()[0].split()[:2] == ["target", "value"]
    assert "op_latency_p95" in out and "PASS" in out
    bundle_line = out.strip().splitlines()[-1]
    assert bundle_line.startswith("bundle: ")
    bundle = load_bundle(bundle_line.removeprefix("bundle: "))
    assert bundle.manifest.passed


def test_run_exits_1_when_a_target_is_missed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.install(monkeypatch, tmp_path)
    status = main(_run_argv(tmp_path, fake.write_targets(tmp_path, bound=0.001), "--no-history"))
    out, _ = capsys.readouterr()
    assert status == 1
    assert "FAIL" in out


def test_unknown_workload_exits_2_naming_the_valid_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.install(monkeypatch, tmp_path)
    status = main(_run_argv(tmp_path, fake.write_targets(tmp_path), "--workload", "nope"))
    line = _one_error_line(capsys.readouterr().err)
    assert status == 2
    assert "unknown workload 'nope'" in line and "expected one of fake" in line


def test_unwritable_output_directory_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.install(monkeypatch, tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    argv = _run_argv(tmp_path, fake.write_targets(tmp_path))
    argv[argv.index("--out") + 1] = str(blocker / "reports")
    status = main(argv)
    line = _one_error_line(capsys.readouterr().err)
    assert status == 2
    assert f"{blocker / 'reports'}: cannot write to the output directory" in line


def test_bad_targets_file_exits_2_naming_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.install(monkeypatch, tmp_path)
    targets = fake.write_targets(tmp_path)
    targets.write_text(targets.read_text().replace('workload = "fake"', 'workload = "nope"', 1))
    status = main(_run_argv(tmp_path, targets))
    line = _one_error_line(capsys.readouterr().err)
    assert status == 2
    assert f"{targets}:5: field workload: unknown workload 'nope'" in line


def test_a_failing_workload_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.install(monkeypatch, tmp_path, fail=True)
    status = main(_run_argv(tmp_path, fake.write_targets(tmp_path)))
    err = capsys.readouterr().err
    assert status == 2
    assert "RuntimeError: boom" in err
    assert err.strip().splitlines()[-1].startswith("harness: error: ")


def test_history_lists_runs_and_one_targets_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.install(monkeypatch, tmp_path)
    targets = fake.write_targets(tmp_path)
    assert main(_run_argv(tmp_path, targets, "--no-replay")) == 0
    run_id = capsys.readouterr().out.strip().splitlines()[-1].rsplit("/", 1)[-1]
    db = str(tmp_path / "reports" / "history.sqlite")

    assert main(["history", "--db", db]) == 0
    listing = capsys.readouterr().out
    assert run_id in listing and "1/1" not in listing and "2/2" in listing

    assert main(["history", "--db", db, "--target", "op_latency_p95"]) == 0
    values = capsys.readouterr().out
    assert run_id in values and "0.03" in values

    assert main(["history", "--db", db, "--target", "nope"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "expected one of: fake_op_pyperf_median, op_latency_p95" in line


def test_history_without_a_store_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["history", "--db", str(tmp_path / "history.sqlite")])
    assert status == 2
    assert "no history store" in _one_error_line(capsys.readouterr().err)
