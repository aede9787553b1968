"""``harness interleave``: balanced order, pairing keys, merging, cleanup, bad refs.

The orchestration is tested with an injected preparer (no worktree, no
virtualenv) and an injected round runner (no subprocess) that writes tiny
synthetic pyperf files and samples; git itself is exercised on a throwaway
repository. One slow test runs the real thing on this repository's HEAD.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.bundle.environment import project_root
from harness.bundle.files import load_bundle
from harness.cli import main
from harness.errors import EnvironmentRefused, RefError, WorkloadError, WorkloadSkipped
from harness.judge.compare import compare_bundles
from harness.measure import interleave as il
from harness.measure.checkout import Checkout, CheckoutRequest, resolve_ref, worktree
from harness.measure.interleave import (
    InterleaveOptions,
    OrderMethod,
    parse_assignments,
    round_order,
)
from harness.measure.load import LoadReading, busy_cpu_seconds
from harness.measure.round_job import (
    RoundJob,
    RoundOutput,
    merge_rounds,
    rewrite_round_ids,
    side_command,
)
from harness.measure.sides import Counted, Side
from workloads import registry
from workloads.registry import WORKLOADS as real_registry
from workloads.registry import WorkloadInfo, latency
from workloads.samples import MetricSamples, SampleSink

from . import _fake_workload as fake
from ._bundles import make_environment, make_suite

GIT_IDENTITY = (
    *("-c", "user.name=Test"),
    *("-c", "user.email=test@example.com"),
    *("-c", "commit.gpgsign=false"),
)
SLOWDOWN = "AGENTBENCH_INJECT_SLOWDOWN"


# -- order -------------------------------------------------------------------------


@pytest.mark.parametrize("rounds", [1, 2, 3, 6, 7, 8])
def test_abba_alternates_the_first_slot_round_by_round(rounds: int) -> None:
    order = round_order(rounds, OrderMethod.ABBA)
    assert order == ["AB" if k % 2 == 0 else "BA" for k in range(rounds)]
    slots = "".join(order)
    assert slots.startswith("ABBA"[: len(slots)])
    assert abs(order.count("AB") - order.count("BA")) <= 1


@given(rounds=st.integers(min_value=1, max_value=60), seed=st.integers(0, 2**32 - 1))
def test_a_random_order_is_balanced_and_reproducible_from_its_seed(rounds: int, seed: int) -> None:
    order = round_order(rounds, OrderMethod.RANDOM, seed)
    assert len(order) == rounds
    assert set(order) <= {"AB", "BA"}
    assert abs(order.count("AB") - order.count("BA")) <= 1
    assert round_order(rounds, OrderMethod.RANDOM, seed) == order


def test_random_orders_differ_from_seed_to_seed() -> None:
    orders = {tuple(round_order(12, OrderMethod.RANDOM, seed)) for seed in range(20)}
    assert len(orders) > 10


def test_no_order_of_zero_rounds() -> None:
    with pytest.raises(ValueError, match="rounds"):
        round_order(0, OrderMethod.ABBA)


# -- pairing keys and merging --------------------------------------------------------


def test_round_ids_become_round_side_original() -> None:
    samples = [
        MetricSamples("w", "latency", "4711-1", "s", "wall", (0.1, 0.2)),
        MetricSamples("w", "latency", "4711-2", "s", "wall", (0.3,)),
    ]
    rewritten = rewrite_round_ids(samples, 3, Side.CANDIDATE)
    assert [s.round for s in rewritten] == ["r3:candidate:4711-1", "r3:candidate:4711-2"]
    assert [s.values for s in rewritten] == [s.values for s in samples]
    assert rewritten[0].workload == "w" and rewritten[0].metric == "latency"


def _round_file(directory: Path, round_no: int, benchmarks: dict[str, list[float]]) -> Path:
    path = directory / f"round-{round_no}.json"
    make_suite({name: [values] for name, values in benchmarks.items()}).dump(str(path))
    return path


def test_merging_rounds_makes_the_kth_run_of_each_benchmark_round_k(tmp_path: Path) -> None:
    paths = [
        _round_file(tmp_path, k, {"a": [1.0 + k, 1.1 + k, 1.2 + k], "b": [0.5 * (k + 1)] * 3})
        for k in range(4)
    ]
    suite = merge_rounds("w", paths)
    a = suite.get_benchmark("a")
    assert [list(run.values) for run in a.get_runs()] == [
        [1.0 + k, 1.1 + k, 1.2 + k] for k in range(4)
    ]
    b = suite.get_benchmark("b")
    assert [run.values[0] for run in b.get_runs()] == [0.5 * (k + 1) for k in range(4)]


def test_merging_refuses_a_round_of_two_runs(tmp_path: Path) -> None:
    path = tmp_path / "two.json"
    make_suite({"a": [[1.0, 1.0], [2.0, 2.0]]}).dump(str(path))
    with pytest.raises(WorkloadError, match="2 runs"):
        merge_rounds("w", [path])


def test_merging_refuses_rounds_of_different_benchmarks(tmp_path: Path) -> None:
    paths = [_round_file(tmp_path, 0, {"a": [1.0]}), _round_file(tmp_path, 1, {"b": [1.0]})]
    with pytest.raises(WorkloadError, match="round 1"):
        merge_rounds("w", paths)


def test_merging_refuses_a_file_that_is_not_pyperf(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(WorkloadError, match="no readable pyperf results"):
        merge_rounds("w", [path])


# -- command lines and variables -------------------------------------------------------


def test_a_side_runs_its_own_python_and_pyperf_passes_the_side_variables(tmp_path: Path) -> None:
    python = tmp_path / "venv" / "bin" / "python"
    argv = side_command(
        python, "scheduler_throughput", il.ROUND_PROFILE, tmp_path / "o.json", [SLOWDOWN, "X_Y"]
    )
    assert argv[:3] == [str(python), "-m", "workloads.scheduler_throughput"]
    assert "--processes=1" in argv and "--values=1" in argv and "--warmups=1" in argv
    assert "--loops=1" in argv
    inherit = [a for a in argv if a.startswith("--inherit-environ=")]
    assert len(inherit) == 1
    names = inherit[0].removeprefix("--inherit-environ=").split(",")
    assert {"AGENTBENCH_SAMPLES_DIR", SLOWDOWN, "X_Y"} <= set(names)
    assert len(names) == len(set(names))


def test_assignments_parse_and_a_malformed_one_names_its_flag() -> None:
    assert parse_assignments([f"{SLOWDOWN}=0.1", "A=b=c"], "--candidate-env") == {
        SLOWDOWN: "0.1",
        "A": "b=c",
    }
    for bad in ("NOVALUE", "1X=2", "=3", "A-B=1"):
        with pytest.raises(EnvironmentRefused, match="--candidate-env"):
            parse_assignments([bad], "--candidate-env")


# -- git ---------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", *GIT_IDENTITY, "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A throwaway repository of two commits on branch ``main``."""
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    for number in (1, 2):
        (root / "file.txt").write_text(f"version {number}\n", encoding="utf-8")
        _git(root, "add", "file.txt")
        _git(root, "commit", "-q", "-m", f"commit {number}")
    return root


def test_refs_resolve_to_commits(repo: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD")
    assert resolve_ref(repo, "HEAD") == head
    assert resolve_ref(repo, "main") == head
    assert resolve_ref(repo, "HEAD~1") == _git(repo, "rev-parse", "HEAD~1")
    assert resolve_ref(repo, head[:10]) == head


@pytest.mark.parametrize("ref", ["no-such-branch", "HEAD~5", "--all", ""])
def test_a_ref_that_names_no_commit_is_a_ref_error(repo: Path, ref: str) -> None:
    with pytest.raises(RefError):
        resolve_ref(repo, ref)


def test_a_bad_ref_exits_2_with_one_line_and_builds_nothing(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["interleave", "HEAD", "no-such-branch", "--repo", str(repo), "--out", str(out)]
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("harness: error: no-such-branch: git ref 'no-such-branch'")
    assert not out.exists()
    assert _git(repo, "worktree", "list").count("\n") == 0


def test_outside_a_repository_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["interleave", "HEAD", "HEAD", "--repo", str(tmp_path), "--out", str(tmp_path)])
    assert status == 2
    assert "not inside a git work tree" in capsys.readouterr().err


def test_a_malformed_side_variable_exits_2(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["interleave", "HEAD", "HEAD", "--repo", str(repo), "--candidate-env", "NOEQUALS"]
    assert main(argv) == 2
    assert "--candidate-env" in capsys.readouterr().err


def test_a_worktree_is_removed_even_when_its_block_fails(repo: Path, tmp_path: Path) -> None:
    path = tmp_path / "wt"
    sha = _git(repo, "rev-parse", "HEAD~1")

    def use_then_fail() -> None:
        with worktree(repo, sha, path):
            assert (path / "file.txt").read_text(encoding="utf-8") == "version 1\n"
            assert str(path) in _git(repo, "worktree", "list")
            (path / "untracked.txt").write_text("left behind?\n", encoding="utf-8")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        use_then_fail()
    assert not path.exists()
    assert str(path) not in _git(repo, "worktree", "list")


def test_a_relative_worktree_path_is_ours_not_the_repositorys(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with worktree(repo, _git(repo, "rev-parse", "HEAD"), Path("wt")) as path:
        assert path == elsewhere / "wt"
        assert (elsewhere / "wt" / "file.txt").is_file()
        assert not (repo / "wt").exists()
    assert not (elsewhere / "wt").exists()


# -- the orchestration, with a fake preparer and a fake runner -------------------------


@dataclass
class FakeSides:
    """A preparer and a runner that record what they were asked, and write tiny results.

    The candidate is ``slowdown`` slower than the base: its pyperf value and its
    samples are scaled by ``1 + slowdown``. ``skip`` names a workload that skips
    itself on the candidate side; ``fail_at`` a (round, workload) that fails.
    """

    workloads: frozenset[str]
    slowdown: float = 0.10
    skip: str = ""
    fail_at: tuple[int, str] | None = None
    calls: list[tuple[int, str, Side]] = field(default_factory=list)
    jobs: list[RoundJob] = field(default_factory=list)
    open_sides: set[str] = field(default_factory=set)
    missing: dict[str, frozenset[str]] = field(default_factory=dict)

    @contextlib.contextmanager
    def prepare(self, request: CheckoutRequest) -> Iterator[Checkout]:
        self.open_sides.add(request.label)
        try:
            yield Checkout(
                label=request.label,
                ref=request.ref,
                sha=request.sha,
                path=request.scratch / f"{request.label}-src",
                python=Path(f"/fake/{request.label}/bin/python"),
                environment=make_environment(request.sha),
                workloads=self.workloads - self.missing.get(request.label, frozenset()),
            )
        finally:
            self.open_sides.discard(request.label)

    def run(self, job: RoundJob) -> RoundOutput:
        self.calls.append((job.round_no, job.workload, job.side))
        self.jobs.append(job)
        if self.fail_at == (job.round_no, job.workload):
            raise WorkloadError(f"workload {job.workload} exited with status 1")
        if job.workload == self.skip and job.side is Side.CANDIDATE:
            raise WorkloadSkipped(f"{job.workload}: skipped: no peers", elapsed_s=0.1)
        scale = 1.0 + (self.slowdown if job.side is Side.CANDIDATE else 0.0)
        base_value = 0.010 * (job.round_no + 1)
        make_suite({f"{job.workload}_op": [[base_value * scale] * 3]}).dump(str(job.output))
        sink = SampleSink(job.workload, directory=str(job.samples_dir))
        for _ in range(2):
            sink.write("op_latency", [0.020 * scale, 0.030 * scale], round_id=sink.next_round())
        job.progress.start(job.index, job.label)
        job.progress.end(job.index, job.label, "done")
        return RoundOutput(job.output, job.samples_dir, 1.5)


def _fake_registry(monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...]) -> None:
    workloads = {
        name: WorkloadInfo(name, "a fake wall-clock workload", "wall", (latency("op_latency", 1),))
        for name in names
    }
    workloads["trace_only"] = WorkloadInfo(
        "trace_only", "virtual clock", "trace", (latency("x", 1),)
    )
    monkeypatch.setattr(registry, "WORKLOADS", workloads)


def _options(repo: Path, tmp_path: Path, targets: Path, **overrides: object) -> InterleaveOptions:
    values: dict[str, object] = {
        "base_ref": "HEAD~1",
        "candidate_ref": "main",
        "rounds": 4,
        "out_dir": tmp_path / "out",
        "repo": repo,
        "targets_path": targets,
        "system_show": False,
    }
    values.update(overrides)
    return InterleaveOptions(**values)  # type: ignore[arg-type]


def instruction_sample(side: Side, metric: str, value: float) -> MetricSamples:
    """One side's instruction count of ``metric``, as its instruction pass records it."""
    return MetricSamples(
        "instructions", metric, f"instructions:{side}", "instructions", "instructions", (value,)
    )


def no_counts(side: Side, checkout: Checkout, env: object, workdir: Path) -> Counted:
    """No instruction clock: the fake sides have no cachegrind pass."""
    return Counted((), "fake sides")


class ScriptedMeter:
    """Load readings in the order rounds ask for them: the cores others kept busy."""

    def __init__(self, cores: Sequence[float] = ()) -> None:
        self.cores = list(cores)
        self.asked = 0

    def __call__(self) -> ScriptedMeter:
        return self

    def start(self) -> None:
        pass

    def stop(self) -> LoadReading:
        cores = self.cores[self.asked] if self.asked < len(self.cores) else 0.0
        self.asked += 1
        return LoadReading(cores, 10.0, "scripted")


def _run(
    sides: FakeSides,
    options: InterleaveOptions,
    progress: io.StringIO | None = None,
    meter: ScriptedMeter | None = None,
) -> il.InterleaveResult:
    return il.interleave(
        options,
        progress=progress if progress is not None else io.StringIO(),
        prepare=sides.prepare,
        runner=sides.run,
        meter=meter or ScriptedMeter(),  # type: ignore[arg-type]
        counter=no_counts,
    )


def test_sides_alternate_abba_and_both_bundles_record_the_order(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, ("fake", "other"))
    sides = FakeSides(frozenset({"fake", "other", "trace_only"}))
    options = _options(
        repo,
        tmp_path,
        fake.write_targets(tmp_path),
        candidate_env={SLOWDOWN: "0.1"},
    )
    progress = io.StringIO()
    result = _run(sides, options, progress)

    a, b = Side.BASE, Side.CANDIDATE
    expected: list[tuple[int, str, Side]] = []
    for k, pair in enumerate([(a, b), (b, a), (a, b), (b, a)]):
        expected += [(k, name, side) for name in ("fake", "other") for side in pair]
    assert sides.calls == expected  # trace_only is left out by default
    assert result.order == ("AB", "BA", "AB", "BA")
    shas = {a: _git(repo, "rev-parse", "HEAD~1"), b: _git(repo, "rev-parse", "HEAD")}
    for side, path in ((a, result.base_bundle), (b, result.candidate_bundle)):
        assert path == tmp_path / "out" / f"{result.run_id}-{side}"
        manifest = load_bundle(path).manifest
        record = manifest.interleaving
        assert record is not None
        assert record.order == ["AB", "BA", "AB", "BA"]
        assert (record.method, record.seed, record.rounds) == ("ABBA", None, 4)
        assert (record.side, record.sha, record.pair_id) == (side, shas[side], result.run_id)
        assert record.ref == ("HEAD~1" if side is a else "main")
        assert record.env == ({SLOWDOWN: "0.1"} if side is b else {})
        assert manifest.environment.git.sha == shas[side]
        assert [w.name for w in manifest.workloads] == ["fake", "other"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [result.base_bundle.name, result.candidate_bundle.name]
    )
    assert sides.open_sides == set()
    lines = progress.getvalue()
    assert "[1/16] round 1/4 fake A ... done" in lines
    assert "[4/16] round 1/4 other B ... done" in lines
    assert "[5/16] round 2/4 fake B ... done" in lines


def test_only_the_candidate_gets_its_variables_but_both_inherit_the_names(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, ("fake",))
    sides = FakeSides(frozenset({"fake"}))
    monkeypatch.setenv("PYTHONPATH", str(project_root()))
    _run(
        sides,
        _options(
            repo,
            tmp_path,
            fake.write_targets(tmp_path),
            rounds=2,
            candidate_env={SLOWDOWN: "0.1"},
            base_env={"ONLY_BASE": "1"},
        ),
    )
    for job in sides.jobs:
        assert job.argv[0] == f"/fake/{job.side}/bin/python"
        inherit = next(a for a in job.argv if a.startswith("--inherit-environ="))
        assert SLOWDOWN in inherit and "ONLY_BASE" in inherit
        assert "PYTHONPATH" not in job.env
        assert job.env["AGENTBENCH_SAMPLES_DIR"] == str(job.samples_dir)
        if job.side is Side.CANDIDATE:
            assert job.env[SLOWDOWN] == "0.1" and "ONLY_BASE" not in job.env
        else:
            assert job.env["ONLY_BASE"] == "1" and SLOWDOWN not in job.env
    assert len({job.samples_dir for job in sides.jobs}) == len(sides.jobs)


def test_round_k_samples_and_pyperf_runs_pair_across_the_sides(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, ("fake",))
    sides = FakeSides(frozenset({"fake"}), slowdown=0.10)
    result = _run(sides, _options(repo, tmp_path, fake.write_targets(tmp_path), rounds=3))
    base, candidate = load_bundle(result.base_bundle), load_bundle(result.candidate_bundle)
    for bundle, side in ((base, "base"), (candidate, "candidate")):
        prefixes = sorted({s.round.rsplit(":", 1)[0] for s in bundle.samples})
        assert prefixes == [f"r{k}:{side}" for k in range(3)]
        assert all(len(s.round.split(":")) == 3 for s in bundle.samples)
        assert len(bundle.samples) == 3 * 2
        assert bundle.manifest.workloads[0].benchmarks == ["fake_op"]
    base_runs = base.suite.get_benchmark("fake_op").get_runs()
    cand_runs = candidate.suite.get_benchmark("fake_op").get_runs()
    assert len(base_runs) == len(cand_runs) == 3
    for k in range(3):
        assert base_runs[k].values[0] == pytest.approx(0.010 * (k + 1))
        assert cand_runs[k].values[0] / base_runs[k].values[0] == pytest.approx(1.10)


def test_a_random_order_is_the_one_run_and_recorded_with_its_seed(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, ("fake",))
    sides = FakeSides(frozenset({"fake"}))
    options = _options(
        repo,
        tmp_path,
        fake.write_targets(tmp_path),
        rounds=6,
        method=OrderMethod.RANDOM,
        seed=1234,
    )
    result = _run(sides, options)
    order = round_order(6, OrderMethod.RANDOM, 1234)
    assert list(result.order) == order
    firsts = [side for k, _, side in sides.calls[::2]]
    assert ["AB" if side is Side.BASE else "BA" for side in firsts] == order
    record = load_bundle(result.candidate_bundle).manifest.interleaving
    assert record is not None
    assert (record.method, record.seed, record.order) == ("random", 1234, order)


def test_a_drawn_seed_is_recorded(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, ("fake",))
    options = _options(repo, tmp_path, fake.write_targets(tmp_path), method=OrderMethod.RANDOM)
    result = _run(FakeSides(frozenset({"fake"})), options)
    record = load_bundle(result.base_bundle).manifest.interleaving
    assert record is not None and record.seed is not None
    assert record.order == round_order(4, OrderMethod.RANDOM, record.seed)


def test_a_failing_round_leaves_no_bundle_and_closes_both_sides(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, ("fake",))
    sides = FakeSides(frozenset({"fake"}), fail_at=(2, "fake"))
    with pytest.raises(WorkloadError, match="exited with status 1"):
        _run(sides, _options(repo, tmp_path, fake.write_targets(tmp_path)))
    assert sides.open_sides == set()
    assert list((tmp_path / "out").iterdir()) == []  # no bundle, no scratch directory


def test_an_interrupt_leaves_no_bundle_and_closes_both_sides(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, ("fake",))
    sides = FakeSides(frozenset({"fake"}))

    def interrupted(job: RoundJob) -> RoundOutput:
        if job.round_no == 1:
            raise KeyboardInterrupt
        return sides.run(job)

    options = _options(repo, tmp_path, fake.write_targets(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        il.interleave(
            options,
            progress=io.StringIO(),
            prepare=sides.prepare,
            runner=interrupted,
            meter=ScriptedMeter(),  # type: ignore[arg-type]
            counter=no_counts,
        )
    assert sides.open_sides == set()
    assert list((tmp_path / "out").iterdir()) == []


def test_a_default_workload_that_skips_itself_is_left_out_on_both_sides(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, ("fake", "peer"))
    sides = FakeSides(frozenset({"fake", "peer"}), skip="peer")
    progress = io.StringIO()
    result = _run(sides, _options(repo, tmp_path, fake.write_targets(tmp_path)), progress)
    assert [name for _, name, _ in sides.calls].count("peer") == 2  # round 0 only: A, then B
    for path in (result.base_bundle, result.candidate_bundle):
        bundle = load_bundle(path)
        runs = {w.name: w for w in bundle.manifest.workloads}
        assert runs["peer"].skipped == "peer: skipped: no peers"
        assert runs["peer"].benchmarks == []
        assert runs["fake"].skipped == ""
        assert {s.workload for s in bundle.samples} == {"fake"}
    assert "[10/10] round 4/4 fake A ... done" in progress.getvalue()  # 16 planned, 6 never run


def test_a_named_workload_that_skips_itself_is_an_error(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, ("fake", "peer"))
    sides = FakeSides(frozenset({"fake", "peer"}), skip="peer")
    options = _options(repo, tmp_path, fake.write_targets(tmp_path), workloads=("peer",))
    with pytest.raises(WorkloadSkipped):
        _run(sides, options)


def test_a_workload_one_side_lacks_is_left_out_by_default_and_an_error_by_name(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, ("fake", "new"))
    targets = fake.write_targets(tmp_path)
    sides = FakeSides(frozenset({"fake", "new"}), missing={"base": frozenset({"new"})})
    progress = io.StringIO()
    result = _run(sides, _options(repo, tmp_path, targets), progress)
    assert {name for _, name, _ in sides.calls} == {"fake"}
    assert "new left out: not in base (HEAD~1 = " in progress.getvalue()
    assert [w.name for w in load_bundle(result.base_bundle).manifest.workloads] == ["fake"]
    with pytest.raises(WorkloadError, match="does not exist in base"):
        _run(sides, _options(repo, tmp_path, targets, workloads=("new",)))


def test_an_unknown_workload_or_no_round_is_refused_before_anything_runs(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, ("fake",))
    targets = fake.write_targets(tmp_path)
    sides = FakeSides(frozenset({"fake"}))
    with pytest.raises(WorkloadError, match="unknown workload"):
        _run(sides, _options(repo, tmp_path, targets, workloads=("nope",)))
    with pytest.raises(WorkloadError, match="--rounds"):
        _run(sides, _options(repo, tmp_path, targets, rounds=0))
    assert sides.calls == []


# -- the real thing ------------------------------------------------------------------


@pytest.mark.slow
def test_a_disturbed_round_is_run_again_once_at_the_end_and_replaces_the_first(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, ("fake",))
    sides = FakeSides(frozenset({"fake", "trace_only"}))
    options = _options(repo, tmp_path, fake.write_targets(tmp_path), workloads=("fake",))
    progress = io.StringIO()
    # round 2 of 4 shares the machine (0.9 cores of others); its second run is quiet
    result = _run(sides, options, progress, ScriptedMeter([0.0, 0.9, 0.0, 0.0, 0.05]))
    assert [(k, side) for k, _, side in sides.calls] == [
        (0, Side.BASE), (0, Side.CANDIDATE), (1, Side.CANDIDATE), (1, Side.BASE),
        (2, Side.BASE), (2, Side.CANDIDATE), (3, Side.CANDIDATE), (3, Side.BASE),
        (1, Side.CANDIDATE), (1, Side.BASE),
    ]  # fmt: skip
    text = progress.getvalue()
    assert "round 2 disturbed: other processes kept 0.90 cores busy" in text
    assert "1 round(s) run again: round 2 run again" in text
    for bundle in (result.base_bundle, result.candidate_bundle):
        loaded = load_bundle(bundle)
        interleaving = loaded.manifest.interleaving
        assert interleaving is not None and interleaving.rounds == 4
        assert interleaving.reruns == ["round 2 run again: other processes kept 0.90 cores "
                                       "busy for 10.0 s (scripted)"]  # fmt: skip
        (bench,) = list(loaded.suite)
        assert len(bench.get_runs()) == 4  # the re-run replaced round 2, in its place
        rounds = {s.round.split(":")[0] for s in loaded.samples}
        assert rounds == {"r0", "r1", "r2", "r3"}


def test_a_round_still_disturbed_the_second_time_is_kept_and_says_so(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, ("fake",))
    sides = FakeSides(frozenset({"fake", "trace_only"}))
    options = _options(repo, tmp_path, fake.write_targets(tmp_path), workloads=("fake",))
    result = _run(sides, options, meter=ScriptedMeter([0.5, 0.0, 0.0, 0.0, 0.7]))
    interleaving = load_bundle(result.base_bundle).manifest.interleaving
    assert interleaving is not None
    assert len(sides.calls) == 10  # once again, not until quiet
    assert "still disturbed the second time" in interleaving.reruns[0]


def test_until_decided_adds_round_pairs_while_a_row_is_undecided(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, ("fake",))
    sides = FakeSides(frozenset({"fake", "trace_only"}))
    answers = [["fake/pyperf/median"], ["fake/pyperf/median"], []]
    asked: list[int] = []

    def decide(collected: object, **_: object) -> list[str]:
        asked.append(len(sides.calls))
        return answers[len(asked) - 1]

    monkeypatch.setattr(il, "undecided_rows", decide)
    options = _options(
        repo, tmp_path, fake.write_targets(tmp_path), workloads=("fake",), until_decided=True
    )
    progress = io.StringIO()
    result = _run(sides, options, progress)
    assert asked == [8, 12, 16]  # after 4 planned rounds, then after each added pair
    interleaving = load_bundle(result.candidate_bundle).manifest.interleaving
    assert interleaving is not None
    assert interleaving.rounds == 8 and interleaving.order[4:] == ["AB", "BA", "AB", "BA"]
    assert "every row decided after 8 rounds" in progress.getvalue()


def test_until_decided_stops_at_its_budget(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, ("fake",))
    sides = FakeSides(frozenset({"fake", "trace_only"}))
    monkeypatch.setattr(il, "undecided_rows", lambda collected, **_: ["fake/pyperf/median"])
    ticks = iter(range(0, 10_000, 10))  # every clock reading 10 s later
    options = _options(
        repo,
        tmp_path,
        fake.write_targets(tmp_path),
        workloads=("fake",),
        until_decided=True,
        budget_s=100.0,
    )
    progress = io.StringIO()
    result = il.interleave(
        options,
        progress=progress,
        prepare=sides.prepare,
        runner=sides.run,
        clock=lambda: float(next(ticks)),
        meter=ScriptedMeter(),  # type: ignore[arg-type]
        counter=no_counts,
    )
    interleaving = load_bundle(result.base_bundle).manifest.interleaving
    assert interleaving is not None and interleaving.rounds < 20
    assert "budget reached after" in progress.getvalue()


@pytest.mark.slow
def test_interleave_head_against_itself_for_real(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two worktrees, two virtualenvs, proof_import twice per side: both bundles, no leftovers."""
    root = project_root()
    if not (root / ".git").exists():
        pytest.skip("needs the project's git checkout")
    before = _git(root, "worktree", "list")
    out = tmp_path / "out"
    argv = ["interleave", "HEAD", "HEAD", "--rounds", "2", "--workload", "proof_import"]
    argv += ["--no-instructions"]
    status = main([*argv, "--out", str(out), "--repo", str(root)])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    printed = dict(line.split(": ", 1) for line in captured.out.strip().splitlines())
    assert set(printed) == {"base", "candidate"}
    assert "round 2/2 proof_import A" in captured.err
    head = _git(root, "rev-parse", "HEAD")
    digests = set()
    for side in ("base", "candidate"):
        bundle = load_bundle(printed[side])
        record = bundle.manifest.interleaving
        assert record is not None
        assert (record.side, record.sha, record.order) == (side, head, ["AB", "BA"])
        assert bundle.manifest.environment.git.sha == head
        assert f"{side}-venv" in bundle.manifest.environment.python_executable
        assert {s.round.split(":")[0] for s in bundle.samples} == {"r0", "r1"}
        assert bundle.suite.get_benchmark("proof_import").get_nrun() == 2
        digests.add(bundle.manifest.environment.fingerprint_digest)
    assert len(digests) == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(p).name for p in printed.values())
    assert _git(root, "worktree", "list") == before


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("20m", 1200.0), ("1.5h", 5400.0)]
)
def test_a_budget_reads_seconds_minutes_or_hours(text: str, seconds: float) -> None:
    from harness.cli.options import duration

    assert duration(text, "--budget") == seconds


@pytest.mark.parametrize("text", ["", "0", "-5m", "soon", "5d", "infm"])
def test_a_bad_budget_exits_2_with_one_line(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["interleave", "HEAD", "HEAD", "--until-decided", f"--budget={text}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--budget" in err[0] and "a positive duration" in err[0]


def test_each_sides_instruction_counts_join_its_bundle(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, ("fake",))
    monkeypatch.setitem(
        registry.WORKLOADS, registry.INSTRUCTIONS, real_registry[registry.INSTRUCTIONS]
    )
    sides = FakeSides(frozenset({"fake", "trace_only"}))
    seen: list[tuple[Side, dict[str, str]]] = []

    def counter(side: Side, checkout: Checkout, env: object, workdir: Path) -> Counted:
        seen.append((side, dict(env)))  # type: ignore[call-overload]
        value = 10_150.0 if side is Side.CANDIDATE else 10_000.0
        sample = instruction_sample(side, "instructions_pool_item_c1", value)
        return Counted((sample,), elapsed_s=2.0)

    options = _options(
        repo,
        tmp_path,
        fake.write_targets(tmp_path),
        workloads=("fake",),
        candidate_env={"AGENTBENCH_INJECT_CPU": "0.01"},
    )
    result = il.interleave(
        options,
        progress=io.StringIO(),
        prepare=sides.prepare,
        runner=sides.run,
        meter=ScriptedMeter(),  # type: ignore[arg-type]
        counter=counter,
    )
    assert [side for side, _ in seen] == [Side.BASE, Side.CANDIDATE]
    assert seen[1][1] == {"AGENTBENCH_INJECT_CPU": "0.01"}  # the side's own variables
    base, candidate = load_bundle(result.base_bundle), load_bundle(result.candidate_bundle)
    run = {w.name: w for w in candidate.manifest.workloads}["instructions"]
    assert (run.clock, run.samples) == ("instructions", 1)
    comparison = compare_bundles(base, candidate)
    (row,) = [r for r in comparison.rows if r.clock == "instructions"]
    assert row.verdict.value == "regression" and row.ratio == pytest.approx(1.015)


def test_a_side_without_an_instruction_clock_leaves_it_out_of_both_bundles(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, ("fake",))
    monkeypatch.setitem(
        registry.WORKLOADS, registry.INSTRUCTIONS, real_registry[registry.INSTRUCTIONS]
    )
    sides = FakeSides(frozenset({"fake", "trace_only"}))

    def counter(side: Side, checkout: Checkout, env: object, workdir: Path) -> Counted:
        if side is Side.BASE:  # an older commit: no workloads.instructions
            return Counted((), "no instruction clock in this side's code (No module named x)")
        sample = instruction_sample(side, "instructions_pool_item_c1", 10_000.0)
        return Counted((sample,), elapsed_s=2.0)

    progress = io.StringIO()
    result = il.interleave(
        _options(repo, tmp_path, fake.write_targets(tmp_path), workloads=("fake",)),
        progress=progress,
        prepare=sides.prepare,
        runner=sides.run,
        meter=ScriptedMeter(),  # type: ignore[arg-type]
        counter=counter,
    )
    base, candidate = load_bundle(result.base_bundle), load_bundle(result.candidate_bundle)
    for bundle in (base, candidate):
        run = {w.name: w for w in bundle.manifest.workloads}["instructions"]
        assert run.samples == 0 and "the base side has none" in run.skipped
        assert not [s for s in bundle.samples if s.workload == "instructions"]
    assert "instruction clock left out of both sides" in progress.getvalue()
    comparison = compare_bundles(base, candidate)  # the same workloads: compared
    assert [r for r in comparison.rows if r.clock == "instructions"] == []
    assert any(r.workload == "fake" for r in comparison.rows)


def _pool_rounds(side: Side, values: Sequence[float]) -> il._Collected:
    """``values`` as one side's rounds of the pool's c16 item cost (wall), one a round."""
    collected = il._Collected()
    collected.samples["pool_overhead"] = {
        k: (
            MetricSamples(
                "pool_overhead",
                "item_cost_ordered_pool_c16",
                f"r{k}:{side}:r",
                "s",
                "wall",
                (value,),
            ),
        )
        for k, value in enumerate(values)
    }
    return collected


def test_until_decided_counts_a_row_its_instruction_twin_decides_as_decided() -> None:
    # Wall noise of about 20 % a round: eight rounds cannot decide a 5 % threshold.
    base = [1.0, 1.2, 0.85, 1.1, 0.9, 1.25, 0.8, 1.05]
    candidate = [1.15, 0.9, 1.05, 0.82, 1.2, 0.95, 1.1, 0.88]
    collected = {Side.BASE: _pool_rounds(Side.BASE, base),
                 Side.CANDIDATE: _pool_rounds(Side.CANDIDATE, candidate)}  # fmt: skip
    wall_row = "pool_overhead/item_cost_ordered_pool_c16/median"
    assert wall_row in il.undecided_rows(collected, threshold=0.05, thresholds={})

    counted = {side: (instruction_sample(side, "instructions_pool_item_c16", 10_000.0),)
               for side in Side}  # fmt: skip
    undecided = il.undecided_rows(collected, threshold=0.05, thresholds={}, counted=counted)
    assert wall_row not in undecided  # its twin, the exact count, said "no change"


RUNS_AA = 8  # enough rounds for the fake sides' identical values to read "no change"


@dataclass
class BurningSides(FakeSides):
    """Fake sides whose candidate job of one round shares the machine with a real
    CPU-burning process the first time it runs, and measures a wild value then."""

    burn_round: int = 1
    burner: subprocess.Popen[bytes] | None = None
    burned: bool = False

    def run(self, job: RoundJob) -> RoundOutput:
        if self.burner is not None and job.round_no != self.burn_round:
            # Reaped in a later round: reaped in its own, its CPU would count as ours.
            self.burner.wait()
            self.burner = None
        if job.round_no == self.burn_round and job.side is Side.CANDIDATE and not self.burned:
            self.burned = True
            self.burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            time.sleep(1.5)  # the round lasts while another process burns a core
            self.burner.kill()  # not reaped yet: its CPU is another process's
            output = super().run(job)
            # What a workload measures while it shares the CPU: a wild round.
            make_suite({f"{job.workload}_op": [[0.5] * 3]}).dump(str(job.output), replace=True)
            return output
        return super().run(job)


def test_a_round_a_cpu_burner_disturbs_is_metered_run_again_and_decides_nothing(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real meter (/proc/stat): a process the test starts burns a core during one round."""
    if busy_cpu_seconds() is None:
        pytest.skip("no /proc/stat here: the meter falls back on the load average")
    _fake_registry(monkeypatch, ("fake",))
    sides = BurningSides(frozenset({"fake", "trace_only"}), slowdown=0.0)
    options = _options(
        repo, tmp_path, fake.write_targets(tmp_path), workloads=("fake",), rounds=RUNS_AA
    )
    progress = io.StringIO()
    try:
        result = il.interleave(
            options, progress=progress, prepare=sides.prepare, runner=sides.run, counter=no_counts
        )
    finally:
        if sides.burner is not None:
            sides.burner.kill()
            sides.burner.wait()
    text = progress.getvalue()
    assert "round 2 disturbed: other processes kept" in text, text
    interleaving = load_bundle(result.candidate_bundle).manifest.interleaving
    assert interleaving is not None
    assert any(note.startswith("round 2 run again: other processes kept")
               for note in interleaving.reruns), interleaving.reruns  # fmt: skip
    comparison = compare_bundles(
        load_bundle(result.base_bundle), load_bundle(result.candidate_bundle)
    )
    # The wild round was replaced, in its place, by its quiet second run ...
    (bench,) = list(load_bundle(result.candidate_bundle).suite)
    assert [run.values[0] for run in bench.get_runs()][1] == pytest.approx(0.010 * 2)
    # ... so every row agrees again.
    assert all(row.verdict.value in ("no change", "reference") for row in comparison.rows), [
        (row.metric, row.verdict.value) for row in comparison.rows
    ]
