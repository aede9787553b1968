"""The two sides of an interleaved comparison, and the passes each makes outside the rounds.

:class:`Side` names them (base ``A``, candidate ``B``). Outside the rounds, each
side, with its own interpreter, installed code and variables, from a neutral
directory: its instruction counts under cachegrind, once, before the first round
(:func:`count_sides`), and its hot paths' profiles after the last one
(:func:`profile_sides`). Neither pass ever runs during a round, so neither
disturbs one; both are injectable (:data:`SideCounter`, :data:`SideProfiler`) so
that :func:`harness.measure.interleave.interleave` is testable without them.
"""

from __future__ import annotations

import enum
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from harness.bundle.files import HotPathProfile
from harness.measure.checkout import Checkout, clean_environ
from harness.measure.profiles import Capture, capture_in
from harness.measure.workload_process import PROFILE_ENV
from workloads import registry
from workloads.samples import SAMPLES_DIR_ENV, MetricSamples

__all__ = [
    "INSTRUCTIONS_TIMEOUT_S",
    "Counted",
    "Side",
    "SideCounter",
    "SideProfiler",
    "capture_side_profiles",
    "count_side_instructions",
    "count_sides",
    "no_profiles",
    "outside_rounds_env",
    "profile_sides",
]


class Side(enum.StrEnum):
    """Which side of the comparison: base is ``A``, candidate ``B`` in a round's order."""

    BASE = "base"
    CANDIDATE = "candidate"

    @property
    def letter(self) -> str:
        """``A`` for base, ``B`` for candidate (as in the recorded order)."""
        return "A" if self is Side.BASE else "B"


# A side's profile capture: its checkout, its variables, a scratch directory to run from.
SideProfiler = Callable[[Checkout, Mapping[str, str], Path], Capture]


def outside_rounds_env(side_env: Mapping[str, str]) -> dict[str, str]:
    """The environment of a side's pass outside the rounds (profiles, instructions).

    Ours less what would make it run other code (:func:`clean_environ`) and less the
    round variables (no samples are recorded), plus the side's own variables.
    """
    env = clean_environ(os.environ)
    for name in (SAMPLES_DIR_ENV, PROFILE_ENV):
        env.pop(name, None)
    env.update(side_env)
    return env


def capture_side_profiles(
    checkout: Checkout, side_env: Mapping[str, str], workdir: Path
) -> Capture:
    """The hot paths' profiles of one side, captured by its own interpreter and harness.

    Run from ``workdir`` (neutral: the side's installed code runs, not ours), with
    our environment less what would make it run other code
    (:func:`~harness.measure.checkout.clean_environ`) plus the side's own variables,
    so a planted slowdown measured on a side shows in its profile.
    """
    return capture_in(checkout.python, env=outside_rounds_env(side_env), cwd=workdir)


@dataclass(frozen=True, slots=True)
class Counted:
    """One side's instruction counts (samples of the ``instructions`` pseudo-workload).

    ``note`` says why there are none; ``skip`` is the workload's SKIPPED line when
    the machine lacks valgrind (recorded in the manifest as any skip is).
    """

    samples: tuple[MetricSamples, ...]
    note: str = ""
    skip: str = ""
    elapsed_s: float = 0.0


SideCounter = Callable[[Side, Checkout, Mapping[str, str], Path], Counted]
INSTRUCTIONS_TIMEOUT_S = 1800.0


def count_side_instructions(
    side: Side, checkout: Checkout, side_env: Mapping[str, str], workdir: Path
) -> Counted:
    """The instruction clock of one side, counted by its own interpreter and code.

    One pass a side (the counts repeat to the digit: no rounds needed), before the
    first round, with the side's own variables (a planted AGENTBENCH_INJECT_CPU counts).
    A side whose code has no instruction clock (an older commit) gets none, saying so.
    """
    env = outside_rounds_env(side_env)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [str(checkout.python), "-m", "workloads.instructions", "--json"],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=INSTRUCTIONS_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Counted((), f"the instruction pass took over {INSTRUCTIONS_TIMEOUT_S:.0f} s")
    except OSError as exc:
        return Counted((), f"its interpreter did not start ({exc.strerror or exc})")
    elapsed = time.monotonic() - started
    last = (done.stderr.strip().splitlines() or [""])[-1]
    if done.returncode == registry.SKIP_EXIT_STATUS:
        line = registry.skip_line(registry.INSTRUCTIONS, last.removeprefix("instructions: "))
        return Counted((), line, skip=line, elapsed_s=elapsed)
    if done.returncode != 0 or not done.stdout.strip():
        return Counted((), f"no instruction clock in this side's code ({last or 'no output'})")
    try:
        figures = json.loads(done.stdout.strip().splitlines()[-1])
    except ValueError:
        return Counted((), "its instruction pass printed no JSON")
    round_id = f"instructions:{side}"
    samples = tuple(
        MetricSamples(
            registry.INSTRUCTIONS,
            str(metric),
            round_id,
            "instructions",
            "instructions",
            (float(v),),
        )
        for metric, v in figures.items()
    )
    return Counted(samples, elapsed_s=elapsed)


def _sides_in_turn(
    doing: str, scratch: Path, checkouts: Mapping[Side, Checkout], stream: TextIO
) -> Iterator[tuple[Side, Checkout, str, Path]]:
    """Each side, base first, for one pass outside the rounds: its progress line said
    (``doing``, whose ``{}`` is the side's label), and its own directory under ``scratch``."""
    for side in Side:
        checkout = checkouts[side]
        label = f"{side} ({checkout.ref} = {checkout.sha[:7]})"
        stream.write(doing.format(label) + " ...\n")
        stream.flush()
        workdir = scratch / str(side)
        workdir.mkdir(parents=True, exist_ok=True)
        yield side, checkout, label, workdir


def count_sides(
    scratch: Path,
    side_env: Mapping[Side, Mapping[str, str]],
    checkouts: Mapping[Side, Checkout],
    counter: SideCounter,
    stream: TextIO,
) -> dict[Side, Counted]:
    """Each side's instruction counts, before the first round (they never disturb one)."""
    counted: dict[Side, Counted] = {}
    doing = "counting the instructions of {} (cachegrind)"
    for side, checkout, label, workdir in _sides_in_turn(
        doing, scratch / "instructions", checkouts, stream
    ):
        counted[side] = counter(side, checkout, side_env[side], workdir)
        if counted[side].note:
            stream.write(f"note: {label}: {counted[side].note}\n")
    # One side counted and the other has no instruction clock (an older commit): the
    # clock is left out of both bundles, as any workload one side cannot run, so the
    # two bundles hold the same workloads and the rest is still compared.
    lacking = [side for side in Side if not counted[side].samples and not counted[side].skip]
    if lacking and any(counted[side].samples for side in Side):
        reason = f"the {lacking[0]} side has none ({counted[lacking[0]].note}): not compared"
        line = registry.skip_line(registry.INSTRUCTIONS, reason)
        stream.write(f"note: instruction clock left out of both sides: {reason}\n")
        counted = {side: Counted((), reason, skip=line) for side in Side}
    return counted


def no_profiles(checkout: Checkout, side_env: Mapping[str, str], workdir: Path) -> Capture:
    """A :data:`SideProfiler` that captures nothing (a comparison without profiles)."""
    return Capture((), "no profiles: not asked for")


def profile_sides(
    scratch: Path,
    side_env: Mapping[Side, Mapping[str, str]],
    checkouts: Mapping[Side, Checkout],
    profiler: SideProfiler,
    stream: TextIO,
) -> dict[Side, tuple[HotPathProfile, ...]]:
    """Each side's profiles, base first, after every round (they never disturb one)."""
    profiles: dict[Side, tuple[HotPathProfile, ...]] = {}
    doing = "profiling the hot paths of {}"
    for side, checkout, label, workdir in _sides_in_turn(
        doing, scratch / "profiles", checkouts, stream
    ):
        capture = profiler(checkout, side_env[side], workdir)
        if capture.note:
            stream.write(f"note: {label}: {capture.note}\n")
        profiles[side] = capture.profiles
    return profiles
