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
3. Per side, its instruction counts (``python -m workloads.instructions`` under
   cachegrind), once, before the first round: exact, they need no rounds, and
   ``--until-decided`` reads them beside the rounds (a wall row its instruction
   twin decides is decided).
4. For round ``k`` = 0..N-1, for each workload, each side in the round's order:
   ``<side python> -m workloads.<name>`` with one pyperf process
   (:data:`ROUND_PROFILE`), from a neutral working directory so that the side's
   own installed code runs, with ``AGENTBENCH_SAMPLES_DIR`` fresh per side, round
   and workload, and the side's ``--base-env`` / ``--candidate-env`` variables
   (added to pyperf's ``--inherit-environ`` list, or its workers never see them).
5. Per side, each sample's round id becomes ``r<k>:<side>:<original>``, each
   workload's per-round pyperf files are merged into one benchmark whose
   ``k``-th run is round ``k``, and the side is written as a bundle:
   ``<out>/<run-id>-base`` and ``<out>/<run-id>-candidate``, with the hot paths'
   profiles captured once per side after the last round, by the side's own
   interpreter and harness, with its variables (:mod:`harness.measure.sides`; a
   side whose harness has none gets none, and a note says so).

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

Why one module: what is left here is the comparison itself, one orchestration over
one private state: the plan fixed before the first round (``_Plan``), what each
side measured so far (``_Collected``, which a re-run replaces in place and
``--until-decided`` reads), the round loop with its re-runs and added pairs, and
each side's bundle built from them; the guarantees above are properties of that
loop as a whole. A round's job and files are :mod:`harness.measure.round_job`, the
passes outside the rounds :mod:`harness.measure.sides`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
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
    WorkloadRun,
    merge_results,
    new_run_id,
    write_bundle,
)
from harness.bundle.verdicts import PYPERF_METRIC, Target
from harness.errors import EnvironmentRefused, WorkloadError, WorkloadSkipped
from harness.judge.compare import CompareOptions, compare_rounds
from harness.judge.rounds import sample_rounds
from harness.judge.stats import RowVerdict
from harness.judge.targets import (
    DEFAULT_TARGETS_PATH,
    load_targets,
    load_thresholds,
)
from harness.measure.checkout import (
    Checkout,
    CheckoutRequest,
    clean_environ,
    installed_checkout,
    repository_root,
    resolve_ref,
)
from harness.measure.load import LoadMeter, LoadReading
from harness.measure.manifest import build_manifest, trace_ids
from harness.measure.preflight import check_writable
from harness.measure.round_job import (
    RoundJob,
    RoundRunner,
    merge_rounds,
    rewrite_round_ids,
    run_round,
    side_command,
)
from harness.measure.run import evaluate_targets
from harness.measure.sides import (
    Counted,
    Side,
    SideCounter,
    SideProfiler,
    capture_side_profiles,
    count_side_instructions,
    count_sides,
    profile_sides,
)
from harness.measure.workload_process import (
    PROFILE_ENV,
    Progress,
    read_workload_samples,
    selected_workloads,
)
from workloads import registry
from workloads.samples import SAMPLES_DIR_ENV, MetricSamples

__all__ = [
    "DEFAULT_OUT",
    "DEFAULT_ROUNDS",
    "ROUND_PROFILE",
    "InterleaveOptions",
    "InterleaveResult",
    "OrderMethod",
    "SidePreparer",
    "default_workloads",
    "interleave",
    "parse_assignments",
    "round_order",
]

# Rounds are the unit of evidence: the paired signed-rank test of n rounds cannot
# go below p = 2 / 2**n, so 6 rounds (p >= 0.031) can never pass a suite-wide
# Benjamini-Hochberg level (0.05 over ~35 tests: 0.0014 for the strongest row),
# while 12 rounds (p >= 0.0005) can. Twelve one-value rounds take the time of six
# three-value rounds: about 10-12 minutes for the default workloads on 2 cores.
DEFAULT_ROUNDS = 12
DEFAULT_BUDGET_S = 20 * 60.0  # --until-decided stops adding rounds here
DEFAULT_OUT = Path("reports") / "compare"
# One pyperf worker process per round: the round is the unit of pairing, so the
# process is too. One value after one warmup: more rounds buy more than more values
# per round (see DEFAULT_ROUNDS); loops are fixed to 1 by registry.command (a round
# of a workload is heavy enough to need no calibration).
ROUND_PROFILE = registry.Profile("interleaved", processes=1, values=1, warmups=1, min_time_s=0.05)
SCRATCH_PREFIX = ".interleave-"
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
    until_decided: bool = False
    budget_s: float = DEFAULT_BUDGET_S
    instructions: bool = True
    threshold: float = 0.05


@dataclass(frozen=True, slots=True)
class InterleaveResult:
    """A finished comparison: the two bundles, the pair's run id, the order used."""

    base_bundle: Path
    candidate_bundle: Path
    run_id: str
    order: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RoundNote:
    """A round run again because other processes took the CPU during it."""

    round_no: int
    first: str
    again: str
    still_disturbed: bool

    def describe(self) -> str:
        """One line: which round, why, and how its second run went."""
        line = f"round {self.round_no + 1} run again: {self.first}"
        if self.still_disturbed:
            line += f"; still disturbed the second time ({self.again}), kept"
        return line


# Given what both sides measured so far, the rows still undecided (an MDE above the
# threshold): ``--until-decided`` adds rounds while there are any.
Decider = Callable[[Mapping["Side", "_Collected"]], list[str]]
SidePreparer = Callable[[CheckoutRequest], contextlib.AbstractContextManager[Checkout]]


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


def undecided_rows(
    collected: Mapping[Side, _Collected],
    *,
    threshold: float,
    thresholds: Mapping[str, float],
    counted: Mapping[Side, Sequence[MetricSamples]] | None = None,
) -> list[str]:
    """The rows ``harness compare`` would call inconclusive on what was measured so far.

    Inconclusive means not significant with an MDE above the row's threshold: more
    rounds can decide it. A row that is significant (either way) is decided, so the
    rule reads the noise, never the size of the difference. With ``counted`` (each
    side's instruction counts), a wall row whose twin decides it is decided, as in
    the comparison itself (:mod:`harness.judge.twins`): no round is spent on it.
    """
    rounds = {}
    for side, side_rounds in collected.items():
        samples: list[MetricSamples] = list(counted.get(side, ()) if counted else ())
        for name in side_rounds.samples:
            samples.extend(side_rounds.all_samples(name))
        for name in side_rounds.pyperf_files:
            for round_no, path in sorted(side_rounds.pyperf_files[name].items()):
                suite = pyperf.BenchmarkSuite.load(str(path))
                values = tuple(float(v) for bench in suite for v in bench.get_values())
                key = f"r{round_no}:{side}:pyperf"
                samples.append(MetricSamples(name, PYPERF_METRIC, key, "s", "wall", values))
        rounds[side] = sample_rounds(samples)
    options = CompareOptions(threshold=threshold, thresholds=thresholds, resamples=200)
    rows, _, _ = compare_rounds(rounds[Side.BASE], rounds[Side.CANDIDATE], options)
    return [
        f"{row.workload}/{row.metric}/{row.statistic}"
        for row in rows
        if row.verdict is RowVerdict.INCONCLUSIVE
    ]


# -- the comparison ----------------------------------------------------------------


@dataclass(slots=True)
class _Collected:
    """What one side measured so far, per workload and round: its pyperf file and samples.

    Keyed by round number, so a round run again (disturbed) replaces its first
    measurement in place, and the ``k``-th pyperf run of a benchmark stays round ``k``.
    """

    pyperf_files: dict[str, dict[int, Path]] = dataclasses.field(default_factory=dict)
    samples: dict[str, dict[int, tuple[MetricSamples, ...]]] = dataclasses.field(
        default_factory=dict
    )
    elapsed_s: dict[str, float] = dataclasses.field(default_factory=dict)

    def files(self, name: str) -> list[Path]:
        """``name``'s pyperf files in round order."""
        rounds = self.pyperf_files.get(name, {})
        return [rounds[k] for k in sorted(rounds)]

    def all_samples(self, name: str) -> tuple[MetricSamples, ...]:
        """``name``'s samples in round order."""
        rounds = self.samples.get(name, {})
        return tuple(sample for k in sorted(rounds) for sample in rounds[k])


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
    meter: Callable[[], LoadMeter] | None = None,
    profiler: SideProfiler | None = None,
    counter: SideCounter | None = None,
) -> InterleaveResult:
    """Run one interleaved comparison (see the module's steps and guarantees).

    ``prepare`` builds a side (default: worktree + virtualenv) and ``runner`` runs
    one job (default: a subprocess); both are injectable so that the orchestration
    is testable without either. Progress goes to ``progress`` (default: stderr),
    its elapsed times from ``clock``. ``profiler`` captures a side's profiles
    (default :func:`~harness.measure.sides.capture_side_profiles`;
    :func:`~harness.measure.sides.no_profiles` captures none).
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
            # The instruction pass runs before the first round (it never disturbs one):
            # --until-decided then counts a wall row its twin decides as decided.
            counted = (
                count_sides(
                    scratch,
                    plan.side_env,
                    checkouts,
                    counter or count_side_instructions,
                    stream,
                )
                if options.instructions
                else {side: Counted((), "not asked for (--no-instructions)") for side in Side}
            )
            decide = None
            if options.until_decided:
                thresholds = load_thresholds(options.targets_path)
                decide = functools.partial(
                    undecided_rows,
                    threshold=options.threshold,
                    thresholds=thresholds,
                    counted={side: counted[side].samples for side in Side},
                )
            collected, skipped, notes = _run_rounds(
                plan,
                checkouts,
                runner,
                tracker,
                meter=meter or LoadMeter,
                decide=decide,
                budget_s=options.budget_s,
                clock=clock,
            )
            stream.write(
                f"{len(notes)} round(s) run again: "
                + ("; ".join(note.describe() for note in notes) if notes else "none disturbed")
                + "\n"
            )
            finished = datetime.now(UTC)
            profiles = profile_sides(
                scratch, plan.side_env, checkouts, profiler or capture_side_profiles, stream
            )
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
                    reruns=[note.describe() for note in notes],
                    counted=counted[side],
                )
                for side in Side
            }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    paths = {
        side: write_bundle(options.out_dir, manifest, suite, samples, [], profiles[side])
        for side, (manifest, suite, samples) in sides.items()
    }
    return InterleaveResult(
        base_bundle=paths[Side.BASE],
        candidate_bundle=paths[Side.CANDIDATE],
        run_id=run_id,
        order=tuple(order),
    )


def _run_rounds(
    plan: _Plan,
    checkouts: Mapping[Side, Checkout],
    runner: RoundRunner,
    tracker: Progress,
    *,
    meter: Callable[[], LoadMeter] = LoadMeter,
    decide: Decider | None = None,
    budget_s: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[dict[Side, _Collected], dict[str, str], list[RoundNote]]:
    """Every round of every workload of both sides; what each side measured, the skips,
    and a note for each round run again.

    Each round is metered (:mod:`harness.measure.load`): one during which other
    processes kept the CPU busy is run again, once, after the planned rounds, and
    its second measurement replaces the first. With ``decide``, pairs of rounds
    (``AB``, ``BA``) are added while ``decide`` names undecided rows and
    ``budget_s`` allows (the rule looks only at the noise, never at the difference).
    """
    collected = {side: _Collected() for side in Side}
    skipped: dict[str, str] = {}
    active = list(plan.names)
    notes: list[RoundNote] = []
    tracker.total = len(plan.order) * len(active) * 2
    started = clock()
    index = 0

    def one_round(round_no: int, entry: str) -> LoadReading:
        nonlocal index
        load = meter()
        load.start()
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
                    for side_rounds in collected.values():
                        side_rounds.pyperf_files.pop(name, None)
                        side_rounds.samples.pop(name, None)
                    # The jobs this workload will now never run leave the count.
                    first = side is _sides_of(entry)[0]
                    tracker.total -= (len(plan.order) - round_no - 1) * 2 + (1 if first else 0)
                    break
                side_rounds = collected[side]
                side_rounds.pyperf_files.setdefault(name, {})[round_no] = result.pyperf_json
                side_rounds.samples.setdefault(name, {})[round_no] = rewrite_round_ids(
                    read_workload_samples(result.samples_dir), round_no, side
                )
                side_rounds.elapsed_s[name] = side_rounds.elapsed_s.get(name, 0.0) + (
                    result.elapsed_s
                )
        return load.stop()

    disturbed: list[tuple[int, LoadReading]] = []
    for round_no, entry in enumerate(plan.order):
        reading = one_round(round_no, entry)
        if reading.disturbed:
            disturbed.append((round_no, reading))
            tracker.write(f"round {round_no + 1} disturbed: {reading.describe()}; run again last")
    if disturbed:
        tracker.total += len(disturbed) * len(active) * 2
    for round_no, first in disturbed:
        again = one_round(round_no, plan.order[round_no])
        notes.append(RoundNote(round_no, first.describe(), again.describe(), again.disturbed))
    while decide is not None and active:
        undecided = decide(collected)
        if not undecided:
            tracker.write(f"every row decided after {len(plan.order)} rounds")
            break
        spent = clock() - started
        per_round = spent / max(len(plan.order) + len(notes), 1)
        if spent + 2 * per_round > budget_s:
            tracker.write(
                f"budget reached after {len(plan.order)} rounds: {len(undecided)} row(s) "
                f"undecided ({', '.join(undecided[:3])}{', ...' if len(undecided) > 3 else ''})"
            )
            break
        tracker.write(
            f"{len(undecided)} row(s) undecided after {len(plan.order)} rounds (their MDE is "
            f"above the threshold): adding 2 rounds"
        )
        tracker.total += 2 * len(active) * 2
        for entry in ("AB", "BA"):
            plan.order.append(entry)
            one_round(len(plan.order) - 1, entry)
    if not active:
        raise WorkloadError(
            "nothing was measured: every selected workload skipped itself",
            where="; ".join(skipped.values()),
            expected="at least one workload that can run here",
        )
    return collected, skipped, notes


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
    while workdir.exists():  # the round is run again (it was disturbed)
        workdir = workdir.with_name(f"{workdir.name}-again")
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
    reruns: Sequence[str] = (),
    counted: Counted | None = None,
) -> tuple[Manifest, Any, tuple[MetricSamples, ...]]:
    """One side's manifest, merged pyperf suite and samples, ready for ``write_bundle``."""
    measured = [name for name in plan.names if name not in skipped]
    merged_dir = plan.scratch / "merged" / str(side)
    merged_dir.mkdir(parents=True)
    outputs: list[tuple[str, Path]] = []
    for name in measured:
        path = merged_dir / f"{name}.pyperf.json"
        merge_rounds(name, collected.files(name)).dump(str(path))
        outputs.append((name, path))
    suite, benchmarks = merge_results(outputs)
    samples = tuple(sample for name in measured for sample in collected.all_samples(name))
    workload_runs = [
        WorkloadRun(
            name=name,
            clock=registry.WORKLOADS[name].clock,
            benchmarks=benchmarks.get(name, []),
            samples=len(collected.all_samples(name)) if name not in skipped else 0,
            elapsed_s=collected.elapsed_s.get(name, 0.0),
            traces=list(registry.WORKLOADS[name].traces),
            skipped=skipped.get(name, ""),
        )
        for name in plan.names
    ]
    if counted is not None and (counted.samples or counted.skip):
        samples = (*samples, *counted.samples)
        workload_runs.append(
            WorkloadRun(
                name=registry.INSTRUCTIONS,
                clock="instructions",
                benchmarks=[],
                samples=len(counted.samples),
                elapsed_s=counted.elapsed_s,
                traces=[],
                skipped=counted.skip,
            )
        )
    manifest = build_manifest(
        run_id=f"{plan.run_id}-{side}",
        profile=ROUND_PROFILE,
        workloads=workload_runs,
        started=started,
        finished=finished,
        environment=checkout.environment,
        traces=trace_ids(measured, checkout.path),
        targets_path=targets_path,
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
            reruns=list(reruns),
        ),
    )
    return manifest, suite, samples
