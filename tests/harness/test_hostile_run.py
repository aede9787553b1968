"""`harness run` checks every input before the first workload; stale scratch is removed."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import harness.measure.preflight
from harness.bundle.files import load_bundle
from harness.errors import EnvironmentRefused, TargetsError
from harness.judge.targets import DEFAULT_TARGETS_PATH, load_targets, parse_targets
from harness.measure.run import RunOptions, run
from harness.measure.workload_process import (
    SCRATCH_LOCK,
    STALE_SCRATCH_AGE_S,
    clean_stale_scratch,
    scratch_dir,
)
from harness.store.db import HistoryStore
from reference_impl.errors import ConfigError
from workloads import registry

from . import _fake_workload as fake
from ._bundles import build_bundle

RUN_ID = "20240101T000000Z-0123456-abcdef"
OLD = STALE_SCRATCH_AGE_S + 60.0


def _no_workload_may_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The fake registry, whose command fails the test if any workload is started."""
    fake.install(monkeypatch, tmp_path)

    def command(name: str, profile: registry.Profile, output: Path) -> list[str]:
        pytest.fail(f"workload {name} started before the input was checked")

    monkeypatch.setattr(registry, "command", command)
    return fake.write_targets(tmp_path)


def _options(tmp_path: Path, targets: Path) -> RunOptions:
    return RunOptions(
        profile="fast", out_dir=tmp_path / "reports", targets_path=targets, system_show=False
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AGENTBENCH_INJECT_SLOWDOWN", "ten percent"),
        ("AGENTBENCH_INJECT_SLOWDOWN", "-0.1"),
        ("AGENTBENCH_INJECT_CPU", "nan"),
        ("AGENTBENCH_INJECT_CPU", "50"),
    ],
)
def test_a_bad_switch_is_refused_before_the_first_workload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    targets = _no_workload_may_start(monkeypatch, tmp_path)
    monkeypatch.setenv(variable, value)
    with pytest.raises(EnvironmentRefused) as info:
        run(_options(tmp_path, targets), progress=io.StringIO())
    assert info.value.where == variable
    assert repr(value) in str(info.value)
    assert "\n" not in str(info.value)


def test_a_history_store_that_is_a_directory_is_refused_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = _no_workload_may_start(monkeypatch, tmp_path)
    (tmp_path / "reports" / "history.sqlite").mkdir(parents=True)
    with pytest.raises(EnvironmentRefused, match="a directory, not a history store"):
        run(_options(tmp_path, targets), progress=io.StringIO())


def test_a_file_that_is_not_a_history_store_is_refused_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = _no_workload_may_start(monkeypatch, tmp_path)
    (tmp_path / "reports").mkdir()
    store = tmp_path / "reports" / "history.sqlite"
    store.write_text("these are my notes, not a database\n")
    with pytest.raises(EnvironmentRefused) as info:
        run(_options(tmp_path, targets), progress=io.StringIO())
    assert str(store) in str(info.value)
    assert store.read_text() == "these are my notes, not a database\n"


def test_a_history_store_of_a_newer_schema_is_refused_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    store = reports / "history.sqlite"
    HistoryStore(store).append_run(load_bundle(build_bundle(reports)))
    with sqlite3.connect(store) as connection:
        connection.execute("UPDATE schema_version SET version = 99")
    connection.close()
    targets = _no_workload_may_start(monkeypatch, tmp_path)
    with pytest.raises(EnvironmentRefused, match="history store of schema version 99"):
        run(_options(tmp_path, targets), progress=io.StringIO())


def test_no_history_skips_the_store_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    targets = _no_workload_may_start(monkeypatch, tmp_path)
    (tmp_path / "reports" / "history.sqlite").mkdir(parents=True)
    monkeypatch.setenv("AGENTBENCH_INJECT_CPU", "x")  # the switches are still checked
    options = RunOptions(
        profile="fast",
        out_dir=tmp_path / "reports",
        targets_path=targets,
        system_show=False,
        history=False,
    )
    with pytest.raises(EnvironmentRefused, match="AGENTBENCH_INJECT_CPU"):
        run(options, progress=io.StringIO())


@pytest.mark.parametrize(("unit", "name"), [("s", "prp_end_to_end_makespan"), ("per_hour", "")])
def test_a_negative_bound_in_seconds_or_per_hour_names_its_line(unit: str, name: str) -> None:
    text = DEFAULT_TARGETS_PATH.read_text()
    old = "bound = 600.0" if unit == "s" else "bound = 30.0\n"
    new = "bound = -600.0" if unit == "s" else "bound = -30.0\n"
    line = text[: text.index(old)].count("\n") + 1
    with pytest.raises(TargetsError) as info:
        parse_targets(text.replace(old, new, 1), "targets.toml")
    assert f"targets.toml:{line}: field bound: bound is -" in str(info.value)
    assert f"a bound >= 0 for unit {unit}" in str(info.value)


def test_a_negative_ratio_bound_is_still_a_bound() -> None:
    text = DEFAULT_TARGETS_PATH.read_text().replace("bound = 0.20", "bound = -0.20", 1)
    (gain,) = [t for t in parse_targets(text, "targets.toml") if t.name == "throughput_gain"]
    assert gain.bound == -0.2


def test_a_negative_bound_stops_a_run_before_it_measures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_workload_may_start(monkeypatch, tmp_path)
    targets = fake.write_targets(tmp_path, bound=-0.25)
    with pytest.raises(TargetsError, match="a bound >= 0 for unit s"):
        run(_options(tmp_path, targets), progress=io.StringIO())
    with pytest.raises(TargetsError):
        load_targets(targets, registry.WORKLOADS)


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_stale_unlocked_run_scratch_is_removed_and_everything_else_kept(tmp_path: Path) -> None:
    stale = tmp_path / f"agentbench-{RUN_ID}-dead0001"
    stale.mkdir()
    (stale / "samples").mkdir()
    (stale / SCRATCH_LOCK).touch()  # a lock file nobody holds: its run was SIGKILLed
    pre_lock = tmp_path / f"agentbench-{RUN_ID}-old00002"  # a harness before the locks
    pre_lock.mkdir()
    fresh = tmp_path / f"agentbench-{RUN_ID}-fresh003"
    fresh.mkdir()
    calibrate = tmp_path / "agentbench-calibrate-xyz"  # not a run's: never touched
    calibrate.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / f"agentbench-{RUN_ID}-link0004"
    link.symlink_to(elsewhere)
    for path in (stale, pre_lock, calibrate, elsewhere):
        _age(path, OLD)
    os.utime(link, (time.time() - OLD,) * 2, follow_symlinks=False)

    removed = clean_stale_scratch(tmp_path)

    assert sorted(removed) == sorted([stale, pre_lock])
    assert not stale.exists() and not pre_lock.exists()
    assert fresh.is_dir() and calibrate.is_dir() and link.is_symlink() and elsewhere.is_dir()


def test_a_scratch_dir_held_by_a_live_run_is_never_removed(tmp_path: Path) -> None:
    with scratch_dir(RUN_ID, root=tmp_path) as live:
        assert (live / SCRATCH_LOCK).is_file()
        _age(live, OLD)
        assert clean_stale_scratch(tmp_path) == []
        assert live.is_dir()
    assert not live.exists()  # removed by its own run at the end


def test_a_scratch_dir_held_by_another_live_process_is_kept_until_it_dies(tmp_path: Path) -> None:
    held = tmp_path / f"agentbench-{RUN_ID}-other005"
    held.mkdir()
    (held / SCRATCH_LOCK).touch()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys; f = open(sys.argv[1], 'rb'); "
            "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()",
            str(held / SCRATCH_LOCK),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        _age(held, OLD)
        assert clean_stale_scratch(tmp_path) == []
        assert held.is_dir()
    finally:
        holder.kill()  # SIGKILL: the lock dies with the process, the directory stays
        holder.wait()
        for stream in (holder.stdin, holder.stdout):
            if stream is not None:
                stream.close()
    _age(held, OLD)
    assert clean_stale_scratch(tmp_path) == [held]


def test_run_cleans_stale_scratch_at_start_and_leaves_none_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))
    stale = scratch_root / f"agentbench-{RUN_ID}-dead0001"
    stale.mkdir()
    _age(stale, OLD)
    fake.install(monkeypatch, tmp_path)
    result = run(_options(tmp_path, fake.write_targets(tmp_path)), progress=io.StringIO())
    assert result.exit_status == 0
    assert [p.name for p in scratch_root.iterdir() if p.name.startswith("agentbench-")] == []


def test_a_check_switches_error_is_an_environment_refusal_not_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTBENCH_INJECT_CPU", "lots")
    with pytest.raises(EnvironmentRefused) as info:
        harness.measure.preflight.check_switches()
    assert not isinstance(info.value, ConfigError)
    assert str(info.value).startswith("AGENTBENCH_INJECT_CPU: 'lots'")
