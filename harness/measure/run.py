"""``harness run``: measure the workloads, check determinism and targets, write a bundle.

One run, in order:

1. Check the input before spending minutes: profile, workload names, the
   targets file, the planted-regression switches (``AGENTBENCH_INJECT_SLOWDOWN``,
   ``AGENTBENCH_INJECT_CPU``), the ``--otlp-endpoint`` URL, that the output
   directory is writable, that the history store is one this user can write,
   that every shipped trace the selected workloads read exists (the checks are in
   :mod:`harness.measure.preflight`). Then remove the scratch directories that
   SIGKILLed runs left behind (see
   :func:`~harness.measure.workload_process.scratch_dir`).
2. Run each workload's pyperf command (:func:`workloads.registry.command`) as a
   subprocess (:mod:`harness.measure.workload_process`), with
   ``AGENTBENCH_SAMPLES_DIR`` (a fresh directory) and ``AGENTBENCH_PROFILE`` set;
   progress goes to stderr.
3. Replay the shipped traces for the determinism verdict (``harness.measure.replay``).
4. Evaluate the targets of the selected workloads (targets of the others are
   left out, not "missing"; those of a workload that skipped itself are
   "skipped").
5. Write the bundle atomically (:mod:`harness.bundle.files`), then append it to the
   history store (:mod:`harness.store.db`): ``<out>/history.sqlite``, or the store
   ``$AGENTBENCH_DB`` names (a team's PostgreSQL server).

Guarantees: a workload that exits non-zero, leaves no pyperf results or writes
malformed samples stops the run with a :class:`~harness.errors.WorkloadError`
(after its stderr tail is shown), never a silent pass; every bad input is a
:class:`~harness.errors.HarnessError` raised before any workload runs; no bundle
is written for a run that did not finish. :attr:`RunResult.exit_status` is 0
when every evaluated target passed and replay did not diverge, else 1.

A workload that skips itself (an optional dependency group, such as ``peers``,
is not installed) exits with :data:`workloads.registry.SKIP_EXIT_STATUS` after
its one line ``<name>: skipped: <reason>`` on stderr. It is never silently
dropped: the progress output says SKIPPED and shows that line, the manifest
keeps it (``workloads[].skipped``), and each of its targets gets the verdict
``skipped`` (a row of the table), which does not fail the run. That exit status
without the line is a failure like any other; a run whose every workload
skipped itself measured nothing and is a :class:`~harness.errors.WorkloadError`.
"""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from harness.bundle import environment
from harness.bundle.files import (
    Bundle,
    Determinism,
    DeterminismStatus,
    HotPathProfile,
    Manifest,
    WorkloadRun,
    merge_results,
    new_run_id,
    pyperf_samples,
    write_bundle,
)
from harness.bundle.verdicts import (
    Target,
    Unit,
    Verdict,
    format_quantity,
)
from harness.errors import WorkloadError, WorkloadSkipped
from harness.judge.targets import DEFAULT_TARGETS_PATH, load_targets
from harness.judge.verdict import evaluate, measurement_of, skipped_verdict
from harness.measure import replay
from harness.measure.manifest import build_manifest, trace_ids
from harness.measure.preflight import (
    _check_endpoint,
    check_history_store,
    check_switches,
    check_writable,
    chosen_loop,
    loop_label,
)
from harness.measure.profiles import HotPath, profile_hot_paths
from harness.measure.workload_process import (
    PROFILE_ENV,
    Progress,
    clean_stale_scratch,
    instruction_samples,
    read_workload_samples,
    run_workload_command,
    scratch_dir,
    selected_workloads,
)
from harness.store.db import HISTORY_FILE, HistoryStore
from harness.store.location import Location, history_location
from workloads import loops, registry
from workloads.samples import SAMPLES_DIR_ENV, MetricSamples

__all__ = [
    "RunOptions",
    "RunResult",
    "collect_metrics",
    "determinism_check",
    "evaluate_targets",
    "format_table",
    "run",
]


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What ``harness run`` was asked to do (the CLI's flags, validated by :func:`run`)."""

    profile: str = "fast"
    workloads: tuple[str, ...] = ()
    out_dir: Path = Path("reports")
    targets_path: Path = DEFAULT_TARGETS_PATH
    otlp_endpoint: str | None = None
    replay: bool = True
    history: bool = True
    system_show: bool = True
    profile_paths: tuple[str, ...] = tuple(HotPath)
    loop: str | None = None  # the event loop; None: $AGENTBENCH_LOOP, else asyncio


@dataclass(frozen=True, slots=True)
class RunResult:
    """A finished run: its bundle, its manifest, where its history row went."""

    bundle_path: Path
    manifest: Manifest
    history_path: Location | None  # <out>/history.sqlite, or $AGENTBENCH_DB's store
    samples: tuple[MetricSamples, ...] = ()

    @property
    def exit_status(self) -> int:
        """0 when every evaluated target passed (or was skipped) and replay did not diverge."""
        return 0 if self.manifest.passed else 1


def determinism_check(profile: registry.Profile) -> Determinism:
    """Replay the shipped traces under the profile's settings; every verdict in the result."""
    verdicts = replay.check_shipped_traces(profile)
    if not verdicts:
        return Determinism(status=DeterminismStatus.NOT_RUN, reason="no trace to replay")
    results = [verdict.as_json() for verdict in verdicts]
    diverged = [verdict for verdict in verdicts if not verdict.deterministic]
    if diverged:
        return Determinism(
            status=DeterminismStatus.DIVERGED,
            reason=f"{len(diverged)} of {len(verdicts)} replays diverged",
            results=results,
        )
    return Determinism(
        status=DeterminismStatus.DETERMINISTIC,
        reason=f"{len(verdicts)} replays identical",
        results=results,
    )


def collect_metrics(profile: registry.Profile, otlp_endpoint: str | None) -> list[dict[str, Any]]:
    """The OpenTelemetry points of an instrumented pass, as ``MetricPoint.as_json()`` data."""
    return [
        point.as_json() for point in replay.collect_metrics(profile, otlp_endpoint=otlp_endpoint)
    ]


def _run_workload(
    name: str,
    profile: registry.Profile,
    output: Path,
    workdir: Path,
    env: dict[str, str],
    progress: Progress,
    index: int,
) -> float:
    """Run one workload's pyperf command; its wall time in seconds."""
    argv = registry.command(name, profile, output)
    return run_workload_command(argv, name, workdir / name, env, progress, index)


def run(options: RunOptions, *, progress: TextIO | None = None) -> RunResult:
    """Do one run (see the module's steps and guarantees); progress goes to ``progress``."""
    stream = sys.stderr if progress is None else progress
    profile = registry.PROFILES.get(options.profile)
    if profile is None:
        raise WorkloadError(
            f"unknown profile {options.profile!r}",
            where="--profile",
            expected="one of " + ", ".join(registry.PROFILES),
        )
    selected = selected_workloads(options.workloads)
    targets = load_targets(options.targets_path, registry.WORKLOADS)
    check_switches()
    if options.otlp_endpoint is not None:
        _check_endpoint(options.otlp_endpoint)
    check_writable(options.out_dir)
    if options.history:
        check_history_store(history_location(options.out_dir / HISTORY_FILE))
    traces = trace_ids(selected)
    event_loop = chosen_loop(options.loop)
    env_facts = environment.collect(
        system_show=options.system_show, event_loop=loop_label(event_loop)
    )
    started = datetime.now(UTC)
    run_id = new_run_id(env_facts.git.short_sha, started)
    tracker = Progress(stream, len(selected))
    clean_stale_scratch()

    with scratch_dir(run_id) as workdir:
        samples_dir = workdir / "samples"
        samples_dir.mkdir()
        child_env = {
            **os.environ,
            SAMPLES_DIR_ENV: str(samples_dir),
            PROFILE_ENV: profile.name,
            loops.LOOP_ENV: event_loop.value,
        }
        if options.otlp_endpoint:
            child_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = options.otlp_endpoint
        outputs: list[tuple[str, Path]] = []
        elapsed: dict[str, float] = {}
        skipped: dict[str, str] = {}
        counted: tuple[MetricSamples, ...] = ()
        for index, name in enumerate(selected, start=1):
            output = workdir / f"{name}.pyperf.json"
            if name == registry.INSTRUCTIONS:
                try:
                    counted, elapsed[name] = instruction_samples(child_env, tracker, index)
                except WorkloadSkipped as skip:
                    elapsed[name], skipped[name] = skip.elapsed_s, skip.line
                    stream.write(skip.line + "\n")
                continue
            try:
                elapsed[name] = _run_workload(
                    name, profile, output, workdir, child_env, tracker, index
                )
            except WorkloadSkipped as skip:
                elapsed[name], skipped[name] = skip.elapsed_s, skip.line
                continue
            outputs.append((name, output))
        if not outputs:
            raise WorkloadError(
                "nothing was measured by pyperf: every selected workload skipped itself "
                "(its line above says why), or only the instruction clock was selected",
                where="--workload",
                expected="at least one pyperf workload that can run here",
            )
        suite, benchmarks = merge_results(outputs)
        samples = (*read_workload_samples(samples_dir), *counted)

    if options.replay:
        stream.write("replaying the shipped traces for the determinism check ...\n")
        determinism = determinism_check(profile)
    else:
        determinism = Determinism(status=DeterminismStatus.NOT_RUN, reason="--no-replay")
    metrics = collect_metrics(profile, options.otlp_endpoint)
    profiles: tuple[HotPathProfile, ...] = ()
    if options.profile_paths:
        stream.write("profiling the hot paths: " + ", ".join(options.profile_paths) + " ...\n")
        profiles = profile_hot_paths([HotPath(path) for path in options.profile_paths])

    workload_runs = [
        WorkloadRun(
            name=name,
            clock=registry.WORKLOADS[name].clock,
            benchmarks=benchmarks.get(name, []),
            samples=sum(1 for s in samples if s.workload == name),
            elapsed_s=elapsed[name],
            traces=list(registry.WORKLOADS[name].traces),
            skipped=skipped.get(name, ""),
        )
        for name in selected
    ]
    verdicts = evaluate_targets(targets, workload_runs, samples, suite)
    manifest = build_manifest(
        run_id=run_id,
        profile=profile,
        workloads=workload_runs,
        started=started,
        finished=datetime.now(UTC),
        environment=env_facts,
        traces=traces,
        targets_path=options.targets_path,
        verdicts=verdicts,
        determinism=determinism,
        otlp_endpoint=options.otlp_endpoint,
    )
    bundle_path = write_bundle(options.out_dir, manifest, suite, samples, metrics, profiles)
    history_path: Location | None = None
    if options.history:
        history_path = history_location(options.out_dir / HISTORY_FILE)
        bundle = Bundle(bundle_path, manifest, suite, tuple(samples), tuple(metrics), profiles)
        HistoryStore(history_path).append_run(bundle)
    return RunResult(
        bundle_path=bundle_path,
        manifest=manifest,
        history_path=history_path,
        samples=tuple(samples),
    )


def evaluate_targets(
    targets: Sequence[Target],
    workload_runs: Sequence[WorkloadRun],
    samples: Sequence[MetricSamples],
    suite: Any,
) -> list[Verdict]:
    """The verdict of each target whose workload ran (the others are left out, not missing).

    ``samples`` are the workloads' own samples; the pyperf values of ``suite`` are
    added as metric ``pyperf``. A target of a workload that skipped itself is
    :func:`~harness.judge.verdict.skipped_verdict`.
    """
    runs = {workload.name: workload for workload in workload_runs}
    measured = (*samples, *pyperf_samples(suite, workload_runs))
    return [
        skipped_verdict(target) if runs[target.workload].skipped else _verdict(target, measured)
        for target in targets
        if target.workload in runs
    ]


def _verdict(target: Target, samples: Sequence[MetricSamples]) -> Verdict:
    measurement = measurement_of(target, samples)
    return evaluate(target, measurement.values, rounds=measurement.rounds)


def format_table(verdicts: Sequence[Verdict], determinism: Determinism) -> str:
    """The target table ``harness run`` prints, and the determinism line under it."""
    header = ("target", "value", "95% CI", "bound", "margin", "result", "clock", "n")
    rows: list[tuple[str, ...]] = [header]
    for verdict in verdicts:
        target = verdict.target
        spread = (
            "-"
            if verdict.spread is None
            else f"[{format_quantity(verdict.spread[0], target.unit)}, "
            f"{format_quantity(verdict.spread[1], target.unit)}]"
        )
        rows.append(
            (
                target.name,
                format_quantity(verdict.value, target.unit),
                spread,
                ("<= " if target.direction.value == "max" else ">= ")
                + format_quantity(target.bound, target.unit),
                "-" if verdict.margin is None else f"{verdict.margin:+.1%}",
                verdict.outcome.value.upper(),
                target.clock.value,
                str(verdict.n),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    ]
    lines.append("")
    lines.append(
        "spread: 95% bootstrap CI of the statistic, resampling rounds (values when < 2 rounds); "
        "margin: relative to the bound, + = passing side"
    )
    determinism_line = f"determinism: {determinism.status.value}"
    if determinism.reason:
        determinism_line += f" ({determinism.reason})"
    lines.append(determinism_line)
    return "\n".join(lines)


def format_figures(samples: Iterable[MetricSamples]) -> str:
    """Every recorded metric's median (and p95 when it has many values), per workload.

    The figures behind the targets and beside them (per-run overheads, legacy and
    pooled makespans, peers' ratios), one line a metric, in recording order.
    """
    values: dict[tuple[str, str], list[float]] = {}
    units: dict[tuple[str, str], tuple[str, str]] = {}
    for sample in samples:
        key = (sample.workload, sample.metric)
        values.setdefault(key, []).extend(sample.values)
        units[key] = (sample.unit, sample.clock)
    lines = ["figures (median over every round; p95 where a metric has per-operation samples):"]
    workload = ""
    for (name, metric), numbers in values.items():
        if name != workload:
            workload = name
            lines.append(f"  {name}")
        unit_text, clock = units[(name, metric)]
        unit = Unit(unit_text) if unit_text in {u.value for u in Unit} else None
        text = f"median {_shown(statistics.median(numbers), unit)}"
        if len(numbers) >= 20:
            text += f", p95 {_shown(statistics.quantiles(numbers, n=20)[-1], unit)}"
        lines.append(f"    {metric:42} {text}  ({clock}, n={len(numbers)})")
    return "\n".join(lines)


def _shown(value: float, unit: Unit | None) -> str:
    return format_quantity(value, unit) if unit is not None else f"{value:.4g}"
