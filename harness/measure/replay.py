"""Deterministic replay: run a trace under many settings, name the first diverging event.

For each setting (mode x concurrency x run, each run with its own seeded timing
jitter) the trace's inputs are run on the virtual clock and the committed
sequence, event and evidence digests are compared with the footer. When a
setting differs, the canonical run (legacy, concurrency 1, no jitter) and the
setting's run are compared event by event through short per-event digests, and
both runs are repeated to capture the first differing event in full: its index,
the expected and the actual event, and the command line that reproduces it.

Python salts ``hash()`` per process (``PYTHONHASHSEED``): an order that leans on
it is the same in every run of one process, and differs only between processes.
So :func:`replay_trace` can deal the settings to child processes of different
hash seeds (``python -m harness.measure.replay`` serves them), each verdict
carries its hash seed, and the reproduce line sets it. When the canonical run
itself no longer reproduces the footer (which holds digests only), the canonical
runs under other hash seeds are compared event by event to still name the first
diverging event.

Why one module: the replay (everything down to :func:`hash_seed_divergence`) is one
computation over private state: the places, jobs and cached canonical runs of ``_Replay``,
and the child protocol, whose two sides (``serve`` and ``_Child``) must decode the same
structs and run the same ``_run``. A worker module of its own would import those private helpers.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec

from harness.errors import HarnessError, TraceError
from reference_impl import virtual_time
from reference_impl.mode import Mode
from reference_impl.telemetry import Exporter, MetricPoint, Telemetry, TelemetryConfig
from workloads.drivers import CANONICAL, PoolFactory, Setting, TraceOutcome, run_trace_records
from workloads.registry import REPLAY_CHECKS, REPLAY_JITTER, trace_path
from workloads.trace import Footer, TraceFormatError, TraceReader, read_header, trace_id

__all__ = [
    "DEFAULT_HASH_SEEDS",
    "HASH_SEED_ENV",
    "MAX_HASH_SEED",
    "Divergence",
    "ReplayReport",
    "ReplayVerdict",
    "SecondRecording",
    "check_shipped_traces",
    "collect_metrics",
    "hash_seed_divergence",
    "own_hash_seed",
    "replay_trace",
    "serve",
    "settings_matrix",
]

HASH_SEED_ENV = "PYTHONHASHSEED"
# The hash seeds of the child processes a replay deals its settings to by default.
DEFAULT_HASH_SEEDS = (1, 2)
MAX_HASH_SEED = 2**32 - 1  # the largest PYTHONHASHSEED Python accepts


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first event where a setting's run differs from the expected one."""

    index: int
    expected: Mapping[str, Any] | None
    actual: Mapping[str, Any] | None
    field: str

    def describe(self) -> str:
        """Readable, several lines: index, expected event, actual event."""
        expected = json.dumps(self.expected, sort_keys=True) if self.expected else "(no event)"
        actual = json.dumps(self.actual, sort_keys=True) if self.actual else "(no event)"
        return (
            f"first diverging event: #{self.index} ({self.field})\n"
            f"  expected: {expected}\n"
            f"  actual:   {actual}"
        )


@dataclass(frozen=True, slots=True)
class ReplayVerdict:
    """One setting's result."""

    trace: str
    setting: Setting
    deterministic: bool
    events: int
    makespan_s: float
    divergence: Divergence | None = None
    hash_seed: int | None = None  # the PYTHONHASHSEED it ran under; None: random

    def reproduce(self) -> str:
        """The command line that runs this setting again, under the same hash seed."""
        command = f"harness replay {self.trace} {self.setting.label()} --runs 1"
        if self.hash_seed is None:
            return command + "  (this process's hash seed was random)"
        return f"{HASH_SEED_ENV}={self.hash_seed} {command}"

    def as_json(self) -> dict[str, Any]:
        """Plain JSON data (for the bundle's manifest)."""
        data: dict[str, Any] = {
            "trace": self.trace,
            "mode": self.setting.mode.value,
            "concurrency": self.setting.concurrency,
            "jitter": self.setting.jitter,
            "seed": self.setting.seed,
            "deterministic": self.deterministic,
            "events": self.events,
            "makespan_s": self.makespan_s,
            "hash_seed": self.hash_seed,
        }
        if self.divergence is not None:
            data["divergence"] = {
                "index": self.divergence.index,
                "field": self.divergence.field,
                "expected": self.divergence.expected,
                "actual": self.divergence.actual,
            }
        return data


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """Every setting's verdict for one trace."""

    trace: Path
    trace_id: str
    verdicts: tuple[ReplayVerdict, ...]

    @property
    def deterministic(self) -> bool:
        """True when every setting reproduced the footer."""
        return all(v.deterministic for v in self.verdicts)


def settings_matrix(
    modes: Sequence[Mode], concurrencies: Sequence[int], jitter: float, runs: int, seed: int
) -> list[Setting]:
    """Every combination; run *r* of each uses seed ``seed + r`` (so one is re-run exactly)."""
    return [
        Setting(mode, concurrency, jitter, seed + run)
        for mode, concurrency, run in itertools.product(modes, concurrencies, range(runs))
    ]


@dataclass(frozen=True, slots=True)
class _Job:
    """One run asked of a place: a setting, and the index of the event to capture in full."""

    setting: Setting
    capture_index: int | None = None


@dataclass(frozen=True, slots=True)
class _Place:
    """Where runs happen: this process, or a child process under ``PYTHONHASHSEED=hash_seed``.

    ``hash_seed`` None: this process, whose seed is random (``PYTHONHASHSEED`` unset).
    """

    hash_seed: int | None
    child: bool

    def label(self) -> str:
        if self.hash_seed is None:
            return "this process (random hash seed)"
        return f"PYTHONHASHSEED={self.hash_seed}"


def _startup_hash_seed() -> int | None:
    text = os.environ.get(HASH_SEED_ENV, "").strip()
    return int(text) if text.isascii() and text.isdigit() else None


# The hash seed this process started with, when PYTHONHASHSEED fixed it.
_OWN_HASH_SEED = _startup_hash_seed()


def own_hash_seed() -> int | None:
    """This process's hash seed when ``PYTHONHASHSEED`` fixed it at startup, else None."""
    return _OWN_HASH_SEED


def _place(hash_seed: int | None) -> _Place:
    return _Place(hash_seed, child=hash_seed is not None and hash_seed != _OWN_HASH_SEED)


def _run(
    path: Path,
    kind: str,
    setting: Setting,
    *,
    capture_index: int | None = None,
    pool_factory: PoolFactory | None = None,
) -> tuple[TraceOutcome, Footer]:
    reader = TraceReader(path)
    driver = run_trace_records(kind)
    kwargs: dict[str, Any] = {"capture_index": capture_index}
    if pool_factory is not None:
        kwargs["pool_factory"] = pool_factory
    outcome = virtual_time.run(driver(iter(reader), setting, **kwargs))
    assert reader.footer is not None  # the reader raised otherwise
    return outcome, reader.footer


def _mismatch(outcome: TraceOutcome, footer: Footer) -> str | None:
    for name in ("committed_digest", "events_digest", "evidence_digest"):
        if getattr(outcome, name) != getattr(footer, name):
            return name
    if dict(outcome.counts) != dict(footer.counts):
        return "counts"
    return None


def _first_index(expected: TraceOutcome, actual: TraceOutcome) -> int:
    """The index of the first event whose short digests differ (or the shorter run's length)."""
    shorter = min(expected.events, actual.events)
    return next(
        (i for i in range(shorter) if expected.event_digest(i) != actual.event_digest(i)),
        shorter,
    )


# -- Child processes under another hash seed -------------------------------------------
# Protocol of `python -m harness.measure.replay`: one _Request (JSON) on stdin, one
# reply a line on stdout (a _Result per job, in order, or a _Failure that ends it).


class _JobSpec(msgspec.Struct, frozen=True, kw_only=True):
    mode: str
    concurrency: int
    jitter: float
    seed: int
    time_scale: float
    capture_index: int | None = None

    @classmethod
    def of(cls, job: _Job) -> _JobSpec:
        s = job.setting
        return cls(
            mode=s.mode.value,
            concurrency=s.concurrency,
            jitter=s.jitter,
            seed=s.seed,
            time_scale=s.time_scale,
            capture_index=job.capture_index,
        )

    def setting(self) -> Setting:
        return Setting(Mode(self.mode), self.concurrency, self.jitter, self.seed, self.time_scale)


class _Request(msgspec.Struct, frozen=True, kw_only=True):
    trace: str
    kind: str
    jobs: list[_JobSpec]


class _Result(msgspec.Struct, frozen=True, kw_only=True, tag="result"):
    committed_digest: str
    events_digest: str
    evidence_digest: str
    counts: dict[str, int]
    event_digests: str  # hex
    captured_event: dict[str, Any] | None
    makespan_s: float
    footer: Footer

    def outcome(self) -> TraceOutcome:
        return TraceOutcome(
            self.committed_digest,
            self.events_digest,
            self.evidence_digest,
            self.counts,
            bytes.fromhex(self.event_digests),
            self.captured_event,
            self.makespan_s,
            array("d"),
        )


class _Failure(msgspec.Struct, frozen=True, kw_only=True, tag="failure"):
    message: str
    where: str


_Reply = _Result | _Failure
_STDERR_TAIL_CHARS = 2000
_WORKER_MODULE = "harness.measure.replay"
_WORKER_COMMAND = f"python -m {_WORKER_MODULE}"


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """A child's side: run the jobs of one request, one reply a line (see the protocol)."""
    request = msgspec.json.decode(stdin.read(), type=_Request)
    for spec in request.jobs:
        reply: _Reply
        try:
            outcome, footer = _run(
                Path(request.trace),
                request.kind,
                spec.setting(),
                capture_index=spec.capture_index,
            )
        except TraceFormatError as exc:
            reply = _Failure(message=exc.message, where=trace_where(exc))
        except (OSError, ValueError, TypeError) as exc:
            reply = _Failure(message=str(exc), where=request.trace)
        else:
            reply = _Result(
                committed_digest=outcome.committed_digest,
                events_digest=outcome.events_digest,
                evidence_digest=outcome.evidence_digest,
                counts=dict(outcome.counts),
                event_digests=outcome.event_digests.hex(),
                captured_event=(
                    dict(outcome.captured_event) if outcome.captured_event is not None else None
                ),
                makespan_s=outcome.makespan_s,
                footer=footer,
            )
        stdout.write(msgspec.json.encode(reply) + b"\n")
        stdout.flush()
        if isinstance(reply, _Failure):
            break
    return 0


class _Local:
    """Jobs run in this process, one at a time as they are iterated."""

    def __init__(self, replay: _Replay, jobs: Sequence[_Job]) -> None:
        self._runs = (
            _run(
                replay.path,
                replay.kind,
                job.setting,
                capture_index=job.capture_index,
                pool_factory=replay.pool_factory,
            )
            for job in jobs
        )

    def __iter__(self) -> Iterator[tuple[TraceOutcome, Footer]]:
        return self._runs

    def close(self) -> None:
        self._runs.close()


class _Child:
    """One child process running jobs under its hash seed; killed and reaped on close."""

    def __init__(self, path: Path, kind: str, place: _Place, jobs: Sequence[_Job]) -> None:
        assert place.hash_seed is not None
        self.place = place
        self.jobs = len(jobs)
        # Closed in close(); a file, not a pipe, so a chatty child never blocks on it.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        env = {**os.environ, HASH_SEED_ENV: str(place.hash_seed)}
        request = _Request(trace=str(path), kind=kind, jobs=[_JobSpec.of(job) for job in jobs])
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", _WORKER_MODULE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=env,
            )
        except OSError as exc:
            self._stderr.close()
            raise HarnessError(
                f"cannot start a replay process under {place.label()}: {exc.strerror or exc}",
                where=_WORKER_COMMAND,
            ) from None
        assert self._process.stdin is not None
        try:
            with self._process.stdin as stdin:
                stdin.write(msgspec.json.encode(request))
        except BrokenPipeError:
            pass  # the child died at once: iterating reports its exit status and stderr
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[tuple[TraceOutcome, Footer]]:
        """Each job's outcome and the trace's footer, in order; a bad trace raises TraceError."""
        assert self._process.stdout is not None
        received = 0
        for line in self._process.stdout:
            try:
                reply = msgspec.json.decode(line, type=_Reply)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise HarnessError(
                    f"the replay process under {self.place.label()} replied garbage: {exc}",
                    where=_WORKER_COMMAND,
                ) from None
            if isinstance(reply, _Failure):
                raise TraceError(reply.message, where=reply.where)
            received += 1
            yield reply.outcome(), reply.footer
        status = self._process.wait()
        if received != self.jobs or status != 0:
            self._stderr.seek(0)
            tail = self._stderr.read().decode("utf-8", "replace").strip()[-_STDERR_TAIL_CHARS:]
            last = tail.splitlines()[-1] if tail else "no output"
            raise HarnessError(
                f"the replay process under {self.place.label()} stopped after {received} of "
                f"{self.jobs} runs with exit status {status}: {last}",
                where=_WORKER_COMMAND,
            )

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._stderr.close()


@dataclass
class _Replay:
    """One trace's replay across places: runs, the footer, the canonical run of each place."""

    path: Path
    kind: str
    places: tuple[_Place, ...]
    pool_factory: PoolFactory | None = None
    footer: Footer | None = None
    _canonical: dict[_Place, TraceOutcome] = field(default_factory=dict)

    def start(self, place: _Place, jobs: Sequence[_Job]) -> _Local | _Child:
        """The outcomes of ``jobs`` at ``place``: a child starts now, this process runs lazily.

        The caller closes what this returns (a child is killed and reaped then).
        """
        return _Child(self.path, self.kind, place, jobs) if place.child else _Local(self, jobs)

    def run(self, work: Mapping[_Place, Sequence[_Job]]) -> dict[_Place, list[TraceOutcome]]:
        """The outcomes of every place's jobs, the children running side by side."""
        streams: dict[_Place, _Local | _Child] = {}
        try:
            for place, jobs in sorted(work.items(), key=lambda item: not item[0].child):
                streams[place] = self.start(place, jobs)
            results: dict[_Place, list[TraceOutcome]] = {}
            for place, stream in sorted(streams.items(), key=lambda item: item[0].child):
                results[place] = []
                for outcome, footer in stream:
                    self.footer = self.footer or footer
                    results[place].append(outcome)
            return results
        finally:
            for stream in streams.values():
                stream.close()

    def canonical(self, places: Iterable[_Place]) -> dict[_Place, TraceOutcome]:
        """The canonical run (legacy, concurrency 1, no jitter) at each place, cached."""
        wanted = [place for place in dict.fromkeys(places) if place not in self._canonical]
        for place, (outcome,) in self.run({p: [_Job(CANONICAL)] for p in wanted}).items():
            self._canonical[place] = outcome
        return {place: self._canonical[place] for place in places}

    def captured(
        self, index: int, *wanted: tuple[_Place, Setting]
    ) -> list[Mapping[str, Any] | None]:
        """Event ``index`` of each (place, setting) run, in full (None past its end).

        The runs of different places go side by side, each place's in one process.
        """
        work: dict[_Place, list[_Job]] = {}
        for place, setting in wanted:
            work.setdefault(place, []).append(_Job(setting, index))
        outcomes = {place: iter(runs) for place, runs in self.run(work).items()}
        return [next(outcomes[place]).captured_event for place, _ in wanted]

    def references(self, place: _Place) -> list[_Place]:
        """Other hash seeds to compare ``place``'s runs with: this replay's and the defaults."""
        seeds = [p.hash_seed for p in self.places] + list(DEFAULT_HASH_SEEDS)
        return [_place(seed) for seed in dict.fromkeys(seeds) if seed != place.hash_seed]

    def diagnose(
        self, place: _Place, setting: Setting, outcome: TraceOutcome, differs: str
    ) -> Divergence:
        """The first diverging event of ``setting``'s run at ``place``, whose ``differs`` field
        (a digest, or the counts) is not the footer's."""
        assert self.footer is not None
        footer = self.footer
        canonical = self.canonical([place])[place]
        own = _mismatch(canonical, footer)
        if own is None:
            index = _first_index(canonical, outcome)
            expected, actual = self.captured(index, (place, CANONICAL), (place, setting))
            return Divergence(index, expected, actual, differs)
        # The canonical run itself no longer reproduces the recording. The footer holds
        # digests only: find a run that reproduces it (another hash seed), or two hash
        # seeds that disagree, and compare their events one by one.
        references = self.canonical(self.references(place))
        for reference, run in references.items():
            if _mismatch(run, footer) is None:
                index = _first_index(run, outcome)
                expected, actual = self.captured(index, (reference, CANONICAL), (place, setting))
                return Divergence(
                    index,
                    expected,
                    actual,
                    f"{differs}; the canonical run reproduces the footer under "
                    f"{reference.label()} but not under {place.label()}: "
                    "the run depends on the hash seed",
                )
        for reference, run in references.items():
            if run.event_digests != canonical.event_digests:
                index = _first_index(run, canonical)
                expected, actual = self.captured(index, (reference, CANONICAL), (place, CANONICAL))
                return Divergence(
                    index,
                    expected,
                    actual,
                    f"{own} of the canonical run (legacy, concurrency 1, no jitter); it differs "
                    f"between {reference.label()} (expected) and {place.label()} (actual) and "
                    "neither reproduces the footer: the run depends on the hash seed",
                )
        tried = ", ".join(p.label() for p in (place, *references))
        return Divergence(
            -1,
            {own: getattr(footer, own)},
            {own: getattr(canonical, own)},
            f"{own} of the canonical run (legacy, concurrency 1, no jitter), the same under "
            f"{tried}: the trace was recorded by other code (re-record it with `harness record`)",
        )


def replay_trace(
    path: Path,
    settings: Iterable[Setting],
    *,
    hash_seeds: Sequence[int] | None = None,
    pool_factory: PoolFactory | None = None,
    progress: Callable[[ReplayVerdict], None] | None = None,
) -> ReplayReport:
    """Replay ``path`` under every setting; raise :class:`TraceError` for a bad trace.

    ``hash_seeds`` None runs everything in this process. Otherwise the settings
    are dealt in turn to one process per hash seed (``PYTHONHASHSEED``; a seed
    equal to this process's runs here, the others in child processes side by
    side), so that a result that depends on Python's salted ``hash()`` differs
    between them and from the footer. ``pool_factory`` replaces the ordered pool
    (tests plant a broken one with it); it runs in this process only, so it cannot
    be combined with ``hash_seeds``. Child processes are killed and reaped
    whatever happens.
    """
    if hash_seeds is None:
        places: tuple[_Place, ...] = (_Place(_OWN_HASH_SEED, child=False),)
    else:
        if not hash_seeds or min(hash_seeds) < 0 or max(hash_seeds) > MAX_HASH_SEED:
            raise ValueError(f"hash seeds {list(hash_seeds)}: expected integers in [0, 2**32)")
        if pool_factory is not None:
            raise ValueError("a pool_factory runs in this process only: not with hash_seeds")
        places = tuple(_place(seed) for seed in dict.fromkeys(hash_seeds))
    try:
        header = read_header(path)
        replay = _Replay(path, header.kind, places, pool_factory)
        ordered = list(settings)
        dealt: dict[_Place, list[int]] = {place: [] for place in places}
        for index in range(len(ordered)):
            dealt[places[index % len(places)]].append(index)
        verdicts: dict[int, ReplayVerdict] = {}
        # Children start first and run while this process works through its share.
        streams: dict[_Place, _Local | _Child] = {}
        try:
            for place in sorted(places, key=lambda p: not p.child):
                if dealt[place]:
                    streams[place] = replay.start(place, [_Job(ordered[i]) for i in dealt[place]])
            for place, stream in sorted(streams.items(), key=lambda item: item[0].child):
                for index, (outcome, footer) in zip(dealt[place], stream, strict=True):
                    replay.footer = replay.footer or footer
                    setting = ordered[index]
                    differs = _mismatch(outcome, footer)
                    divergence = None
                    if differs is not None:
                        divergence = replay.diagnose(place, setting, outcome, differs)
                    verdict = ReplayVerdict(
                        str(path),
                        setting,
                        differs is None,
                        outcome.events,
                        outcome.makespan_s,
                        divergence,
                        place.hash_seed,
                    )
                    verdicts[index] = verdict
                    if progress is not None:
                        progress(verdict)
        finally:
            for stream in streams.values():
                stream.close()
    except TraceFormatError as exc:
        raise TraceError(exc.message, where=trace_where(exc)) from None
    except (OSError, ValueError, TypeError) as exc:
        raise TraceError(str(exc), where=str(path)) from None
    return ReplayReport(path, trace_id(path), tuple(verdicts[i] for i in range(len(ordered))))


def hash_seed_divergence(path: Path, hash_seeds: Sequence[int | None]) -> Divergence | None:
    """The first event where the canonical runs of ``path`` differ between two hash seeds.

    ``hash_seeds`` holds two seeds (None: this process's own seed); None when every
    event is the same. For ``harness record``, whose two recordings differed.
    """
    try:
        kind = read_header(path).kind
        first, second = (
            _Place(seed, child=False) if seed is None else _place(seed) for seed in hash_seeds
        )
        replay = _Replay(path, kind, (first, second))
        runs = replay.canonical([first, second])
    except TraceFormatError as exc:
        raise TraceError(exc.message, where=trace_where(exc)) from None
    if runs[first].event_digests == runs[second].event_digests:
        return None
    index = _first_index(runs[first], runs[second])
    expected, actual = replay.captured(index, (first, CANONICAL), (second, CANONICAL))
    return Divergence(
        index,
        expected,
        actual,
        f"the canonical run under {first.label()} (expected) and {second.label()} (actual)",
    )


class SecondRecording:
    """``harness record``'s check: the same scenario recorded in a child under another hash seed.

    The child (``python -m workloads.scenarios``) starts at once, so it records
    while this process does; :meth:`data` waits for its bytes. Used as a context
    manager: the child is killed and reaped on exit, whatever happened.
    """

    def __init__(self, scenario: str, seed: int, hash_seed: int) -> None:
        self.hash_seed = hash_seed
        self.command = (
            f"{HASH_SEED_ENV}={hash_seed} python -m workloads.scenarios {scenario} {seed}"
        )
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115  # closed in __exit__
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "workloads.scenarios", scenario, str(seed)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env={**os.environ, HASH_SEED_ENV: str(hash_seed)},
            )
        except OSError as exc:
            self._stderr.close()
            raise HarnessError(
                f"cannot start the second recording: {exc.strerror or exc}", where=self.command
            ) from None

    def __enter__(self) -> SecondRecording:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._stderr.close()

    def data(self) -> bytes:
        """The child's trace bytes; :class:`HarnessError` with its last stderr line if it failed."""
        assert self._process.stdout is not None
        data = self._process.stdout.read()
        status = self._process.wait()
        if status != 0:
            self._stderr.seek(0)
            lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
            raise HarnessError(
                f"the second recording failed (exit status {status}): "
                + (lines[-1] if lines else "no output"),
                where=self.command,
            )
        return data


def trace_where(exc: TraceFormatError) -> str:
    where = f"{exc.path}:{exc.line}" if exc.line else exc.path
    return f"{where}: field {exc.field}" if exc.field else where


def print_report(report: ReplayReport, out: Any = None) -> None:
    """One line per setting, then the divergences in full, then a summary (stdout by default)."""
    out = sys.stdout if out is None else out
    for verdict in report.verdicts:
        status = "ok" if verdict.deterministic else "DIVERGED"
        print(
            f"  {status:8} {verdict.setting.label():55} events={verdict.events:<7} "
            f"makespan={verdict.makespan_s:.3f}s",
            file=out,
        )
        if verdict.divergence is not None:
            print("    " + verdict.divergence.describe().replace("\n", "\n    "), file=out)
            print(f"    reproduce: {verdict.reproduce()}", file=out)
    bad = sum(not v.deterministic for v in report.verdicts)
    print(
        f"{report.trace.name}: {len(report.verdicts) - bad}/{len(report.verdicts)} settings "
        f"deterministic (trace {report.trace_id[:12]})",
        file=out,
    )


def elapsed_since(start: float) -> str:
    """``12.3 s`` since ``start`` (perf_counter)."""
    return f"{time.perf_counter() - start:.1f} s"


def check_shipped_traces(profile: Any) -> list[ReplayVerdict]:
    """Replay the shipped traces under ``profile``'s settings (for ``harness run``).

    The settings are the workload registry's (:data:`workloads.registry.REPLAY_CHECKS`),
    dealt to child processes of the :data:`DEFAULT_HASH_SEEDS`.
    """
    verdicts: list[ReplayVerdict] = []
    for check in REPLAY_CHECKS[profile.name]:
        settings = settings_matrix(
            check.modes, check.concurrencies, REPLAY_JITTER, check.runs, seed=0
        )
        report = replay_trace(trace_path(check.trace), settings, hash_seeds=DEFAULT_HASH_SEEDS)
        verdicts.extend(report.verdicts)
    return verdicts


def collect_metrics(profile: Any, *, otlp_endpoint: str | None = None) -> list[MetricPoint]:
    """Run each small shipped trace once, pooled, with telemetry on; the points collected.

    With ``otlp_endpoint`` the same points are also exported there over OTLP/HTTP.
    """
    del profile  # one instrumented pass is enough whatever the profile
    config = (
        TelemetryConfig(exporter=Exporter.OTLP_HTTP, endpoint=otlp_endpoint)
        if otlp_endpoint
        else TelemetryConfig(exporter=Exporter.MEMORY)
    )
    telemetry = Telemetry(config, keep_in_memory=True)
    try:
        for name in ("kernel-small", "mcp-tools", "prp-nightly"):
            path = trace_path(name)
            driver = run_trace_records(read_header(path).kind)
            virtual_time.run(
                driver(iter(TraceReader(path)), Setting(Mode.POOLED, 8), telemetry=telemetry)
            )
        return telemetry.collect()
    finally:
        telemetry.shutdown()


def _serve_main() -> int:
    # Replies go to the real stdout; anything else printed goes to stderr, so that a
    # stray print can never garble the protocol.
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    with replies:
        return serve(sys.stdin.buffer, replies)


if __name__ == "__main__":
    sys.exit(_serve_main())
