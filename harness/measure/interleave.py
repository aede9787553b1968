"""``harness interleave``: two git refs measured alternately, in a balanced order, as two bundles.

A comparison is only as good as its worst confounder. On a shared machine the
worst is drift (load, frequency, thermal state): measure base then candidate in
two sequential blocks and drift reads as a regression. So the two sides run
*interleaved*, workload by workload, round by round, in a *balanced* order:

* ``ABBA`` (the default): round ``k`` runs base then candidate (``AB``) when
  ``k`` is even, candidate then base (``BA``) when it is odd, so neither side
  always holds the first slot;
* ``random``: a seeded permutation of as many ``AB`` as ``BA`` rounds (one more
  of either, drawn, when the count is odd): balanced, yet not periodic.

One comparison, in order:

1. Check the input, then resolve both refs to commits; a ref that names no
   commit is a :class:`~harness.errors.RefError` before anything is built.
2. Per side, a git worktree of its commit and a virtualenv holding that checkout
   installed non-editable (:mod:`harness.measure.checkout`). Two environments even when
   both refs name one commit: an A/A comparison must go through exactly the
   machinery of an A/B one, or the noise it measures is not a real comparison's.
3. For round ``k`` = 0..N-1, for each workload, each side in the round's order:
   ``<side python> -m workloads.<name>`` with one pyperf process
   (:data:`ROUND_PROFILE`), from a neutral working directory so that the side's
   own installed code runs, with ``AGENTBENCH_SAMPLES_DIR`` fresh per side, round
   and workload, and the side's ``--base-env`` / ``--candidate-env`` variables
   (added to pyperf's ``--inherit-environ`` list, or its workers never see them).
4. Per side, each sample's round id becomes ``r<k>:<side>:<original>``, each
   workload's per-round pyperf files are merged into one benchmark whose
   ``k``-th run is round ``k``, and the side is written as a bundle:
   ``<out>/<run-id>-base`` and ``<out>/<run-id>-candidate``.

The pairing contract with ``harness compare``: samples whose round ids start with
the same ``r<k>:`` on the two sides are a pair, and so are the ``k``-th pyperf
runs of a benchmark. Progress lines count rounds from 1 (``round 3/8``).

Guarantees:

* Worktrees are removed and the scratch directory (virtualenvs, per-round files)
  deleted when the comparison ends, whether it finished, failed or was
  interrupted (KeyboardInterrupt).
* Bundles are written atomically (:func:`harness.bundle.files.write_bundle`), and only
  once every round of both sides has finished: an interrupted or failed
  comparison leaves no bundle, a finished one both (a failure between the two
  writes, such as a full disk, can leave the base bundle alone; never a partial one).
* The order actually used is recorded in both manifests
  (:class:`harness.bundle.files.Interleaving`: order, method, seed, rounds, side, ref,
  sha, the side's own variables).
* A workload that skips itself (an optional dependency the sides lack) is left
  out of the comparison on both sides and recorded as skipped in both manifests
  when it was picked by default; asked for by name, its skip is an error.
* Each manifest describes its side: its commit (read in its worktree), its
  interpreter and the dependency versions of its virtualenv, hence its own
  fingerprint (equal on the two sides when their dependencies resolved alike).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import os
import random
import re
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import pyperf

from harness.bundle import environment
from harness.bundle.files import (
    Determinism,
    DeterminismStatus,
    Interleaving,
    Manifest,
    ProfileRecord,
    WorkloadRun,
    merge_results,
    new_run_id,
    write_bundle,
)
from harness.bundle.verdicts import Target
from harness.errors import EnvironmentRefused, WorkloadError, WorkloadSkipped
from harness.judge.targets import (
    DEFAULT_TARGETS_PATH,
    load_targets,
)
from harness.measure.checkout import (
    Checkout,
    CheckoutRequest,
    clean_environ,
    installed_checkout,
    repository_root,
    resolve_ref,
)
from harness.measure.run import (
    PROFILE_ENV,
    Progress,
    check_writable,
    evaluate_targets,
    read_workload_samples,
    run_workload_command,
    selected_workloads,
)
from workloads import registry
from workloads.samples import SAMPLES_DIR_ENV, MetricSamples
from workloads.trace import trace_id

__all__ = [
    "DEFAULT_OUT",
    "DEFAULT_ROUNDS",
    "ROUND_PROFILE",
    "InterleaveOptions",
    "InterleaveResult",
    "OrderMethod",
    "RoundJob",
    "RoundOutput",
    "RoundRunner",
    "Side",
    "SidePreparer",
    "default_workloads",
    "interleave",
    "merge_rounds",
    "parse_assignments",
    "rewrite_round_ids",
    "round_order",
    "run_round",
    "side_command",
]

# Rounds are the unit of evidence: the paired signed-rank test of n rounds cannot
# go below p = 2 / 2**n, so 6 rounds (p >= 0.031) can never pass a suite-wide
# Benjamini-Hochberg level (0.05 over ~35 tests: 0.0014 for the strongest row),
# while 12 rounds (p >= 0.0005) can. Twelve one-value rounds take the time of six
# three-value rounds: about 10-12 minutes for the default workloads on 2 cores.
DEFAULT_ROUNDS = 12
DEFAULT_OUT = Path("reports") / "compare"
# One pyperf worker process per round: the round is the unit of pairing, so the
# process is too. One value after one warmup: more rounds buy more than more values
# per round (see DEFAULT_ROUNDS); loops are fixed to 1 by registry.command (a round
# of a workload is heavy enough to need no calibration).
ROUND_PROFILE = registry.Profile("interleaved", processes=1, values=1, warmups=1, min_time_s=0.05)
SCRATCH_PREFIX = ".interleave-"
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INHERIT = "--inherit-environ="


class Side(enum.StrEnum):
    """Which side of the comparison: base is ``A``, candidate ``B`` in a round's order."""

    BASE = "base"
    CANDIDATE = "candidate"

    @property
    def letter(self) -> str:
        """``A`` for base, ``B`` for candidate (as in the recorded order)."""
        return "A" if self is Side.BASE else "B"


class OrderMethod(enum.StrEnum):
    """How the rounds' orders are chosen (both are balanced)."""

    ABBA = "ABBA"
    RANDOM = "random"


def round_order(rounds: int, method: OrderMethod, seed: int | None = None) -> list[str]:
    """The order of each round, ``"AB"`` (base first) or ``"BA"``.

    ABBA: ``AB`` on even rounds, ``BA`` on odd ones. Random: a permutation, seeded
    by ``seed``, of ``rounds // 2`` of each (the odd round out drawn from the same
    generator), so both sides hold the first slot equally often (within one).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, not {rounds}")
    if method is OrderMethod.ABBA:
        return ["AB" if k % 2 == 0 else "BA" for k in range(rounds)]
    generator = random.Random(seed)
    order = ["AB", "BA"] * (rounds // 2)
    if rounds % 2:
        order.append(generator.choice(("AB", "BA")))
    generator.shuffle(order)
    return order


def _sides_of(entry: str) -> tuple[Side, Side]:
    return (Side.BASE, Side.CANDIDATE) if entry == "AB" else (Side.CANDIDATE, Side.BASE)


@dataclass(frozen=True, slots=True)
class InterleaveOptions:
    """What ``harness interleave`` was asked to do (its flags; :func:`interleave` checks them).

    ``workloads`` empty means :func:`default_workloads`; ``seed`` None draws one
    (recorded) for the random order; ``base_env``/``candidate_env`` are set for
    that side only; ``repo`` is any directory inside the git work tree.
    """

    base_ref: str
    candidate_ref: str
    rounds: int = DEFAULT_ROUNDS
    workloads: tuple[str, ...] = ()
    out_dir: Path = DEFAULT_OUT
    method: OrderMethod = OrderMethod.ABBA
    seed: int | None = None
    base_env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    candidate_env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    repo: Path = Path()
    targets_path: Path = DEFAULT_TARGETS_PATH
    system_show: bool = True


@dataclass(frozen=True, slots=True)
class InterleaveResult:
    """A finished comparison: the two bundles, the pair's run id, the order used."""

    base_bundle: Path
    candidate_bundle: Path
    run_id: str
    order: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RoundJob:
    """One workload of one side in one round: what to run and where its files go.

    ``output`` is the pyperf JSON file to write, ``samples_dir`` an empty directory
    for the samples, ``workdir`` a neutral working directory (the logs go there).
    ``label`` and ``index`` are the job's progress line.
    """

    side: Side
    checkout: Checkout
    round_no: int
    workload: str
    output: Path
    samples_dir: Path
    workdir: Path
    argv: tuple[str, ...]
    env: Mapping[str, str]
    label: str
    index: int
    progress: Progress


@dataclass(frozen=True, slots=True)
class RoundOutput:
    """What one job left: its pyperf JSON file, its samples directory, its wall time."""

    pyperf_json: Path
    samples_dir: Path
    elapsed_s: float


RoundRunner = Callable[[RoundJob], RoundOutput]
SidePreparer = Callable[[CheckoutRequest], contextlib.AbstractContextManager[Checkout]]


# -- one round of one side ---------------------------------------------------------


def side_command(
    python: Path, workload: str, profile: registry.Profile, output: Path, inherit: Sequence[str]
) -> list[str]:
    """:func:`workloads.registry.command` run by ``python``, inheriting ``inherit`` too.

    pyperf's workers see only the variables of its ``--inherit-environ`` list, so
    every per-side variable must be named there or it never reaches the code.
    Both sides get the same list: their command lines differ only by interpreter.
    """
    argv = registry.command(workload, profile, output)
    argv[0] = str(python)
    for index, argument in enumerate(argv):
        if argument.startswith(_INHERIT):
            names = [n for n in argument.removeprefix(_INHERIT).split(",") if n]
            argv[index] = _INHERIT + ",".join(dict.fromkeys([*names, *inherit]))
            break
    else:
        argv.append(_INHERIT + ",".join(dict.fromkeys([SAMPLES_DIR_ENV, PROFILE_ENV, *inherit])))
    return argv


def run_round(job: RoundJob) -> RoundOutput:
    """The default runner: the job's pyperf command as a subprocess, from ``job.workdir``.

    Failures are :class:`~harness.errors.WorkloadError`, a skip a
    :class:`~harness.errors.WorkloadSkipped` (see :func:`harness.measure.run.run_workload_command`).
    """
    elapsed = run_workload_command(
        job.argv,
        job.label,
        job.workdir / job.workload,
        job.env,
        job.progress,
        job.index,
        cwd=job.workdir,
    )
    return RoundOutput(job.output, job.samples_dir, elapsed)


# -- merging -----------------------------------------------------------------------


def rewrite_round_ids(
    samples: Sequence[MetricSamples], round_no: int, side: Side
) -> tuple[MetricSamples, ...]:
    """``samples`` with each round id ``X`` become ``r<round_no>:<side>:X`` (the pairing key)."""
    return tuple(
        dataclasses.replace(sample, round=f"r{round_no}:{side}:{sample.round}")
        for sample in samples
    )


def merge_rounds(workload: str, paths: Sequence[Path]) -> Any:
    """One ``pyperf.BenchmarkSuite`` of ``paths`` (one file per round, in round order).

    Each benchmark's ``k``-th run is round ``k``: a round's file must hold exactly
    one run per benchmark, and every round the same benchmarks, else
    :class:`~harness.errors.WorkloadError` (the pairing would be wrong).
    """
    merged: Any = None
    names: list[str] = []
    for round_no, path in enumerate(paths):
        try:
            suite = pyperf.BenchmarkSuite.load(str(path))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WorkloadError(
                f"workload {workload} left no readable pyperf results in round {round_no}: {exc}",
                where=str(path),
                expected="the pyperf JSON file its --output option names",
            ) from None
        round_names = sorted(str(bench.get_name()) for bench in suite)
        for bench in suite:
            if bench.get_nrun() != 1:
                raise WorkloadError(
                    f"workload {workload}, round {round_no}: benchmark {bench.get_name()!r} "
                    f"has {bench.get_nrun()} runs",
                    where=str(path),
                    expected="one pyperf run per round (--processes=1)",
                )
        if merged is None:
            merged, names = suite, round_names
            continue
        if round_names != names:
            raise WorkloadError(
                f"workload {workload}, round {round_no}: benchmarks {round_names}",
                where=str(path),
                expected=f"the benchmarks of round 0: {names}",
            )
        try:
            merged.add_runs(suite)
        except ValueError as exc:
            raise WorkloadError(
                f"workload {workload}, round {round_no}: {exc}", where=str(path)
            ) from None
    if merged is None:
        raise WorkloadError(f"workload {workload} ran no round")
    return merged


# -- options -----------------------------------------------------------------------


def parse_assignments(assignments: Sequence[str], flag: str) -> dict[str, str]:
    """``VAR=VALUE`` strings as a mapping (an EnvironmentRefused naming ``flag`` if malformed)."""
    parsed: dict[str, str] = {}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep or not _VARIABLE.fullmatch(name):
            raise EnvironmentRefused(
                f"{assignment!r} is not a variable assignment",
                where=flag,
                expected="VAR=VALUE with VAR a shell variable name, e.g. "
                "AGENTBENCH_INJECT_SLOWDOWN=0.1",
            )
        parsed[name] = value
    return parsed


def default_workloads() -> list[str]:
    """The workloads a comparison runs by default: those whose figures are wall-clock.

    Trace-clock workloads run on a virtual clock: their figures are deterministic,
    the same on both sides unless the code's behaviour changed, which ``harness
    run``'s replay check and targets catch; timing them buys nothing.
    """
    return [name for name, info in registry.WORKLOADS.items() if info.clock == "wall"]


def _check_options(options: InterleaveOptions) -> None:
    if options.rounds < 1:
        raise WorkloadError(f"{options.rounds} rounds", where="--rounds", expected="1 or more")
    for flag, variables in (
        ("--base-env", options.base_env),
        ("--candidate-env", options.candidate_env),
    ):
        parse_assignments([f"{name}={value}" for name, value in variables.items()], flag)


def _on_both_sides(
    wanted: Sequence[str], explicit: bool, checkouts: Mapping[Side, Checkout], stream: TextIO
) -> list[str]:
    """The workloads both checkouts have; a missing one is an error only when asked for."""
    kept: list[str] = []
    for name in wanted:
        missing = [(side, c) for side, c in checkouts.items() if name not in c.workloads]
        if not missing:
            kept.append(name)
            continue
        where = " and ".join(f"{side} ({c.ref} = {c.sha[:7]})" for side, c in missing)
        if explicit:
            raise WorkloadError(
                f"workload {name} does not exist in {where}",
                where="--workload",
                expected="a workload both refs have",
            )
        stream.write(f"note: {name} left out: not in {where}\n")
    if not kept:
        raise WorkloadError("no selected workload exists on both sides", where="--workload")
    return kept


def _trace_ids(checkout: Path, names: Sequence[str]) -> dict[str, str]:
    ids: dict[str, str] = {}
    for name in names:
        for trace in registry.WORKLOADS[name].traces:
            for suffix in (".jsonl", ".jsonl.gz"):
                path = checkout / "workloads" / "traces" / f"{trace}{suffix}"
                if path.is_file():
                    ids[trace] = trace_id(path)
                    break
    return ids


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the comparison ----------------------------------------------------------------


@dataclass(slots=True)
class _Collected:
    """What one side measured so far: per workload its round files and time; its samples."""

    pyperf_files: dict[str, list[Path]] = dataclasses.field(default_factory=dict)
    samples: dict[str, list[MetricSamples]] = dataclasses.field(default_factory=dict)
    elapsed_s: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything the rounds need, fixed before the first one runs."""

    run_id: str
    order: list[str]
    names: list[str]
    explicit: bool
    inherit: list[str]
    side_env: Mapping[Side, Mapping[str, str]]
    scratch: Path


def interleave(
    options: InterleaveOptions,
    *,
    progress: TextIO | None = None,
    prepare: SidePreparer = installed_checkout,
    runner: RoundRunner = run_round,
    clock: Callable[[], float] = time.monotonic,
) -> InterleaveResult:
    """Run one interleaved comparison (see the module's steps and guarantees).

    ``prepare`` builds a side (default: worktree + virtualenv) and ``runner`` runs
    one job (default: a subprocess); both are injectable so that the orchestration
    is testable without either. Progress goes to ``progress`` (default: stderr),
    its elapsed times from ``clock``.
    """
    stream = sys.stderr if progress is None else progress
    _check_options(options)
    explicit = bool(options.workloads)
    wanted = selected_workloads(options.workloads) if explicit else default_workloads()
    repo = repository_root(options.repo)
    refs = {Side.BASE: options.base_ref, Side.CANDIDATE: options.candidate_ref}
    shas = {side: resolve_ref(repo, ref) for side, ref in refs.items()}
    targets = load_targets(options.targets_path, registry.WORKLOADS)
    check_writable(options.out_dir)
    seed = options.seed
    if seed is None and options.method is OrderMethod.RANDOM:
        seed = secrets.randbits(32)
    order = round_order(options.rounds, options.method, seed)
    machine = environment.collect(root=repo, system_show=options.system_show)
    started = datetime.now(UTC)
    run_id = new_run_id(shas[Side.CANDIDATE][:7], started)
    stream.write(
        f"interleaved comparison {run_id}: base {refs[Side.BASE]} ({shas[Side.BASE][:7]}) "
        f"vs candidate {refs[Side.CANDIDATE]} ({shas[Side.CANDIDATE][:7]}), "
        f"{len(order)} rounds in {options.method} order {' '.join(order)}\n"
    )
    stream.flush()
    tracker = Progress(stream, 0, clock)  # its elapsed times count the setup too
    # Absolute: git and the installers run from other directories.
    scratch = (options.out_dir / f"{SCRATCH_PREFIX}{run_id}").absolute()
    scratch.mkdir()
    try:
        with contextlib.ExitStack() as stack:
            checkouts = {
                side: stack.enter_context(
                    prepare(
                        CheckoutRequest(
                            str(side), refs[side], shas[side], repo, scratch, machine, stream
                        )
                    )
                )
                for side in Side
            }
            plan = _Plan(
                run_id=run_id,
                order=order,
                names=_on_both_sides(wanted, explicit, checkouts, stream),
                explicit=explicit,
                inherit=sorted({*options.base_env, *options.candidate_env}),
                side_env={Side.BASE: options.base_env, Side.CANDIDATE: options.candidate_env},
                scratch=scratch,
            )
            collected, skipped = _run_rounds(plan, checkouts, runner, tracker)
            finished = datetime.now(UTC)
            sides = {
                side: _side_bundle(
                    side,
                    checkouts[side],
                    collected[side],
                    plan,
                    skipped,
                    method=options.method,
                    seed=seed,
                    targets_path=options.targets_path,
                    targets=targets,
                    started=started,
                    finished=finished,
                )
                for side in Side
            }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    paths = {
        side: write_bundle(options.out_dir, manifest, suite, samples, [])
        for side, (manifest, suite, samples) in sides.items()
    }
    return InterleaveResult(
        base_bundle=paths[Side.BASE],
        candidate_bundle=paths[Side.CANDIDATE],
        run_id=run_id,
        order=tuple(order),
    )


def _run_rounds(
    plan: _Plan, checkouts: Mapping[Side, Checkout], runner: RoundRunner, tracker: Progress
) -> tuple[dict[Side, _Collected], dict[str, str]]:
    """Every round of every workload of both sides; what each side measured, and the skips."""
    collected = {side: _Collected() for side in Side}
    skipped: dict[str, str] = {}
    active = list(plan.names)
    tracker.total = len(plan.order) * len(active) * 2
    index = 0
    for round_no, entry in enumerate(plan.order):
        for name in list(active):
            for side in _sides_of(entry):
                index += 1
                job = _job(plan, checkouts[side], side, round_no, name, index, tracker)
                try:
                    result = runner(job)
                except WorkloadSkipped as skip:
                    if plan.explicit:
                        raise
                    skipped[name] = skip.line
                    active.remove(name)
                    # The jobs this workload will now never run leave the count.
                    first = side is _sides_of(entry)[0]
                    tracker.total -= (len(plan.order) - round_no - 1) * 2 + (1 if first else 0)
                    break
                side_rounds = collected[side]
                side_rounds.pyperf_files.setdefault(name, []).append(result.pyperf_json)
                side_rounds.samples.setdefault(name, []).extend(
                    rewrite_round_ids(read_workload_samples(result.samples_dir), round_no, side)
                )
                side_rounds.elapsed_s[name] = side_rounds.elapsed_s.get(name, 0.0) + (
                    result.elapsed_s
                )
    if not active:
        raise WorkloadError(
            "nothing was measured: every selected workload skipped itself",
            where="; ".join(skipped.values()),
            expected="at least one workload that can run here",
        )
    return collected, skipped


def _job(
    plan: _Plan,
    checkout: Checkout,
    side: Side,
    round_no: int,
    name: str,
    index: int,
    tracker: Progress,
) -> RoundJob:
    workdir = plan.scratch / "rounds" / f"r{round_no}" / name / str(side)
    samples_dir = workdir / "samples"
    samples_dir.mkdir(parents=True)
    output = workdir / f"{name}.pyperf.json"
    env = clean_environ(os.environ)
    env[SAMPLES_DIR_ENV] = str(samples_dir)
    env[PROFILE_ENV] = ROUND_PROFILE.name
    env.update(plan.side_env[side])
    return RoundJob(
        side=side,
        checkout=checkout,
        round_no=round_no,
        workload=name,
        output=output,
        samples_dir=samples_dir,
        workdir=workdir,
        argv=tuple(side_command(checkout.python, name, ROUND_PROFILE, output, plan.inherit)),
        env=env,
        label=f"round {round_no + 1}/{len(plan.order)} {name} {side.letter}",
        index=index,
        progress=tracker,
    )


def _side_bundle(
    side: Side,
    checkout: Checkout,
    collected: _Collected,
    plan: _Plan,
    skipped: Mapping[str, str],
    *,
    method: OrderMethod,
    seed: int | None,
    targets_path: Path,
    targets: Sequence[Target],
    started: datetime,
    finished: datetime,
) -> tuple[Manifest, Any, tuple[MetricSamples, ...]]:
    """One side's manifest, merged pyperf suite and samples, ready for ``write_bundle``."""
    measured = [name for name in plan.names if name not in skipped]
    merged_dir = plan.scratch / "merged" / str(side)
    merged_dir.mkdir(parents=True)
    outputs: list[tuple[str, Path]] = []
    for name in measured:
        path = merged_dir / f"{name}.pyperf.json"
        merge_rounds(name, collected.pyperf_files[name]).dump(str(path))
        outputs.append((name, path))
    suite, benchmarks = merge_results(outputs)
    samples = tuple(sample for name in measured for sample in collected.samples.get(name, ()))
    workload_runs = [
        WorkloadRun(
            name=name,
            clock=registry.WORKLOADS[name].clock,
            benchmarks=benchmarks.get(name, []),
            samples=len(collected.samples.get(name, ())) if name not in skipped else 0,
            elapsed_s=collected.elapsed_s.get(name, 0.0),
            traces=list(registry.WORKLOADS[name].traces),
            skipped=skipped.get(name, ""),
        )
        for name in plan.names
    ]
    manifest = Manifest(
        run_id=f"{plan.run_id}-{side}",
        profile=ProfileRecord(
            name=ROUND_PROFILE.name,
            processes=ROUND_PROFILE.processes,
            values=ROUND_PROFILE.values,
            warmups=ROUND_PROFILE.warmups,
            min_time_s=ROUND_PROFILE.min_time_s,
        ),
        workloads=workload_runs,
        started_utc=started.isoformat(timespec="seconds"),
        finished_utc=finished.isoformat(timespec="seconds"),
        environment=checkout.environment,
        traces=_trace_ids(checkout.path, measured),
        targets_file=str(targets_path),
        targets_sha256=_sha256(targets_path),
        verdicts=evaluate_targets(targets, workload_runs, samples, suite),
        determinism=Determinism(
            status=DeterminismStatus.NOT_RUN,
            reason="interleaved comparison: the replay check is `harness run`'s",
        ),
        interleaving=Interleaving(
            side=str(side),
            ref=checkout.ref,
            sha=checkout.sha,
            method=str(method),
            seed=seed,
            rounds=len(plan.order),
            order=list(plan.order),
            pair_id=plan.run_id,
            env=dict(plan.side_env[side]),
        ),
    )
    return manifest, suite, samples
