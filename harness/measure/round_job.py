"""One round of one side of an interleaved comparison: its job, its process, its files.

A round runs each workload of one side as ``<side python> -m workloads.<name>``
with one pyperf process (:func:`side_command`, :func:`run_round`). Its samples'
round ids become the pairing key ``r<k>:<side>:<original>``
(:func:`rewrite_round_ids`), and a workload's per-round pyperf files merge into
one benchmark whose ``k``-th run is round ``k`` (:func:`merge_rounds`): the
pairing contract with ``harness compare``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyperf

from harness.errors import WorkloadError
from harness.measure.checkout import Checkout
from harness.measure.sides import Side
from harness.measure.workload_process import PROFILE_ENV, Progress, run_workload_command
from workloads import registry
from workloads.samples import SAMPLES_DIR_ENV, MetricSamples

__all__ = [
    "RoundJob",
    "RoundOutput",
    "RoundRunner",
    "merge_rounds",
    "rewrite_round_ids",
    "run_round",
    "side_command",
]

_INHERIT = "--inherit-environ="


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
    :class:`~harness.errors.WorkloadSkipped` (see
    :func:`harness.measure.workload_process.run_workload_command`).
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
