"""OpenTelemetry metrics for the reference runtime, paid for off the hot path.

One place configures the export (:class:`TelemetryConfig`, :func:`configure`),
creates every instrument once (:class:`Telemetry`), and feeds them without the
runtime ever calling the SDK per item:

* **Levels** (pool active/queued, live MCP contexts, history length, cache
  entries, spool concurrency, approval queue depth) and **totals** (tasks
  committed, cache hits, gates, retries, denials) are *observable* instruments.
  Their callbacks read the components' ``statistics()`` snapshots at collection
  time, through the :class:`Reading` sources registered with
  :meth:`Telemetry.add_source`. No runtime code updates them.
* **Distributions** (durations, waits) are *exact* histograms in seconds. The
  hot path counts every value into plain local buckets
  (:class:`HistogramSeries`: a bisect into :data:`DURATION_BUCKETS_S`, the sum,
  min and max, under one uncontended lock), never a sample of them, and never
  through the SDK (one SDK ``Histogram.record`` costs 7-9 µs, and the SDK has no
  pre-aggregated path). At collection time those counts become the SDK's own
  data classes (``HistogramDataPoint`` inside ``MetricsData``), which every
  reader sees: the in-memory reader (:meth:`Telemetry.collect`), the OTLP
  exporter (one ``export()`` per period carrying the observable points and the
  histograms) and the Prometheus endpoint (a collector serving them as
  ``HistogramMetricFamily``).

Guarantees of the histograms:

* every recorded value is counted exactly once by every reader: a histogram's
  count equals the number of values recorded, bucket by bucket (upper bounds
  inclusive, as in OpenTelemetry and Prometheus's ``le``);
* a cumulative reader's point is the whole run so far; a delta reader's point
  is exactly what was recorded since that reader's previous collection (a series
  with nothing new has no delta point), its start time being that collection's
  time;
* readers are independent: a delta OTLP export does not empty what the
  in-memory reader of the same :class:`Telemetry` will report;
* ``sum`` is the float sum of the values in the order recorded, per collection
  interval.

Names follow ``component.object.measure``; durations are seconds with explicit
bucket boundaries from 100 µs to one hour (the SDK's defaults suit
milliseconds: in seconds every sample would land in the first bucket).

Exporters: ``none`` (the no-op API: telemetry off, to measure its cost),
``memory`` (the embedded default: an in-memory reader, nothing to start,
cumulative unless configured), ``otlp-http``, ``otlp-grpc`` (delta temporality
unless ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` or the
configuration says otherwise) and ``prometheus`` (a pull endpoint, cumulative).
The standard ``OTEL_*`` variables (``OTEL_METRICS_EXPORTER``,
``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_PROTOCOL``,
``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE``,
``OTEL_METRIC_EXPORT_INTERVAL``, ``OTEL_EXPORTER_PROMETHEUS_HOST``/``PORT``,
``OTEL_SERVICE_NAME``) are honoured when no argument overrides them.
"""

from __future__ import annotations

import enum
import functools
import itertools
import logging
import math
import os
import re
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import (
    Counter,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    MetricExporter,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client.core import HistogramMetricFamily

from reference_impl.errors import ConfigError

__all__ = [
    "COUNTERS",
    "DURATION_BUCKETS_S",
    "GAUGES",
    "HISTOGRAMS",
    "Exporter",
    "HistogramSeries",
    "MetricPoint",
    "Reading",
    "Telemetry",
    "TelemetryConfig",
    "Temporality",
    "cache_source",
    "configure",
    "graph_source",
    "mcp_source",
    "pool_source",
    "prp_source",
    "scheduler_source",
]

_LOG = logging.getLogger(__name__)

# The instrumentation scope of every instrument (Prometheus: otel_scope_name).
SCOPE_NAME = "agentbench.reference_impl"

# Bucket boundaries for every duration histogram, in seconds: 100 µs .. 1 h.
DURATION_BUCKETS_S: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)


# Histograms (seconds): name -> description.
HISTOGRAMS: Mapping[str, str] = {
    "kernel.pool.queue_wait": "Time a pool job waited for a free slot",
    "kernel.pool.run_time": "Time a pool job ran",
    "kernel.pool.commit_wait": "Time a finished pool job waited for earlier jobs (head-of-line)",
    "kernel.scheduler.task_duration": "Scheduler task latency, run start to commit",
    "kernel.mcp.tool_call.duration": "MCP tool call duration, hooks included",
    "kernel.mcp.hook.duration": "MCP pre+post hook time per tool call",
    "kernel.proof.load_duration": "Proof module import/load time per invocation",
    "prp.gate.duration": "Quality gate duration",
    "prp.approval.wait": "Approval wait",
    "prp.run.duration": "PRP run duration, start to review document",
}

# Monotonic totals read from statistics(): name -> (unit, description).
COUNTERS: Mapping[str, tuple[str, str]] = {
    "kernel.scheduler.tasks.committed": ("{task}", "Scheduler tasks committed"),
    "kernel.scheduler.tasks.failed": ("{task}", "Scheduler tasks failed"),
    "runtime.cache.hits": ("{lookup}", "Cache hits (attribute cache)"),
    "runtime.cache.misses": ("{lookup}", "Cache misses (attribute cache)"),
    "runtime.cache.evictions": ("{entry}", "Cache evictions (attribute cache)"),
    "prp.gates.completed": ("{gate}", "Gates committed"),
    "prp.gates.failed": ("{gate}", "Gates failed"),
    "prp.gates.skipped": ("{gate}", "Gates skipped (a dependency failed)"),
    "prp.executor.retries": ("{retry}", "Executor retries"),
    "kernel.tools.denials": ("{denial}", "Tool calls denied (attribute rule)"),
}

# Levels read from statistics(): name -> (unit, description).
GAUGES: Mapping[str, tuple[str, str]] = {
    "kernel.pool.active": ("{job}", "Pool jobs running now"),
    "kernel.pool.queued": ("{job}", "Pool jobs waiting for a slot"),
    "kernel.mcp.contexts.live": ("{context}", "Live MCP run contexts"),
    "runtime.history.length": ("{snapshot}", "Execution history kept (attribute component)"),
    "runtime.cache.entries": ("{entry}", "Cache entries (attribute cache)"),
    "prp.spool.concurrency": ("{gate}", "Spool concurrency now"),
    "prp.approval.queue_depth": ("{approval}", "Approvals waiting"),
}


class Exporter(enum.Enum):
    """Where metrics go."""

    NONE = "none"
    MEMORY = "memory"
    OTLP_HTTP = "otlp-http"
    OTLP_GRPC = "otlp-grpc"
    PROMETHEUS = "prometheus"


class Temporality(enum.Enum):
    """How successive exports relate: the values of the standard preference variable.

    ``CUMULATIVE`` exports running totals; ``DELTA`` exports what is new since the
    previous export; ``LOWMEMORY`` is delta for counters and histograms but cumulative
    for observable counters (the OpenTelemetry specification's three choices).
    """

    CUMULATIVE = "cumulative"
    DELTA = "delta"
    LOWMEMORY = "lowmemory"

    @property
    def histograms(self) -> AggregationTemporality:
        """The temporality of every histogram under this choice."""
        if self is Temporality.CUMULATIVE:
            return AggregationTemporality.CUMULATIVE
        return AggregationTemporality.DELTA

    def by_instrument(self) -> dict[type, AggregationTemporality]:
        """The SDK's per-instrument preference for this choice (the OTLP exporters' table)."""
        delta, cumulative = AggregationTemporality.DELTA, AggregationTemporality.CUMULATIVE
        counters = cumulative if self is Temporality.CUMULATIVE else delta
        return {
            Counter: counters,
            UpDownCounter: cumulative,
            HistogramInstrument: self.histograms,
            ObservableCounter: delta if self is Temporality.DELTA else cumulative,
            ObservableUpDownCounter: cumulative,
            ObservableGauge: cumulative,
        }


_TEMPORALITY_VARIABLE = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
_OTLP = (Exporter.OTLP_HTTP, Exporter.OTLP_GRPC)
# The export period when neither the configuration nor OTEL_METRIC_EXPORT_INTERVAL sets one.
_DEFAULT_EXPORT_INTERVAL_S = 60.0


def _temporality_from_env(env: Mapping[str, str]) -> Temporality | None:
    text = env.get(_TEMPORALITY_VARIABLE, "").strip().lower()
    if not text:
        return None
    try:
        return Temporality(text)
    except ValueError:
        raise ConfigError(
            _TEMPORALITY_VARIABLE,
            f"unknown temporality {text!r}; expected cumulative, delta or lowmemory",
        ) from None


def _interval_from_env(env: Mapping[str, str]) -> float | None:
    interval = env.get("OTEL_METRIC_EXPORT_INTERVAL")
    try:
        return float(interval) / 1000.0 if interval else None
    except ValueError:
        raise ConfigError(
            "OTEL_METRIC_EXPORT_INTERVAL", f"{interval!r} is not a number of milliseconds"
        ) from None


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    """How to export. ``None`` fields are taken from the ``OTEL_*`` environment.

    ``temporality`` None means: delta for OTLP unless
    ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` says otherwise; cumulative
    for the in-memory reader; Prometheus is always cumulative (it pulls totals).
    """

    exporter: Exporter = Exporter.MEMORY
    endpoint: str | None = None
    prometheus_host: str = "127.0.0.1"
    prometheus_port: int = 9464
    export_interval_s: float | None = None
    service_name: str = "agentbench-reference"
    temporality: Temporality | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TelemetryConfig:
        """The configuration the standard ``OTEL_*`` variables describe (memory by default)."""
        env = os.environ if env is None else env
        name = env.get("OTEL_METRICS_EXPORTER", "").strip().lower()
        protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf").strip().lower()
        if name in ("", "memory"):
            exporter = Exporter.MEMORY
            if env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
                exporter = Exporter.OTLP_GRPC if protocol == "grpc" else Exporter.OTLP_HTTP
        elif name == "otlp":
            exporter = Exporter.OTLP_GRPC if protocol == "grpc" else Exporter.OTLP_HTTP
        elif name in ("none", "prometheus", "otlp-http", "otlp-grpc"):
            exporter = Exporter(name)
        else:
            raise ConfigError(
                "OTEL_METRICS_EXPORTER",
                f"unknown exporter {name!r}; expected otlp, prometheus, memory or none",
            )
        interval_s = _interval_from_env(env)
        port = env.get("OTEL_EXPORTER_PROMETHEUS_PORT", "9464")
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError("OTEL_EXPORTER_PROMETHEUS_PORT", f"{port!r} is not a port number")
        return cls(
            exporter=exporter,
            endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            prometheus_host=env.get("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1"),
            prometheus_port=int(port),
            export_interval_s=interval_s,
            service_name=env.get("OTEL_SERVICE_NAME", "agentbench-reference"),
            temporality=_temporality_from_env(env) if exporter in _OTLP else None,
        )

    def resolved_temporality(self) -> Temporality:
        """The temporality of this configuration's main reader (``None`` resolved)."""
        if self.exporter is Exporter.PROMETHEUS:
            if self.temporality is not None and self.temporality is not Temporality.CUMULATIVE:
                raise ConfigError(
                    "TelemetryConfig.temporality",
                    f"{self.temporality.value} with the Prometheus exporter; expected "
                    "cumulative or None (Prometheus pulls running totals)",
                )
            return Temporality.CUMULATIVE
        if self.temporality is not None:
            return self.temporality
        if self.exporter in _OTLP:
            return _temporality_from_env(os.environ) or Temporality.DELTA
        return Temporality.CUMULATIVE

    def resolved_export_interval_s(self) -> float:
        """The OTLP export period in seconds (``None`` resolved; ``inf``: only on flush)."""
        interval_s = self.export_interval_s
        if interval_s is None:
            interval_s = _interval_from_env(os.environ) or _DEFAULT_EXPORT_INTERVAL_S
        if not interval_s > 0:
            raise ConfigError(
                "TelemetryConfig.export_interval_s", f"{interval_s!r}; expected seconds > 0"
            )
        return interval_s


@dataclass(frozen=True, slots=True)
class Reading:
    """One observed value of an observable instrument, with its attributes."""

    name: str
    value: float
    attributes: Mapping[str, str] = field(default_factory=dict)


# A source returns the current readings of one component (its statistics()).
Source = Callable[[], Iterable[Reading]]


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One collected data point, as plain data (what a bundle's metrics.json holds)."""

    name: str
    kind: str
    unit: str
    attributes: Mapping[str, str]
    value: float | None = None
    count: int | None = None
    sum: float | None = None
    bucket_bounds: tuple[float, ...] = ()
    bucket_counts: tuple[int, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The point as JSON data (empty fields left out)."""
        data: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "unit": self.unit,
            "attributes": dict(self.attributes),
        }
        for key in ("value", "count", "sum"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.bucket_counts:
            data["bucket_bounds"] = list(self.bucket_bounds)
            data["bucket_counts"] = list(self.bucket_counts)
        return data


# --- exact histograms -------------------------------------------------------------------

# A series: the instrument's name and its attributes, sorted.
_SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class _Tally:
    """What one series counted over some span: per-bucket counts, count, sum, min, max."""

    bucket_counts: tuple[int, ...]
    count: int
    sum: float
    min: float
    max: float

    def __add__(self, later: _Tally) -> _Tally:
        return _Tally(
            tuple(a + b for a, b in zip(self.bucket_counts, later.bucket_counts, strict=True)),
            self.count + later.count,
            self.sum + later.sum,
            min(self.min, later.min),
            max(self.max, later.max),
        )


class HistogramSeries:
    """One histogram series (an instrument and one set of attributes): the hot path's handle.

    :meth:`record` and :meth:`record_many` count every value (seconds) into plain local
    buckets: a bisect into the explicit bounds (upper bounds inclusive), the sum, min and
    max. No SDK call and no allocation; the series' lock is contended only while a
    collection takes what was counted, so no value is lost or counted twice.
    Get one from :meth:`Telemetry.histogram`.
    """

    __slots__ = ("_bounds", "_counts", "_lock", "_max", "_min", "_sum", "attributes", "name")

    def __init__(self, name: str, attributes: Mapping[str, str], bounds: tuple[float, ...]) -> None:
        self.name = name
        self.attributes: Mapping[str, str] = dict(attributes)
        self._bounds = bounds
        self._lock = threading.Lock()
        self._counts = [0] * (len(bounds) + 1)
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf

    def record(self, value_s: float) -> None:
        """Count one value."""
        with self._lock:
            self._counts[bisect_left(self._bounds, value_s)] += 1
            self._sum += value_s
            if value_s < self._min:
                self._min = value_s
            if value_s > self._max:
                self._max = value_s

    def record_many(self, values_s: Sequence[float]) -> int:
        """Count every value of a batch; how many were counted (all of them)."""
        if not values_s:
            return 0
        bounds = self._bounds
        with self._lock:
            counts = self._counts
            total = self._sum
            for value in values_s:
                counts[bisect_left(bounds, value)] += 1
                total += value
            self._sum = total
            self._min = min(self._min, min(values_s))
            self._max = max(self._max, max(values_s))
        return len(values_s)

    def _drain(self) -> _Tally | None:
        """What was counted since the last drain (None: nothing); the series starts afresh."""
        with self._lock:
            count = sum(self._counts)
            if not count:
                return None
            tally = _Tally(tuple(self._counts), count, self._sum, self._min, self._max)
            self._counts = [0] * len(self._counts)
            self._sum, self._min, self._max = 0.0, math.inf, -math.inf
        return tally


class _DisabledSeries(HistogramSeries):
    """Telemetry off: values are dropped, as the no-op API drops them."""

    __slots__ = ()

    def record(self, value_s: float) -> None:
        del value_s

    def record_many(self, values_s: Sequence[float]) -> int:
        del values_s
        return 0


@dataclass(slots=True)
class _HistogramView:
    """What one reader has been handed: running totals, or what is new since its last take."""

    temporality: AggregationTemporality
    start_ns: int
    tallies: dict[_SeriesKey, _Tally] = field(default_factory=dict)

    def add(self, key: _SeriesKey, tally: _Tally) -> None:
        earlier = self.tallies.get(key)
        self.tallies[key] = tally if earlier is None else earlier + tally


class _HistogramStore:
    """Every histogram series, and one view of them per reader.

    A collection drains every series once and adds what it found to *every* view, so
    readers never take values from one another: a delta OTLP export leaves the
    cumulative in-memory view whole.
    """

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self._series: dict[_SeriesKey, HistogramSeries] = {}
        self._views: list[_HistogramView] = []
        self._lock = threading.Lock()

    def series(self, name: str, attributes: Mapping[str, str]) -> HistogramSeries:
        key = (name, tuple(sorted(attributes.items())))
        series = self._series.get(key)
        if series is None:
            with self._lock:
                series = self._series.setdefault(
                    key, HistogramSeries(name, attributes, self.bounds)
                )
        return series

    def view(self, temporality: AggregationTemporality) -> _HistogramView:
        """A new reader's view; it sees what is recorded from now on."""
        with self._lock:
            view = _HistogramView(temporality, time.time_ns())
            self._views.append(view)
        return view

    def take(self, view: _HistogramView) -> list[Metric]:
        """The histograms ``view``'s reader exports now, as the SDK's data classes."""
        with self._lock:
            for key, series in list(self._series.items()):
                tally = series._drain()
                if tally is not None:
                    for each in self._views:
                        each.add(key, tally)
            now_ns = time.time_ns()
            points: dict[str, list[HistogramDataPoint]] = {}
            for (name, attributes), tally in sorted(view.tallies.items()):
                points.setdefault(name, []).append(
                    HistogramDataPoint(
                        attributes=dict(attributes),
                        start_time_unix_nano=view.start_ns,
                        time_unix_nano=now_ns,
                        count=tally.count,
                        sum=tally.sum,
                        bucket_counts=list(tally.bucket_counts),
                        explicit_bounds=list(self.bounds),
                        min=tally.min,
                        max=tally.max,
                    )
                )
            if view.temporality is AggregationTemporality.DELTA:
                view.tallies.clear()
                view.start_ns = now_ns
        return [
            Metric(
                name=name,
                description=HISTOGRAMS[name],
                unit="s",
                data=Histogram(data_points=data_points, aggregation_temporality=view.temporality),
            )
            for name, data_points in points.items()
        ]


def _with_histograms(
    data: MetricsData | None, histograms: Sequence[Metric], resource: Resource
) -> MetricsData | None:
    """``data`` with ``histograms`` added to this runtime's scope (made when absent)."""
    if not histograms:
        return data
    if data is None or not data.resource_metrics:
        scope = ScopeMetrics(InstrumentationScope(SCOPE_NAME), list(histograms), "")
        return MetricsData([ResourceMetrics(resource, [scope], resource.schema_url)])
    first, *others = data.resource_metrics
    scopes = list(first.scope_metrics)
    for index, scope_metrics in enumerate(scopes):
        if scope_metrics.scope.name == SCOPE_NAME:
            metrics = [*scope_metrics.metrics, *histograms]
            scopes[index] = ScopeMetrics(scope_metrics.scope, metrics, scope_metrics.schema_url)
            break
    else:
        scopes.append(ScopeMetrics(InstrumentationScope(SCOPE_NAME), list(histograms), ""))
    return MetricsData([ResourceMetrics(first.resource, scopes, first.schema_url), *others])


class _ExactExportingReader(MetricReader):
    """A periodic reader handing its exporter one batch per period: the SDK's observable
    points and the exact histograms together.

    The SDK's ``PeriodicExportingMetricReader`` cannot: its ``collect`` is final and it
    exports only when the SDK itself has points. This one owns its thread (started by
    :meth:`start`, stopped and joined by :meth:`shutdown`, which exports once more), and
    never calls the exporter's ``export()`` concurrently.
    """

    def __init__(
        self,
        exporter: MetricExporter,
        temporality: Temporality,
        histograms: Callable[[], list[Metric]],
        resource: Resource,
        interval_s: float,
    ) -> None:
        super().__init__(preferred_temporality=temporality.by_instrument())
        self._exporter = exporter
        self._histograms = histograms
        self._resource = resource
        self._interval_s = interval_s
        self._export_lock = threading.Lock()
        self._received = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="agentbench-metrics", daemon=True)

    def start(self) -> None:
        """Start exporting every period (never, with an infinite period: flushes only)."""
        if math.isfinite(self._interval_s):
            self._thread.start()

    def export_now(self, timeout_millis: float = 10_000) -> None:
        """Collect and export one batch (nothing when there is nothing to say)."""
        with self._export_lock:
            self._received = False
            self.collect(timeout_millis=timeout_millis)
            if not self._received:  # the SDK had no point: the histograms go alone
                self._export(None, timeout_millis)

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._received = True
        self._export(metrics_data, timeout_millis)

    def _export(self, data: MetricsData | None, timeout_millis: float) -> None:
        batch = _with_histograms(data, self._histograms(), self._resource)
        if batch is not None:
            self._exporter.export(batch, timeout_millis=timeout_millis)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        self.export_now(timeout_millis)
        return self._exporter.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_millis / 1000)
        self.export_now(timeout_millis)
        self._exporter.shutdown(timeout_millis=timeout_millis)

    def _tick(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.export_now()
            except Exception:
                # Logged, not raised: one failed export (collector down) must not end the
                # periodic export. The SDK's own periodic reader does the same.
                _LOG.exception("periodic metrics export failed")


# Labels the OpenTelemetry Prometheus exporter puts on every series of this scope.
_SCOPE_LABELS = {
    "otel_scope_name": SCOPE_NAME,
    "otel_scope_schema_url": "",
    "otel_scope_version": "",
}
_PROMETHEUS_UNITS = {"s": "seconds"}


def _prometheus_label(key: str) -> str:
    """An attribute key as a label, as the OpenTelemetry Prometheus exporter writes it."""
    if key[:1].isdigit():
        key = "_" + key[1:]
    return re.sub(r"[^a-zA-Z0-9]+", "_", key)


def _prometheus_family(metric: Metric) -> HistogramMetricFamily:
    """One exact histogram as a Prometheus family, named as the OpenTelemetry exporter does."""
    if not isinstance(metric.data, Histogram):
        raise TypeError(f"{metric.name} is not a histogram: {type(metric.data).__name__}")
    points = list(metric.data.data_points)
    rows = [
        {**_SCOPE_LABELS, **{_prometheus_label(k): str(v) for k, v in (p.attributes or {}).items()}}
        for p in points
    ]
    keys = sorted({key for row in rows for key in row})
    family = HistogramMetricFamily(
        re.sub(r"[^a-zA-Z0-9:]+", "_", metric.name),
        metric.description or "",
        labels=keys,
        unit=_PROMETHEUS_UNITS.get(metric.unit or "", metric.unit or ""),
    )
    for row, point in zip(rows, points, strict=True):
        upper_bounds = [f"{bound}" for bound in point.explicit_bounds] + ["+Inf"]
        below = itertools.accumulate(point.bucket_counts)  # le is cumulative
        family.add_metric(
            [row.get(key, "") for key in keys],
            list(zip(upper_bounds, below, strict=True)),
            point.sum,
        )
    return family


class _PrometheusHistograms:
    """A prometheus_client collector: the exact histograms, cumulative, at every scrape."""

    def __init__(self, histograms: Callable[[], list[Metric]]) -> None:
        self._histograms = histograms

    def collect(self) -> Iterator[HistogramMetricFamily]:
        for metric in self._histograms():
            yield _prometheus_family(metric)


def _otlp_exporter(config: TelemetryConfig, temporality: Temporality) -> MetricExporter:
    preferred = temporality.by_instrument()
    if config.exporter is Exporter.OTLP_HTTP:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HttpExporter,
        )

        endpoint = config.endpoint
        if endpoint and not endpoint.rstrip("/").endswith("/v1/metrics"):
            endpoint = endpoint.rstrip("/") + "/v1/metrics"
        return HttpExporter(endpoint=endpoint, preferred_temporality=preferred)
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
        OTLPMetricExporter as GrpcExporter,
    )

    return GrpcExporter(endpoint=config.endpoint, preferred_temporality=preferred)


class Telemetry:
    """Every instrument, created once, and the sources its observable callbacks read.

    With ``Exporter.NONE`` the instruments come from the no-op API and histogram values
    are dropped: recording and collection cost (almost) nothing, which is how
    telemetry's own cost is measured. ``keep_in_memory`` adds an in-memory reader
    (cumulative) beside another exporter, so that :meth:`collect` sees what was
    exported (the harness stores it in the bundle).
    """

    def __init__(
        self, config: TelemetryConfig | None = None, *, keep_in_memory: bool = False
    ) -> None:
        self.config = config or TelemetryConfig()
        self.enabled = self.config.exporter is not Exporter.NONE
        temporality = self.config.resolved_temporality()
        self._sources: list[Source] = []
        self._histograms = _HistogramStore(DURATION_BUCKETS_S)
        self._resource = Resource.create({"service.name": self.config.service_name})
        self._memory: InMemoryMetricReader | None = None
        self._memory_view: _HistogramView | None = None
        self._periodic: _ExactExportingReader | None = None
        self._served: tuple[Any, threading.Thread] | None = None
        readers: list[MetricReader] = []
        exporter = self.config.exporter
        if exporter is Exporter.MEMORY or (keep_in_memory and self.enabled):
            memory = temporality if exporter is Exporter.MEMORY else Temporality.CUMULATIVE
            self._memory = InMemoryMetricReader(preferred_temporality=memory.by_instrument())
            self._memory_view = self._histograms.view(memory.histograms)
            readers.append(self._memory)
        if exporter in _OTLP:
            view = self._histograms.view(temporality.histograms)
            self._periodic = _ExactExportingReader(
                _otlp_exporter(self.config, temporality),
                temporality,
                functools.partial(self._histograms.take, view),
                self._resource,
                self.config.resolved_export_interval_s(),
            )
            readers.append(self._periodic)
        elif exporter is Exporter.PROMETHEUS:
            readers.append(self._serve_prometheus())
        self._provider: MeterProvider | None = None
        meter: Meter
        if readers:
            self._provider = MeterProvider(metric_readers=readers, resource=self._resource)
            meter = self._provider.get_meter(SCOPE_NAME)
        else:
            meter = otel_metrics.NoOpMeter("agentbench")
        for name, (unit, text) in COUNTERS.items():
            meter.create_observable_counter(
                name, callbacks=[self._callback(name)], unit=unit, description=text
            )
        for name, (unit, text) in GAUGES.items():
            meter.create_observable_gauge(
                name, callbacks=[self._callback(name)], unit=unit, description=text
            )
        if self._periodic is not None:
            self._periodic.start()

    def add_source(self, source: Source) -> None:
        """Register a component's readings; they are read at every collection."""
        self._sources.append(source)

    def remove_source(self, source: Source) -> None:
        """Stop reading a source (a finished component)."""
        self._sources.remove(source)

    def histogram(self, name: str, attributes: Mapping[str, str] | None = None) -> HistogramSeries:
        """The series of histogram ``name`` with ``attributes``: keep it, record into it.

        The same name and attributes give the same series. Telemetry off gives a series
        that drops its values.
        """
        if name not in HISTOGRAMS:
            raise ConfigError(
                "Telemetry.histogram",
                f"unknown histogram {name!r}; expected one of {', '.join(HISTOGRAMS)}",
            )
        if not self.enabled:
            return _DisabledSeries(name, attributes or {}, DURATION_BUCKETS_S)
        return self._histograms.series(name, attributes or {})

    def record_samples(
        self, name: str, samples_s: Sequence[float], attributes: Mapping[str, str] | None = None
    ) -> int:
        """Count every value of a batch (seconds) into a histogram; how many were counted.

        All of them, whatever the batch's size (0 with telemetry off): the histogram's
        count is the number of values recorded, bucket by bucket.
        """
        return self.histogram(name, attributes).record_many(samples_s)

    def collect(self) -> list[MetricPoint]:
        """The points collected now (memory exporter or ``keep_in_memory``; else empty)."""
        if self._memory is None or self._memory_view is None:
            return []
        data = _with_histograms(
            self._memory.get_metrics_data(),
            self._histograms.take(self._memory_view),
            self._resource,
        )
        if data is None:
            return []
        return [
            point
            for resource_metrics in data.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
            for point in _points_of(metric)
        ]

    def flush(self) -> None:
        """Export one batch now (OTLP), without waiting for the period; else nothing."""
        if self._periodic is not None and self._provider is not None:
            self._periodic.force_flush()

    def shutdown(self) -> None:
        """Export what is pending and stop the provider and endpoint (idempotent)."""
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = None
        if self._served is not None:
            server, thread = self._served
            self._served = None
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    def _serve_prometheus(self) -> MetricReader:
        """The Prometheus reader (observable points) and the endpoint serving it all."""
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry()
        reader: MetricReader = PrometheusMetricReader(registry=registry)
        view = self._histograms.view(AggregationTemporality.CUMULATIVE)
        registry.register(_PrometheusHistograms(functools.partial(self._histograms.take, view)))
        self._served = start_http_server(
            self.config.prometheus_port, addr=self.config.prometheus_host, registry=registry
        )
        return reader

    def _callback(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            for source in self._sources:
                for reading in source():
                    if reading.name == name:
                        yield Observation(reading.value, dict(reading.attributes))

        return observe


def _points_of(metric: Any) -> Iterable[MetricPoint]:
    kind = type(metric.data).__name__.lower()
    for point in metric.data.data_points:
        attributes = {str(k): str(v) for k, v in (point.attributes or {}).items()}
        if hasattr(point, "bucket_counts"):
            yield MetricPoint(
                metric.name,
                kind,
                metric.unit,
                attributes,
                count=int(point.count),
                sum=float(point.sum),
                bucket_bounds=tuple(float(b) for b in point.explicit_bounds),
                bucket_counts=tuple(int(c) for c in point.bucket_counts),
            )
        else:
            yield MetricPoint(metric.name, kind, metric.unit, attributes, value=float(point.value))


def configure(config: TelemetryConfig | None = None) -> Telemetry:
    """A :class:`Telemetry` for ``config``, or for the ``OTEL_*`` environment when None."""
    return Telemetry(config if config is not None else TelemetryConfig.from_env())


def pool_source(pool: Any, **attributes: str) -> Source:
    """Readings of an :class:`~reference_impl.pool.OrderedPool`'s levels."""

    def read() -> Iterable[Reading]:
        stats = pool.statistics()
        yield Reading("kernel.pool.active", stats.active, attributes)
        yield Reading("kernel.pool.queued", stats.queued, attributes)

    return read


def cache_source(cache: Any) -> Source:
    """Readings of a cache (anything whose ``statistics()`` is a ``CacheStatistics``)."""

    def read() -> Iterable[Reading]:
        stats = cache.statistics()
        attrs = {"cache": stats.name}
        yield Reading("runtime.cache.entries", stats.entries, attrs)
        yield Reading("runtime.cache.hits", stats.hits, attrs)
        yield Reading("runtime.cache.misses", stats.misses, attrs)
        yield Reading("runtime.cache.evictions", stats.evictions, attrs)

    return read


def scheduler_source(scheduler: Any) -> Source:
    """Readings of a kernel scheduler: totals, history length, its pool's levels."""

    def read() -> Iterable[Reading]:
        stats = scheduler.statistics()
        attrs = {"mode": stats.mode.value}
        yield Reading("kernel.scheduler.tasks.committed", stats.tasks_committed, attrs)
        yield Reading("kernel.scheduler.tasks.failed", stats.tasks_failed, attrs)
        yield Reading("runtime.history.length", stats.history_length, {"component": "scheduler"})
        if stats.pool is not None:
            yield Reading("kernel.pool.active", stats.pool.active, attrs)
            yield Reading("kernel.pool.queued", stats.pool.queued, attrs)

    return read


def graph_source(runner: Any) -> Source:
    """Readings of a graph runner: its history length, and its pools' levels (pooled mode)."""

    def read() -> Iterable[Reading]:
        stats = runner.statistics()
        attrs = {"mode": stats.mode.value}
        yield Reading("runtime.history.length", stats.history_length, {"component": "graph"})
        if stats.pool is not None:
            pool = {**attrs, "component": "graph"}
            yield Reading("kernel.pool.active", stats.pool.active, pool)
            yield Reading("kernel.pool.queued", stats.pool.queued, pool)

    return read


def mcp_source(adapter: Any) -> Source:
    """Readings of an MCP adapter: live contexts, denials by rule, hook cache counters."""

    def read() -> Iterable[Reading]:
        stats = adapter.statistics()
        yield Reading("kernel.mcp.contexts.live", stats.live_contexts, {"mode": stats.mode.value})
        for rule, count in stats.denials:
            yield Reading("kernel.tools.denials", count, {"rule": rule})
        hooks = {"cache": "hooks"}
        yield Reading("runtime.cache.hits", stats.hook_cache_hits, hooks)
        yield Reading("runtime.cache.misses", stats.hook_cache_misses, hooks)

    return read


def prp_source(runner: Any) -> Source:
    """Readings of a PRP runner: gate totals, spool concurrency, approval queue depth."""

    def read() -> Iterable[Reading]:
        stats = runner.statistics()
        attrs = {"mode": stats.mode.value}
        yield Reading("prp.gates.completed", stats.gates_committed, attrs)
        yield Reading("prp.gates.failed", stats.gates_failed, attrs)
        yield Reading("prp.gates.skipped", stats.gates_skipped, attrs)
        yield Reading("prp.spool.concurrency", stats.spool_concurrency, attrs)
        yield Reading("prp.approval.queue_depth", stats.approval_queue_depth, attrs)
        profile = {"cache": "profile"}
        yield Reading("runtime.cache.hits", stats.profile_cache_hits, profile)
        yield Reading("runtime.cache.misses", stats.profile_cache_misses, profile)

    return read
