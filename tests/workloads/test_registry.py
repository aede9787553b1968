"""The workload registry is consistent with what reads it."""

from __future__ import annotations

from harness.measure.profiles import HotPath
from workloads import hot_paths, registry


def test_every_hot_path_the_registry_names_is_profiled() -> None:
    named = {info.hot_path for info in registry.WORKLOADS.values() if info.hot_path}
    assert named and named <= {path.value for path in HotPath}


def test_the_profiler_knows_exactly_the_paths_the_workloads_define() -> None:
    assert set(hot_paths.PATHS) == {path.value for path in HotPath}
    for name, path in hot_paths.PATHS.items():
        assert path.work_unit in {"task", "call", "item"}, name
        # A legacy path is the counterpart of a pooled one (the report pairs them).
        assert name.removesuffix(hot_paths.LEGACY_SUFFIX) in hot_paths.PATHS, name


def test_every_profile_replays_every_shipped_trace_it_names_and_the_files_exist() -> None:
    assert set(registry.REPLAY_CHECKS) == set(registry.PROFILES)
    for checks in registry.REPLAY_CHECKS.values():
        traces = [check.trace for check in checks]
        assert len(traces) == len(set(traces))
        for check in checks:
            assert registry.trace_path(check.trace).is_file()
            assert check.modes and check.concurrencies and check.runs >= 1
    # Every trace a workload replays is checked for determinism by every profile.
    used = {trace for info in registry.WORKLOADS.values() for trace in info.traces}
    for checks in registry.REPLAY_CHECKS.values():
        assert used <= {check.trace for check in checks}
