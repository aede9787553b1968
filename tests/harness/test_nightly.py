"""The nightly pipeline runs every step and exits with the worst status."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pytest

import harness.cli.nightly
from harness.cli.nightly import latest_bundle, nightly
from harness.errors import BundleError


class FakeCli:
    def __init__(self, reports: Path, statuses: dict[str, int]) -> None:
        self.reports = reports
        self.statuses = statuses
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> int:
        self.calls.append(list(argv))
        if argv[0] == "run":
            bundle = self.reports / "20261123T010203Z-abc1234-000001"
            bundle.mkdir(parents=True)
            (bundle / "manifest.json").write_text("{}")
        if argv[0] == "compare":
            (self.reports / "compare.json").write_text("{}")
        return self.statuses.get(argv[0], 0)


def test_every_step_runs_and_the_worst_status_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness.cli.nightly, "last_good_bundle", lambda *a, **k: None)
    cli = FakeCli(tmp_path, {"run": 1, "compare": 0, "report": 0})
    assert nightly(cli, reports=tmp_path, log=io.StringIO()) == 1
    assert [call[0] for call in cli.calls] == ["run", "compare", "report"]
    bundle = str(tmp_path / "20261123T010203Z-abc1234-000001")
    assert cli.calls[1][:3] == ["compare", "--last-good", bundle]
    assert cli.calls[2] == ["report", bundle, "--base", str(tmp_path / "compare.json")]


def test_the_first_night_has_no_comparison_but_a_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_good_night(*_args: object, **_kwargs: object) -> None:
        raise BundleError("no stored run passed every target")

    monkeypatch.setattr(harness.cli.nightly, "last_good_bundle", no_good_night)
    cli = FakeCli(tmp_path, {})
    log = io.StringIO()
    assert nightly(cli, reports=tmp_path, log=log) == 0
    assert [call[0] for call in cli.calls] == ["run", "report"]
    assert "no comparison tonight" in log.getvalue()


def test_a_run_that_wrote_no_bundle_stops_there(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def cli(argv: Sequence[str]) -> int:
        calls.append(list(argv))
        return 2

    assert nightly(cli, reports=tmp_path, log=io.StringIO()) == 2
    assert [call[0] for call in calls] == ["run"]
    assert latest_bundle(tmp_path) is None
