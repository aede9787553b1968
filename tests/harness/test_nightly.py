"""The nightly pipeline: which baseline it takes and why, every step run, worst status wins."""

from __future__ import annotations

import io
import shutil
from collections.abc import Sequence
from pathlib import Path

import msgspec

from harness.bundle.environment import Fingerprint
from harness.bundle.files import Determinism, DeterminismStatus, Manifest, load_bundle, write_bundle
from harness.cli.nightly import choose_baseline, latest_bundle, nightly
from harness.store.db import HISTORY_FILE, HistoryStore

from ._bundles import make_manifest, make_samples, make_suite

GOOD_SHA = "1111111111111111111111111111111111111111"
TONIGHT_SHA = "2222222222222222222222222222222222222222"


def _night(
    reports: Path, run_id: str, sha: str, *, cpu: str = "Test CPU", store: bool = True
) -> Path:
    """A good night's bundle in ``reports`` (appended to the store when ``store``)."""
    manifest = make_manifest(run_id, started_utc=f"{run_id[:4]}-01-01T00:00:00+00:00")
    environment = manifest.environment
    fingerprint = msgspec.structs.replace(environment.fingerprint, cpu_model=cpu)
    environment = msgspec.structs.replace(
        environment,
        git=msgspec.structs.replace(environment.git, sha=sha),
        cpu_model=cpu,
        fingerprint=fingerprint,
        fingerprint_digest=fingerprint.digest,
    )
    manifest = msgspec.structs.replace(
        manifest,
        environment=environment,
        determinism=Determinism(status=DeterminismStatus.DETERMINISTIC, reason=""),
    )
    assert isinstance(manifest, Manifest) and isinstance(fingerprint, Fingerprint)
    suite = make_suite({"fake_op": [[0.01, 0.011, 0.012], [0.01, 0.012, 0.011]]})
    reports.mkdir(parents=True, exist_ok=True)
    path = write_bundle(reports, manifest, suite, make_samples(), [])
    if store:
        HistoryStore(reports / HISTORY_FILE).append_run(load_bundle(path))
    return path


class FakeCli:
    """``main`` of the CLI: records each argv; ``run`` writes tonight's bundle."""

    def __init__(self, reports: Path, statuses: dict[str, int], *, cpu: str = "Test CPU") -> None:
        self.reports = reports
        self.statuses = statuses
        self.cpu = cpu
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> int:
        self.calls.append(list(argv))
        if argv[0] == "run":
            _night(self.reports, "2026T-tonight-000002", TONIGHT_SHA, cpu=self.cpu)
        if argv[0] == "interleave":
            out = Path(argv[argv.index("--out") + 1])
            for side, sha in (("base", argv[1]), ("candidate", argv[2])):
                bundle = _night(out, "2026T-pair-000003", sha, cpu=self.cpu, store=False)
                bundle.rename(out / f"{bundle.name}-{side}")
        if argv[0] == "compare":
            Path(argv[argv.index("--json") + 1]).write_text("{}")
        return self.statuses.get(argv[0], 0)


def test_last_good_night_on_this_machine_is_compared_as_stored(tmp_path: Path) -> None:
    _night(tmp_path, "2025T-good-000001", GOOD_SHA)
    cli = FakeCli(tmp_path, {"run": 0, "compare": 1})
    log = io.StringIO()
    assert nightly(cli, reports=tmp_path, log=log) == 1
    assert [call[0] for call in cli.calls] == ["run", "compare", "report"]
    tonight = str(latest_bundle(tmp_path))
    assert cli.calls[1][:3] == ["compare", "--last-good", tonight]
    assert cli.calls[2][-2:] == ["--base", str(tmp_path / "compare.json")]
    first = log.getvalue().splitlines()[0]
    assert first.startswith("nightly: baseline: the stored night: last good night 2025T-good")
    assert "ran on this machine" in first


def test_another_machine_remeasures_the_last_good_commit_beside_tonights(
    tmp_path: Path,
) -> None:
    """Two nights of different fingerprints, the first night's bundle directory deleted."""
    first = _night(tmp_path, "2025T-good-000001", GOOD_SHA, cpu="Yesterday's CPU")
    shutil.rmtree(first)
    cli = FakeCli(tmp_path, {"compare": 0})
    log = io.StringIO()
    assert nightly(cli, reports=tmp_path, workloads=["fake"], rounds=4, log=log) == 0
    assert [call[0] for call in cli.calls] == ["run", "interleave", "compare", "report"]
    interleave = cli.calls[1]
    assert interleave[1:3] == [GOOD_SHA, TONIGHT_SHA]
    assert interleave[5:7] == ["--workload", "fake"] and interleave[-2:] == ["--rounds", "4"]
    compare = cli.calls[2]
    assert compare[1].endswith("-base") and compare[2].endswith("-candidate")
    assert "--last-good" not in compare
    text = log.getvalue().splitlines()[0]
    assert text.startswith("nightly: baseline: re-measured on this machine: last good night")
    assert "ran on another machine" in text and "measuring commit 111111111111" in text


def test_the_first_night_has_no_comparison_but_a_report(tmp_path: Path) -> None:
    cli = FakeCli(tmp_path, {})
    log = io.StringIO()
    assert nightly(cli, reports=tmp_path, log=log) == 0
    assert [call[0] for call in cli.calls] == ["run", "report"]
    assert "no comparison tonight" in log.getvalue()
    assert "--base" not in cli.calls[-1]


def test_a_failed_remeasure_is_an_error_and_the_report_still_runs(tmp_path: Path) -> None:
    _night(tmp_path, "2025T-good-000001", GOOD_SHA, cpu="Yesterday's CPU")
    cli = FakeCli(tmp_path, {"interleave": 2})
    assert nightly(cli, reports=tmp_path, log=io.StringIO()) == 2
    assert [call[0] for call in cli.calls] == ["run", "interleave", "report"]


def test_choose_baseline_says_why(tmp_path: Path) -> None:
    _night(tmp_path, "2025T-good-000001", GOOD_SHA)
    tonight = _night(tmp_path, "2026T-tonight-000002", TONIGHT_SHA, cpu="Other CPU")
    baseline = choose_baseline(tmp_path / HISTORY_FILE, load_bundle(tonight).manifest)
    assert (baseline.path, baseline.sha) == ("remeasure", GOOD_SHA)
    assert "ran on another machine" in baseline.why


def test_a_run_that_wrote_no_bundle_stops_there(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def cli(argv: Sequence[str]) -> int:
        calls.append(list(argv))
        return 2

    assert nightly(cli, reports=tmp_path, log=io.StringIO()) == 2
    assert [call[0] for call in calls] == ["run"]
    assert latest_bundle(tmp_path) is None
