"""``harness run``: measure the workloads, check determinism and targets, write a bundle.

One run, in order:

1. Check the input before spending minutes: profile, workload names, the
   targets file, the planted-regression switches (``AGENTBENCH_INJECT_SLOWDOWN``,
   ``AGENTBENCH_INJECT_CPU``), the ``--otlp-endpoint`` URL, that the output
   directory is writable, that the history store is one this user can write,
   that every shipped trace the selected workloads read exists. Then remove the
   scratch directories that SIGKILLed runs left behind (see :func:`scratch_dir`).
2. Run each workload's pyperf command (:func:`workloads.registry.command`) as a
   subprocess, with ``AGENTBENCH_SAMPLES_DIR`` (a fresh directory) and
   ``AGENTBENCH_PROFILE`` set; progress goes to stderr.
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

import fcntl
import os
import re
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

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
from harness.bundle.paths import file_kind
from harness.bundle.verdicts import (
    Target,
    Unit,
    Verdict,
    format_quantity,
)
from harness.errors import EnvironmentRefused, WorkloadError, WorkloadSkipped
from harness.judge.targets import (
    DEFAULT_TARGETS_PATH,
    evaluate,
    load_targets,
    measurement_of,
    skipped_verdict,
)
from harness.measure import replay
from harness.measure.manifest import build_manifest, trace_ids
from harness.measure.profiles import HotPath, profile_hot_paths
from harness.store.db import HISTORY_FILE, HistoryStore
from harness.store.db import SCHEMA_VERSION as HISTORY_SCHEMA_VERSION
from harness.store.location import Location, history_location, is_server
from reference_impl.errors import ConfigError
from reference_impl.pool import INJECT_CPU_ENV, injected_cpu
from workloads import loops, registry
from workloads.drivers import INJECT_SLOWDOWN_ENV, injected_slowdown
from workloads.samples import SAMPLES_DIR_ENV, MetricSamples, read_samples

__all__ = [
    "PROFILE_ENV",
    "Progress",
    "RunOptions",
    "RunResult",
    "collect_metrics",
    "determinism_check",
    "evaluate_targets",
    "format_table",
    "read_workload_samples",
    "run",
    "run_workload_command",
    "selected_workloads",
]

PROFILE_ENV = "AGENTBENCH_PROFILE"
STDERR_TAIL_LINES = 20
# What a workload that skips itself writes last (see workloads.registry.skip_line).
_SKIP_LINE = re.compile(r"^[A-Za-z0-9_.-]+: skipped: \S")


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


@dataclass(slots=True)
class Progress:
    """Progress lines on ``stream``: ``[index/total] name ... text, N s elapsed``.

    The elapsed time comes from ``clock`` (injectable); on a terminal the running
    line is redrawn in place, elsewhere every line is final.
    """

    stream: TextIO
    total: int
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def start(self, index: int, name: str) -> None:
        """The line announcing a workload (on a terminal it is redrawn until it ends)."""
        self._write(index, name, "running", final=not self.stream.isatty())

    def tick(self, index: int, name: str) -> None:
        """Redraw the running line with the time elapsed (terminals only)."""
        if self.stream.isatty():
            self._write(index, name, "running", final=False)

    def end(self, index: int, name: str, text: str) -> None:
        """The line saying how a workload ended."""
        self._write(index, name, text, final=True)

    def write(self, text: str) -> None:
        """One line of its own (a note between progress lines), with the time elapsed."""
        prefix = "\r\x1b[K" if self.stream.isatty() else ""
        self.stream.write(f"{prefix}{text}, {self.elapsed():.1f} s elapsed\n")
        self.stream.flush()

    def _write(self, index: int, name: str, text: str, *, final: bool) -> None:
        message = f"[{index}/{self.total}] {name} ... {text}, {self.elapsed():.1f} s elapsed"
        prefix = "\r\x1b[K" if self.stream.isatty() else ""
        self.stream.write(prefix + message + ("\n" if final else ""))
        self.stream.flush()


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


def _check_endpoint(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EnvironmentRefused(
            f"{url!r} is not an OTLP endpoint",
            where="--otlp-endpoint",
            expected="an http:// or https:// URL with a host, e.g. http://127.0.0.1:4318",
        )


def check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` if needed and prove a file can be made there (else exit 2)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise EnvironmentRefused(
            f"cannot write to the output directory ({exc.strerror or exc})",
            where=str(out_dir),
            expected="a writable directory (--out)",
        ) from None


def check_switches() -> None:
    """The planted-regression switches, checked before anything is measured.

    ``AGENTBENCH_INJECT_SLOWDOWN`` and ``AGENTBENCH_INJECT_CPU`` are read deep
    inside the workloads and the replay; a bad value found there would cost a
    whole run first. :class:`~harness.errors.EnvironmentRefused` naming the variable.
    """
    for variable, read in (
        (INJECT_SLOWDOWN_ENV, injected_slowdown),
        (INJECT_CPU_ENV, injected_cpu),
    ):
        try:
            read()
        except (ValueError, ConfigError):
            raise EnvironmentRefused(
                repr(os.environ.get(variable, "")),
                where=variable,
                expected="unset, or a fraction in [0, 10) (0.1 = 10 %)",
            ) from None


def chosen_loop(asked: str | None) -> loops.EventLoop:
    """The event loop of this run: ``--loop``, else ``$AGENTBENCH_LOOP``, else asyncio.

    A bad ``$AGENTBENCH_LOOP`` is refused before anything is measured
    (:class:`~harness.errors.EnvironmentRefused` naming the variable).
    """
    if asked is not None:
        return loops.EventLoop(asked)
    try:
        return loops.chosen()
    except loops.SettingError as exc:
        raise EnvironmentRefused(
            str(exc), where=loops.LOOP_ENV, expected="unset, asyncio or uvloop"
        ) from None


def loop_label(loop: loops.EventLoop) -> str:
    """The loop as the fingerprint records it: ``asyncio``, or ``uvloop <version>``."""
    if loop is loops.EventLoop.ASYNCIO or loops.missing(loop):
        return loop.value  # a missing uvloop: every wall workload is SKIPPED, saying why
    from importlib.metadata import version

    return f"{loop.value} {version('uvloop')}"


def check_history_store(location: Location) -> None:
    """The history store can take this run's row: absent (made on append) or a writable store.

    Checked before anything is measured: a store that is not one (another file, a
    directory), one this user cannot write, or one of a newer schema would refuse
    the run only at its very end; so would a server that cannot be reached or
    refuses the credentials. Read through :class:`HistoryStore` only.
    """
    if is_server(location):
        HistoryStore(location).stored_version()  # connects; refuses a newer schema
        return
    path = Path(location)
    expected = "a history.sqlite of `harness run` that this user can write (or --no-history)"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return  # created on append, in the output directory already proven writable
    except OSError as exc:
        raise EnvironmentRefused(
            f"cannot inspect the history store ({exc.strerror or exc})",
            where=str(path),
            expected=expected,
        ) from None
    if not stat.S_ISREG(mode):
        raise EnvironmentRefused(
            f"{file_kind(mode)}, not a history store", where=str(path), expected=expected
        )
    if not os.access(path, os.R_OK | os.W_OK):
        raise EnvironmentRefused(
            "the history store is not writable", where=str(path), expected=expected
        )
    version = HistoryStore(path).schema_version()
    if version is not None and version > HISTORY_SCHEMA_VERSION:
        raise EnvironmentRefused(
            f"history store of schema version {version}",
            where=str(path),
            expected=f"schema version {HISTORY_SCHEMA_VERSION} or older (a newer harness wrote it)",
        )


# Scratch directories: /tmp/agentbench-<run-id>-<random>, one per run, removed at its
# end. A SIGKILLed run cannot remove its own, so each run holds an flock on a file
# inside its directory while it lives, and every run removes, at its start, the
# unlocked ones older than STALE_SCRATCH_AGE_S (never one a live run holds).
SCRATCH_PREFIX = "agentbench-"
SCRATCH_LOCK = ".lock"
STALE_SCRATCH_AGE_S = 6 * 3600.0
_SCRATCH_NAME = re.compile(r"^agentbench-\d{8}T\d{6}Z-[0-9A-Za-z]+-[0-9a-f]{6}-")


@contextmanager
def scratch_dir(run_id: str, root: Path | None = None) -> Iterator[Path]:
    """A fresh scratch directory for run ``run_id``, locked while in use, then removed."""
    path = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{run_id}-", dir=root))
    try:
        with (path / SCRATCH_LOCK).open("wb") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def clean_stale_scratch(
    root: Path | None = None, *, max_age_s: float = STALE_SCRATCH_AGE_S, now: float | None = None
) -> list[Path]:
    """Remove the run scratch directories of dead runs; the ones removed.

    Only directories named like a run's (not a symlink, owned by this user) whose
    modification time is older than ``max_age_s`` and whose lock no live process
    holds (or that have none: a run of a harness before the locks). The lock is
    held while the directory is removed, so a run can never lose its own.
    """
    root = Path(tempfile.gettempdir()) if root is None else root
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        if not _SCRATCH_NAME.match(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if (
            not stat.S_ISDIR(info.st_mode)
            or info.st_uid != os.getuid()
            or now - info.st_mtime < max_age_s
        ):
            continue
        path = Path(entry.path)
        try:
            fd = os.open(path / SCRATCH_LOCK, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            fd = None
        except OSError:
            continue
        try:
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live run holds it
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        finally:
            if fd is not None:
                os.close(fd)
    return removed


def selected_workloads(names: Sequence[str]) -> list[str]:
    """The workloads ``names`` asks for (all when empty), deduplicated, in order.

    Raises :class:`~harness.errors.WorkloadError` naming the first unknown one.
    """
    if not names:
        return list(registry.WORKLOADS)
    unknown = [name for name in names if name not in registry.WORKLOADS]
    if unknown:
        raise WorkloadError(
            f"unknown workload {unknown[0]!r}",
            where="--workload",
            expected="one of " + ", ".join(registry.WORKLOADS),
        )
    return list(dict.fromkeys(names))


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


def instruction_samples(
    env: Mapping[str, str], progress: Progress, index: int, round_id: str = "1-1"
) -> tuple[tuple[MetricSamples, ...], float]:
    """The instruction clock's figures as samples (one value a metric), and the wall time.

    Without valgrind (or setarch) the pseudo-workload skips itself, with the line that
    says how to install it (:class:`~harness.errors.WorkloadSkipped`).
    """
    from workloads import instructions

    name = registry.INSTRUCTIONS
    started = time.monotonic()
    progress.start(index, name)
    try:
        instructions.require_tools()
    except instructions.InstructionsUnavailable as exc:
        line = registry.skip_line(name, str(exc))
        progress.end(index, name, "SKIPPED")
        raise WorkloadSkipped(line, elapsed_s=time.monotonic() - started) from None
    switches = {k: v for k, v in env.items() if k.startswith("AGENTBENCH_INJECT")}
    figures = instructions.measure_all(env=switches)
    samples = tuple(
        MetricSamples(
            name, figure.metric, round_id, instructions.UNIT, "instructions", (figure.per_op,)
        )
        for figure in figures
    )
    elapsed = time.monotonic() - started
    progress.end(index, name, f"done, {len(samples)} paths counted")
    return samples, elapsed


def run_workload_command(
    argv: Sequence[str],
    name: str,
    logs: Path,
    env: Mapping[str, str],
    progress: Progress,
    index: int,
    *,
    cwd: Path | None = None,
) -> float:
    """Run one workload process ``argv`` to its end; its wall time in seconds.

    ``name`` labels the progress lines; the process's stdout and stderr go to
    ``<logs>.stdout`` and ``<logs>.stderr``; it runs in ``cwd`` (default: ours).
    Guarantees: the process is killed and reaped if this call is interrupted
    (KeyboardInterrupt included); a non-zero exit shows the stderr tail on the
    progress stream, then raises :class:`~harness.errors.WorkloadError`, as does a
    process that cannot start; a workload that skipped itself (exit status
    ``SKIP_EXIT_STATUS`` and its skip line) is shown as SKIPPED with that line, then
    raises :class:`~harness.errors.WorkloadSkipped`.
    """
    argv = list(argv)
    stderr_path = logs.with_name(logs.name + ".stderr")
    stdout_path = logs.with_name(logs.name + ".stdout")
    started = progress.clock()
    progress.start(index, name)
    with stderr_path.open("wb") as stderr, stdout_path.open("wb") as stdout:
        try:
            process = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env=dict(env), cwd=cwd)
        except OSError as exc:
            raise WorkloadError(
                f"workload {name} could not start: {exc}", where=" ".join(argv)
            ) from None
        try:
            while True:
                try:
                    returncode = process.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    progress.tick(index, name)
        except BaseException:
            process.kill()
            process.wait()
            raise
    elapsed = progress.clock() - started
    if returncode == registry.SKIP_EXIT_STATUS and (skip := _skip_line(stderr_path)):
        progress.end(index, name, "SKIPPED")
        progress.stream.write(f"    {skip}\n")
        raise WorkloadSkipped(skip, elapsed_s=elapsed, where=" ".join(argv))
    if returncode != 0:
        tail = stderr_path.read_text(encoding="utf-8", errors="replace").splitlines()
        progress.end(index, name, f"FAILED (exit status {returncode})")
        for line in tail[-STDERR_TAIL_LINES:]:
            progress.stream.write(f"    {line}\n")
        raise WorkloadError(
            f"workload {name} exited with status {returncode} (its stderr tail is above)",
            where=" ".join(argv),
            expected="exit status 0",
        )
    progress.end(index, name, f"done in {elapsed:.1f} s")
    return elapsed


def _skip_line(stderr_path: Path) -> str:
    """The last ``<name>: skipped: <reason>`` line of a workload's stderr, or ""."""
    lines = stderr_path.read_text(encoding="utf-8", errors="replace").splitlines()
    return next((line for line in reversed(lines) if _SKIP_LINE.match(line)), "")


def read_workload_samples(directory: Path) -> tuple[MetricSamples, ...]:
    """Every sample the workload processes wrote in ``directory``.

    A malformed line raises :class:`~harness.errors.WorkloadError` naming the directory.
    """
    try:
        return tuple(read_samples(directory))
    except (ValueError, KeyError, TypeError) as exc:
        raise WorkloadError(
            f"malformed sample line: {exc!r}",
            where=str(directory),
            expected="JSON lines written by workloads.samples.SampleSink",
        ) from None


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
    :func:`~harness.judge.targets.skipped_verdict`.
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
