"""Deterministic replay: run a trace under many settings, name the first diverging event.

For each setting (mode x concurrency x run, each run with its own seeded timing
jitter) the trace's inputs are run on the virtual clock and the committed
sequence, event and evidence digests are compared with the footer. When a
setting differs, the canonical run (legacy, concurrency 1, no jitter) and the
setting's run are compared event by event through short per-event digests, and
both runs are repeated to capture the first differing event in full: its index,
the expected and the actual event, and the command line that reproduces it.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import TraceError
from reference_impl import virtual_time
from reference_impl.mode import Mode
from reference_impl.telemetry import Exporter, MetricPoint, Telemetry, TelemetryConfig
from workloads.drivers import CANONICAL, Outcome, PoolFactory, Setting, run_trace_records
from workloads.registry import trace_path
from workloads.trace import Footer, TraceFormatError, TraceReader, read_header, trace_id

__all__ = [
    "Divergence",
    "ReplayReport",
    "ReplayVerdict",
    "check_shipped_traces",
    "collect_metrics",
    "replay_trace",
    "settings_matrix",
]


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


def _run(
    path: Path,
    kind: str,
    setting: Setting,
    *,
    capture_index: int | None = None,
    pool_factory: PoolFactory | None = None,
) -> tuple[Outcome, Footer]:
    reader = TraceReader(path)
    driver = run_trace_records(kind)
    kwargs: dict[str, Any] = {"capture_index": capture_index}
    if pool_factory is not None:
        kwargs["pool_factory"] = pool_factory
    outcome = virtual_time.run(driver(iter(reader), setting, **kwargs))
    assert reader.footer is not None  # the reader raised otherwise
    return outcome, reader.footer


def _mismatch(outcome: Outcome, footer: Footer) -> str | None:
    for name in ("committed_digest", "events_digest", "evidence_digest"):
        if getattr(outcome, name) != getattr(footer, name):
            return name
    if dict(outcome.counts) != dict(footer.counts):
        return "counts"
    return None


def replay_trace(
    path: Path,
    settings: Iterable[Setting],
    *,
    pool_factory: PoolFactory | None = None,
    progress: Callable[[ReplayVerdict], None] | None = None,
) -> ReplayReport:
    """Replay ``path`` under every setting; raise :class:`TraceError` for a bad trace.

    ``pool_factory`` replaces the ordered pool (tests use it to plant a broken one).
    """
    try:
        header = read_header(path)
        kind = header.kind
        verdicts: list[ReplayVerdict] = []
        canonical: Outcome | None = None  # run only when a setting diverges
        for setting in settings:
            outcome, footer = _run(path, kind, setting, pool_factory=pool_factory)
            field = _mismatch(outcome, footer)
            divergence = None
            if field is not None:
                if canonical is None:
                    canonical, _ = _run(path, kind, CANONICAL)
                if (own := _mismatch(canonical, footer)) is not None:
                    # The reference no longer reproduces its own recording.
                    divergence = Divergence(
                        -1,
                        {own: getattr(footer, own)},
                        {own: getattr(canonical, own)},
                        f"{own} of the canonical run (legacy, concurrency 1, no jitter)",
                    )
                else:
                    divergence = _first_divergence(
                        path, kind, canonical, outcome, setting, field, pool_factory
                    )
            verdict = ReplayVerdict(
                str(path), setting, field is None, outcome.events, outcome.makespan_s, divergence
            )
            verdicts.append(verdict)
            if progress is not None:
                progress(verdict)
    except TraceFormatError as exc:
        raise TraceError(exc.message, where=trace_where(exc)) from None
    except (OSError, ValueError, TypeError) as exc:
        raise TraceError(str(exc), where=str(path)) from None
    return ReplayReport(path, trace_id(path), tuple(verdicts))


def _first_divergence(
    path: Path,
    kind: str,
    expected: Outcome,
    actual: Outcome,
    setting: Setting,
    field: str,
    pool_factory: PoolFactory | None,
) -> Divergence:
    index = next(
        (
            i
            for i in range(min(expected.events, actual.events))
            if expected.event_digest(i) != actual.event_digest(i)
        ),
        min(expected.events, actual.events),
    )
    want, _ = _run(path, kind, CANONICAL, capture_index=index)
    got, _ = _run(path, kind, setting, capture_index=index, pool_factory=pool_factory)
    return Divergence(index, want.captured_event, got.captured_event, field)


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
            print(
                f"    reproduce: harness replay {report.trace} {verdict.setting.label()} --runs 1",
                file=out,
            )
    bad = sum(not v.deterministic for v in report.verdicts)
    print(
        f"{report.trace.name}: {len(report.verdicts) - bad}/{len(report.verdicts)} settings "
        f"deterministic (trace {report.trace_id[:12]})",
        file=out,
    )


def elapsed_since(start: float) -> str:
    """``12.3 s`` since ``start`` (perf_counter)."""
    return f"{time.perf_counter() - start:.1f} s"


# Determinism settings of `harness run`, per profile: (trace, modes, concurrencies, runs).
# kernel-large runs pooled only: its canonical legacy pass re-imports the proof module
# 20,000 times (about a minute); the nightly replays it in both modes (`nox -s replay`).
_CHECKS: dict[str, tuple[tuple[str, tuple[Mode, ...], tuple[int, ...], int], ...]] = {
    "fast": (
        ("kernel-small", (Mode.LEGACY, Mode.POOLED), (1, 4, 16), 1),
        ("mcp-tools", (Mode.LEGACY, Mode.POOLED), (1, 4, 16), 1),
        ("prp-nightly", (Mode.LEGACY, Mode.POOLED), (1, 4, 16), 1),
        ("kernel-large", (Mode.POOLED,), (16,), 1),
    ),
    "default": (
        ("kernel-small", (Mode.LEGACY, Mode.POOLED), (1, 4, 16), 2),
        ("mcp-tools", (Mode.LEGACY, Mode.POOLED), (1, 4, 16), 2),
        ("prp-nightly", (Mode.LEGACY, Mode.POOLED), (1, 4, 16), 2),
        ("kernel-large", (Mode.POOLED,), (4, 16), 1),
    ),
    "rigorous": (
        ("kernel-small", (Mode.LEGACY, Mode.POOLED), (1, 4, 16), 3),
        ("mcp-tools", (Mode.LEGACY, Mode.POOLED), (1, 4, 16), 3),
        ("prp-nightly", (Mode.LEGACY, Mode.POOLED), (1, 4, 16), 3),
        ("kernel-large", (Mode.POOLED,), (1, 4, 16), 1),
    ),
}
CHECK_JITTER = 0.3


def check_shipped_traces(profile: Any) -> list[ReplayVerdict]:
    """Replay the shipped traces under ``profile``'s settings (for ``harness run``)."""
    verdicts: list[ReplayVerdict] = []
    for name, modes, concurrencies, runs in _CHECKS[profile.name]:
        settings = settings_matrix(modes, concurrencies, CHECK_JITTER, runs, seed=0)
        verdicts.extend(replay_trace(trace_path(name), settings).verdicts)
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
