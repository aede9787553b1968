"""``harness calibrate``: an A/A run of this checkout against itself, to know the noise.

For each of ``rounds`` rounds, every selected workload runs twice back to back
(sides A and B, the same code) with a one-process profile, in a balanced order:
AB on even rounds, BA on odd ones (ABBA across each pair of rounds), so a slot
effect (the second run of a round being slower) falls on both sides equally.
The two sides are then compared exactly as ``harness compare`` compares an
interleaved pair (:func:`harness.judge.compare.compare_rounds`): the per-round log
ratios of A against A give each row's *noise* (their standard deviation) and
its *minimum detectable effect* for that many rounds, at the per-test level
``q / m`` of the whole calibration.

Guarantees:

* Workloads run through :func:`harness.measure.workload_process.run_workload_command` with
  ``AGENTBENCH_SAMPLES_DIR`` set (a fresh directory per run), exactly as
  ``harness run`` runs them; a workload that fails stops the calibration with
  its :class:`~harness.errors.WorkloadError`; one that skips itself is left out
  (and said so).
* The calibration is stored in the history store's ``calibrations`` table in
  one transaction, keyed by the machine fingerprint digest; nothing is stored
  when it does not finish.
* By default a round is exactly an interleaved comparison's round
  (:data:`harness.measure.interleave.ROUND_PROFILE`: one process, one value, one warmup)
  and there are as many (:data:`harness.measure.interleave.DEFAULT_ROUNDS`), so the
  noise measured is the noise ``harness compare`` meets.
* ``harness compare`` uses the latest calibration of the candidate's
  fingerprint for a row's noise when it was measured with the candidate's
  per-round profile and has at least as many rounds as the comparison.
"""

from __future__ import annotations

import dataclasses
import math
import os
import secrets
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import pyperf

from harness.bundle import environment
from harness.bundle.verdicts import PYPERF_METRIC
from harness.errors import WorkloadError, WorkloadSkipped
from harness.judge.compare import CompareOptions, Row, compare_rounds
from harness.judge.rounds import sample_rounds
from harness.judge.stats import RowVerdict
from harness.measure.interleave import DEFAULT_ROUNDS as INTERLEAVE_ROUNDS
from harness.measure.interleave import ROUND_PROFILE
from harness.measure.workload_process import (
    PROFILE_ENV,
    Progress,
    read_workload_samples,
    run_workload_command,
    selected_workloads,
)
from harness.store.db import HISTORY_FILE, CalibrationRow, HistoryStore
from harness.store.location import Location
from workloads import registry
from workloads.samples import SAMPLES_DIR_ENV, MetricSamples

__all__ = [
    "DEFAULT_PROFILE",
    "DEFAULT_ROUNDS",
    "PROFILES",
    "CalibrateOptions",
    "CalibrationResult",
    "SideRunner",
    "balanced_orders",
    "calibrate",
    "format_calibration",
]

DEFAULT_ROUNDS = INTERLEAVE_ROUNDS
SIDES = ("A", "B")
# The profiles a calibration can use: an interleaved comparison's round (the
# default, whose noise is the one `harness compare` meets) or one of `harness run`'s.
PROFILES: dict[str, registry.Profile] = {ROUND_PROFILE.name: ROUND_PROFILE, **registry.PROFILES}
DEFAULT_PROFILE = ROUND_PROFILE.name

# Runs one workload once (one process) and returns its samples, pyperf values
# included as metric ``pyperf`` (``pyperf:<benchmark>`` when it has several).
SideRunner = Callable[[str, registry.Profile, Path, Mapping[str, str]], list[MetricSamples]]


@dataclass(frozen=True, slots=True)
class CalibrateOptions:
    """What ``harness calibrate`` was asked to do."""

    rounds: int = DEFAULT_ROUNDS
    profile: str = DEFAULT_PROFILE
    workloads: tuple[str, ...] = ()
    db: Location = Path("reports") / HISTORY_FILE
    fdr_q: float = 0.05
    threshold: float = 0.05
    thresholds: Mapping[str, float] = dataclasses.field(default_factory=dict)
    seed: int = 0
    store: bool = True


@dataclass(frozen=True, slots=True)
class CalibrationResult:
    """A finished calibration: its rows (A against A), what was stored, the order used."""

    calibration_id: str
    fingerprint: str
    profile: str
    rounds: int
    orders: tuple[str, ...]
    rows: tuple[Row, ...]
    records: tuple[CalibrationRow, ...]
    skipped: tuple[str, ...]
    stored_in: str | None  # the store as it may be printed (a URL without its password)
    method: str


def balanced_orders(rounds: int) -> tuple[str, ...]:
    """``AB`` on even rounds, ``BA`` on odd ones: each pair of rounds is ABBA."""
    return tuple("AB" if k % 2 == 0 else "BA" for k in range(rounds))


def _one_process(profile: registry.Profile) -> registry.Profile:
    return dataclasses.replace(profile, name=profile.name, processes=1)


def _run_side(
    name: str,
    profile: registry.Profile,
    workdir: Path,
    env: Mapping[str, str],
    progress: Progress,
    index: int,
) -> list[MetricSamples]:
    """Run workload ``name`` once; its samples and its pyperf values as samples."""
    samples_dir = workdir / "samples"
    samples_dir.mkdir(parents=True)
    output = workdir / "pyperf.json"
    argv = registry.command(name, profile, output)
    run_workload_command(
        argv, name, workdir / name, {**env, SAMPLES_DIR_ENV: str(samples_dir)}, progress, index
    )
    samples = list(read_workload_samples(samples_dir))
    try:
        suite = pyperf.BenchmarkSuite.load(str(output))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WorkloadError(
            f"workload {name} left no readable pyperf results: {exc}", where=str(output)
        ) from None
    benchmarks = list(suite)
    for bench in benchmarks:
        metric = PYPERF_METRIC if len(benchmarks) == 1 else f"{PYPERF_METRIC}:{bench.get_name()}"
        values = tuple(float(v) for run in bench.get_runs() for v in run.values)
        unit = "s" if bench.get_unit() == "second" else str(bench.get_unit())
        if values:
            samples.append(MetricSamples(name, metric, "pyperf", unit, "wall", values))
    return samples


def calibrate(
    options: CalibrateOptions,
    *,
    progress: TextIO | None = None,
    runner: SideRunner | None = None,
) -> CalibrationResult:
    """Run the A/A calibration (see the module's guarantees) and store it unless told not to.

    ``runner`` replaces the real workload runs (tests); by default each side
    runs the workload's pyperf command with one process.
    """
    stream = sys.stderr if progress is None else progress
    profile = PROFILES.get(options.profile)
    if profile is None:
        raise WorkloadError(
            f"unknown profile {options.profile!r}",
            where="--profile",
            expected="one of " + ", ".join(PROFILES),
        )
    if options.rounds < 2:
        raise WorkloadError(
            f"{options.rounds} rounds", where="--rounds", expected="at least 2 rounds"
        )
    selected = selected_workloads(options.workloads)
    single = _one_process(profile)
    orders = balanced_orders(options.rounds)
    facts = environment.collect(system_show=False)
    tracker = Progress(stream, options.rounds * len(selected) * len(SIDES))
    sides: dict[str, list[MetricSamples]] = {side: [] for side in SIDES}
    skipped: dict[str, str] = {}
    env = {**os.environ, PROFILE_ENV: single.name}
    index = 0
    with tempfile.TemporaryDirectory(prefix="agentbench-calibrate-") as scratch:
        for k, order in enumerate(orders):
            for name in selected:
                for side in order:
                    index += 1
                    if name in skipped:
                        continue
                    workdir = Path(scratch) / f"r{k}-{name}-{side}"
                    workdir.mkdir()
                    try:
                        if runner is None:
                            found = _run_side(name, single, workdir, env, tracker, index)
                        else:
                            found = runner(name, single, workdir, env)
                    except WorkloadSkipped as exc:
                        skipped[name] = exc.line
                        continue
                    sides[side].extend(
                        dataclasses.replace(sample, round=f"r{k}:{side}:{sample.round}")
                        for sample in found
                    )
    compare_options = CompareOptions(
        fdr_q=options.fdr_q,
        threshold=options.threshold,
        thresholds=options.thresholds,
        seed=options.seed,
    )
    rows, _, tests = compare_rounds(
        sample_rounds(sides["A"]), sample_rounds(sides["B"]), compare_options
    )
    created = datetime.now(UTC).isoformat(timespec="seconds")
    calibration_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-cal-{secrets.token_hex(3)}"
    records = tuple(
        CalibrationRow(
            calibration_id=calibration_id,
            fingerprint=facts.fingerprint_digest,
            profile=single.name,
            workload=row.workload,
            metric=row.metric,
            statistic=row.statistic,
            unit=row.unit,
            clock=row.clock,
            rounds=row.rounds,
            noise=math.inf if row.noise is None else row.noise,
            mde=math.inf if row.mde is None else row.mde,
            created=created,
        )
        for row in rows
        if row.verdict is not RowVerdict.ERROR
    )
    stored_in: str | None = None
    if options.store and records:
        store = HistoryStore(options.db)
        store.append_calibration(records)
        stored_in = store.where
    return CalibrationResult(
        calibration_id=calibration_id,
        fingerprint=facts.fingerprint_digest,
        profile=single.name,
        rounds=options.rounds,
        orders=orders,
        rows=rows,
        records=records,
        skipped=tuple(skipped.values()),
        stored_in=stored_in,
        method=(
            f"A/A: {options.rounds} rounds, order AB/BA alternating (ABBA), one process per "
            f"side and round ({single.values} values, {single.warmups} warmup); per-round "
            "ratio B/A of each round's statistic; noise = sd of the log ratios; MDE: normal "
            f"approximation, 80% power, per-test level q/m = {options.fdr_q:g}/{tests}"
        ),
    )


def format_calibration(result: CalibrationResult) -> str:
    """The table ``harness calibrate`` prints: per row, rounds, noise, MDE, rounds needed."""
    header = ("workload", "metric", "stat", "rounds", "noise", "MDE", "rounds for thr", "A/A")
    table: list[Sequence[str]] = [header]
    for row in result.rows:
        noise = "-" if row.noise is None else f"{row.noise:.1%}"
        mde = "-" if row.mde is None else ("inf" if math.isinf(row.mde) else f"{row.mde:.1%}")
        verdict = f"error: {row.error}" if row.error else row.verdict.value
        table.append(
            (
                row.workload,
                row.metric,
                row.statistic,
                str(row.rounds) if row.p_raw is not None else "exact",
                noise,
                mde,
                "-"
                if row.rounds_needed is None
                else f"{row.rounds_needed} (for {row.threshold:.0%})",
                verdict,
            )
        )
    widths = [max(len(cells[i]) for cells in table) for i in range(len(header))]
    flagged = [r for r in result.rows if r.verdict in (RowVerdict.REGRESSION, RowVerdict.FASTER)]
    lines = [
        f"calibration {result.calibration_id} (fingerprint {result.fingerprint}, "
        f"profile {result.profile}, {result.rounds} rounds)"
    ]
    lines.extend(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells)).rstrip() for cells in table
    )
    lines.append("")
    if flagged:
        lines.append(
            f"WARNING: the A/A comparison flagged {len(flagged)} row(s): this machine's noise "
            "is not what the rounds suggest (drift, throttling, another load?)"
        )
    lines.extend(f"skipped: {line}" for line in result.skipped)
    lines.append(
        "noise: sd of one round's log ratio A/A; MDE: smallest change detected with 80% power "
        "with this many rounds (inf: the rank test cannot reach the level with so few rounds); "
        "rounds for thr: rounds needed to detect the threshold"
    )
    lines.append(f"method: {result.method}")
    lines.append(
        f"stored in: {result.stored_in}" if result.stored_in else "not stored (--no-store)"
    )
    return "\n".join(lines)
