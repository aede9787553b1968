"""Enforcement profiles: the format, one clear error per malformation, the content-hash cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reference_impl import virtual_time
from reference_impl.errors import ConfigError
from reference_impl.mode import Mode
from reference_impl.prp import (
    GateSpec,
    ProfileSource,
    PrpConfig,
    PrpRunner,
    Severity,
    parse_profile,
)
from reference_impl.prp.demo import EXAMPLE_PROFILE

from .support import PROFILE, write_profile


def test_the_bundled_initial_profile_parses() -> None:
    profile = parse_profile(EXAMPLE_PROFILE, EXAMPLE_PROFILE.read_bytes())
    assert profile.name == "initial"
    assert [(r.pattern, r.severity) for r in profile.rules] == [
        ("docs-*", Severity.ADVISORY),
        ("*", Severity.REQUIRED),
    ]
    assert profile.gate_timeout_s == 900.0
    assert profile.threshold("approval_wait_max_s") == 30.0
    assert profile.threshold("absent") is None
    assert profile.severity_for("docs-check") is Severity.ADVISORY
    assert profile.severity_for("lint") is Severity.REQUIRED


def test_no_rule_means_required_and_prose_is_ignored() -> None:
    text = "\n# Profile: bare\n\nSome prose.\n\n## Thresholds\nMore prose.\n- x: 1.5\n"
    profile = parse_profile(Path("p.md"), text.encode())
    assert profile.name == "Profile: bare"
    assert profile.rules == ()
    assert profile.severity_for("anything") is Severity.REQUIRED
    assert profile.threshold("x") == 1.5


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "empty profile"),
        ("## Rules\n", 1, "expected a title"),
        ("just prose\n", 1, "expected a title"),
        ("# P\n\n## Rules\n- lint required\n", 4, "expected '- key: value'"),
        ("# P\n## Rules\n- lint:\n", 3, "expected '- key: value'"),
        ("# P\n## Rules\n- `lint`: mandatory\n", 3, "severity 'mandatory' is not"),
        ("# P\n## Thresholds\n- gate_timeout_s: soon\n", 3, "'soon' is not a number"),
        ("# P\n## Thresholds\n- gate_timeout_s: -5\n", 3, "must be positive"),
        ("# P\n## Thresholds\n- gate_timeout_s: nan\n", 3, "must be positive"),
        ("# P\n## Thresholds\n- a: 1\n- a: 2\n", 4, "'a' is already set on line 3"),
        ("# P\n## Rulez\n", 2, "unknown section 'Rulez'"),
        ("# P\n- a: 1\n", 2, "outside the Rules and Thresholds sections"),
        ("# P\n# Q\n", 2, "only one '# ' title"),
    ],
)
def test_a_malformed_profile_names_file_and_line(text: str, line: int, message: str) -> None:
    path = Path("profiles/bad.md")
    with pytest.raises(ConfigError, match=message) as caught:
        parse_profile(path, text.encode())
    assert caught.value.source == f"{path}:{line}"
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_bad_utf8_names_its_line() -> None:
    with pytest.raises(ConfigError, match="not valid UTF-8") as caught:
        parse_profile(Path("p.md"), b"# P\n## Rules\n- a: \xff\n")
    assert caught.value.source == "p.md:3"


@pytest.mark.parametrize("mode", list(Mode))
def test_an_unreadable_profile_names_the_file(tmp_path: Path, mode: Mode) -> None:
    missing = tmp_path / "absent.md"
    with pytest.raises(ConfigError, match="cannot read the enforcement profile") as caught:
        ProfileSource(mode).load(missing)
    assert caught.value.source == str(missing)


def _edit_keeping_size_and_mtime(path: Path, old: str, new: str) -> None:
    assert len(old) == len(new)
    before = path.stat()
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size


def test_pooled_source_parses_once_until_the_content_changes(tmp_path: Path) -> None:
    path = write_profile(tmp_path)
    source = ProfileSource(Mode.POOLED)
    first = source.load(path)
    for _ in range(4):
        assert source.load(path) is first
    stats = source.statistics()
    assert (stats.loads, stats.parses, stats.cache_hits, stats.cache_misses) == (5, 1, 4, 1)
    _edit_keeping_size_and_mtime(path, "100000", "200000")
    edited = source.load(path)
    assert edited.gate_timeout_s == 200000.0
    assert source.statistics().parses == 2
    path.write_text(PROFILE + "\n- extra: 1\n", encoding="utf-8")
    assert source.load(path).threshold("extra") == 1.0
    assert source.statistics().parses == 3


def test_legacy_source_parses_every_time(tmp_path: Path) -> None:
    path = write_profile(tmp_path)
    source = ProfileSource(Mode.LEGACY)
    for _ in range(5):
        source.load(path)
    stats = source.statistics()
    assert (stats.loads, stats.parses, stats.cache_hits, stats.cache_misses) == (5, 5, 0, 5)


@pytest.mark.parametrize(("mode", "parses"), [(Mode.POOLED, 1), (Mode.LEGACY, 6)])
def test_runs_of_an_unchanged_profile(tmp_path: Path, mode: Mode, parses: int) -> None:
    path = write_profile(tmp_path)
    runner = PrpRunner(mode, PrpConfig(), profile_path=path, evidence_dir=tmp_path / "out")
    gates = [GateSpec("a", duration_s=1.0)]

    async def six_runs() -> None:
        for _ in range(6):
            await runner.run(gates)

    virtual_time.run(six_runs())
    stats = runner.statistics()
    assert stats.profile_parses == parses
    assert stats.profile_loads == 6
    if mode is Mode.POOLED:
        assert stats.profile_cache_hits == 5
        # An edit that keeps the size (and the modification time) is parsed again.
        _edit_keeping_size_and_mtime(path, "`*3`", "`*4`")
        virtual_time.run(runner.run(gates))
        assert runner.statistics().profile_parses == 2


def test_a_malformed_profile_stops_the_run_before_any_gate(tmp_path: Path) -> None:
    path = write_profile(tmp_path, "# P\n## Rules\n- a b\n")
    runner = PrpRunner(Mode.POOLED, PrpConfig(), profile_path=path, evidence_dir=tmp_path / "out")
    with pytest.raises(ConfigError, match=r"profile\.md:3: expected"):
        virtual_time.run(runner.run([GateSpec("a")]))
    assert not (tmp_path / "out").exists()
    assert runner.statistics().runs_started == 0
