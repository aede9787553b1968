"""Running workload processes: the library ``harness run``, ``interleave`` and ``calibrate`` share.

A workload's command runs as a subprocess (:func:`run_workload_command`) while a
:class:`Progress` line counts the time; its samples are read back with
:func:`read_workload_samples`. A run works in a scratch directory of its own
(:func:`scratch_dir`), locked while in use, so that a later run can remove the ones
SIGKILLed runs left behind (:func:`clean_stale_scratch`).
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from harness.errors import WorkloadError, WorkloadSkipped
from workloads import registry
from workloads.samples import MetricSamples, read_samples

__all__ = [
    "PROFILE_ENV",
    "SCRATCH_LOCK",
    "SCRATCH_PREFIX",
    "STALE_SCRATCH_AGE_S",
    "STDERR_TAIL_LINES",
    "Progress",
    "clean_stale_scratch",
    "instruction_samples",
    "read_workload_samples",
    "run_workload_command",
    "scratch_dir",
    "selected_workloads",
]

PROFILE_ENV = "AGENTBENCH_PROFILE"
STDERR_TAIL_LINES = 20
# What a workload that skips itself writes last (see workloads.registry.skip_line).
_SKIP_LINE = re.compile(r"^[A-Za-z0-9_.-]+: skipped: \S")


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
