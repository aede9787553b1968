"""OpenTelemetry metrics for the reference runtime, paid for off the hot path.

One place configures a ``MeterProvider`` (:func:`configure`), creates every
instrument once (:class:`Telemetry`), and feeds them without the runtime ever
calling the SDK per item:

* **Levels** (pool active/queued, live MCP contexts, history length, cache
  entries, spool concurrency, approval queue depth) and **totals** (tasks
  committed, cache hits, gates, retries, denials) are *observable* instruments.
  Their callbacks read the components' ``statistics()`` snapshots at collection
  time, through the :class:`Reading` sources registered with
  :meth:`Telemetry.add_source`. No runtime code updates them.
* **Distributions** (durations, waits) are histograms in seconds, fed by
  :meth:`Telemetry.record_samples` once per committed batch or run, from a
  bounded sample: at most :data:`SAMPLE_LIMIT` values per call, taken at an even
  stride, so the cost of a batch is bounded whatever its size. Exact counts come
  from the observable counters, never from the histogram sample.

Names follow ``component.object.measure``; durations are seconds with explicit
bucket boundaries from 100 µs to one hour (the SDK's defaults suit
milliseconds: in seconds every sample would land in the first bucket).

Exporters: ``none`` (the no-op API: telemetry off, to measure its cost),
``memory`` (the embedded default: an in-memory reader, nothing to start),
``otlp-http``, ``otlp-grpc`` (delta temporality unless
``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` says otherwise) and
``prometheus`` (a pull endpoint, cumulative). The standard ``OTEL_*`` variables
(``OTEL_METRICS_EXPORTER``, ``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_PROTOCOL``, ``OTEL_METRIC_EXPORT_INTERVAL``,
``OTEL_EXPORTER_PROMETHEUS_HOST``/``PORT``, ``OTEL_SERVICE_NAME``) are honoured
when no argument overrides them.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from reference_impl.errors import ConfigError

__all__ = [
    "COUNTERS",
    "DURATION_BUCKETS_S",
    "GAUGES",
    "HISTOGRAMS",
    "SAMPLE_LIMIT",
    "Exporter",
    "MetricPoint",
    "Reading",
    "Telemetry",
    "TelemetryConfig",
    "cache_source",
    "configure",
    "graph_source",
    "mcp_source",
    "pool_source",
    "prp_source",
    "scheduler_source",
]

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

# The largest number of values one record_samples call feeds into a histogram.
SAMPLE_LIMIT = 1024

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


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    """How to export. ``None`` fields are taken from the ``OTEL_*`` environment."""

    exporter: Exporter = Exporter.MEMORY
    endpoint: str | None = None
    prometheus_host: str = "127.0.0.1"
    prometheus_port: int = 9464
    export_interval_s: float | None = None
    service_name: str = "agentbench-reference"

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
        interval = env.get("OTEL_METRIC_EXPORT_INTERVAL")
        port = env.get("OTEL_EXPORTER_PROMETHEUS_PORT", "9464")
        try:
            interval_s = float(interval) / 1000.0 if interval else None
        except ValueError:
            raise ConfigError(
                "OTEL_METRIC_EXPORT_INTERVAL", f"{interval!r} is not a number of milliseconds"
            ) from None
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError("OTEL_EXPORTER_PROMETHEUS_PORT", f"{port!r} is not a port number")
        return cls(
            exporter=exporter,
            endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            prometheus_host=env.get("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1"),
            prometheus_port=int(port),
            export_interval_s=interval_s,
            service_name=env.get("OTEL_SERVICE_NAME", "agentbench-reference"),
        )


def _delta_unless_env() -> dict[type, AggregationTemporality] | None:
    """Delta temporality for OTLP, unless the user's environment prefers another."""
    if os.environ.get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"):
        return None  # the exporter reads the variable itself
    delta = AggregationTemporality.DELTA
    cumulative = AggregationTemporality.CUMULATIVE
    return {
        Counter: delta,
        UpDownCounter: cumulative,
        Histogram: delta,
        ObservableCounter: delta,
        ObservableUpDownCounter: cumulative,
        ObservableGauge: cumulative,
    }


def _make_reader(config: TelemetryConfig) -> MetricReader | None:
    interval_ms = None if config.export_interval_s is None else config.export_interval_s * 1000
    if config.exporter is Exporter.MEMORY:
        return InMemoryMetricReader()
    if config.exporter is Exporter.OTLP_HTTP:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HttpExporter,
        )

        endpoint = config.endpoint
        if endpoint and not endpoint.rstrip("/").endswith("/v1/metrics"):
            endpoint = endpoint.rstrip("/") + "/v1/metrics"
        http = HttpExporter(endpoint=endpoint, preferred_temporality=_delta_unless_env())
        return PeriodicExportingMetricReader(http, export_interval_millis=interval_ms)
    if config.exporter is Exporter.OTLP_GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcExporter,
        )

        grpc = GrpcExporter(endpoint=config.endpoint, preferred_temporality=_delta_unless_env())
        return PeriodicExportingMetricReader(grpc, export_interval_millis=interval_ms)
    if config.exporter is Exporter.PROMETHEUS:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry()
        reader = PrometheusMetricReader(registry=registry)
        server, thread = start_http_server(
            config.prometheus_port, addr=config.prometheus_host, registry=registry
        )
        _PROMETHEUS_SERVERS[id(reader)] = (server, thread)
        return reader
    return None


# The pull endpoint of each Prometheus reader, closed by Telemetry.shutdown().
_PROMETHEUS_SERVERS: dict[int, tuple[Any, Any]] = {}


class Telemetry:
    """Every instrument, created once, and the sources its observable callbacks read.

    With ``Exporter.NONE`` the instruments come from the no-op API: recording and
    collection cost (almost) nothing, which is how telemetry's own cost is measured.
    ``keep_in_memory`` adds an in-memory reader beside another exporter, so that
    :meth:`collect` sees what was exported (the harness stores it in the bundle).
    """

    def __init__(
        self, config: TelemetryConfig | None = None, *, keep_in_memory: bool = False
    ) -> None:
        self.config = config or TelemetryConfig()
        self._sources: list[Source] = []
        self._reader = _make_reader(self.config)
        self._memory: InMemoryMetricReader | None = (
            self._reader if isinstance(self._reader, InMemoryMetricReader) else None
        )
        readers: list[MetricReader] = [] if self._reader is None else [self._reader]
        if keep_in_memory and self._reader is not None and self._memory is None:
            self._memory = InMemoryMetricReader()
            readers.append(self._memory)
        self._provider: MeterProvider | None = None
        meter: Meter
        if self._reader is None:
            meter = otel_metrics.NoOpMeter("agentbench")
        else:
            views = [
                View(
                    instrument_name=name,
                    aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS_S),
                )
                for name in HISTOGRAMS
            ]
            self._provider = MeterProvider(
                metric_readers=readers,
                views=views,
                resource=Resource.create({"service.name": self.config.service_name}),
            )
            meter = self._provider.get_meter("agentbench.reference_impl")
        self.enabled = self._reader is not None
        self.histograms = {
            name: meter.create_histogram(name, unit="s", description=text)
            for name, text in HISTOGRAMS.items()
        }
        for name, (unit, text) in COUNTERS.items():
            meter.create_observable_counter(
                name, callbacks=[self._callback(name)], unit=unit, description=text
            )
        for name, (unit, text) in GAUGES.items():
            meter.create_observable_gauge(
                name, callbacks=[self._callback(name)], unit=unit, description=text
            )

    def add_source(self, source: Source) -> None:
        """Register a component's readings; they are read at every collection."""
        self._sources.append(source)

    def remove_source(self, source: Source) -> None:
        """Stop reading a source (a finished component)."""
        self._sources.remove(source)

    def record_samples(
        self, name: str, samples_s: Sequence[float], attributes: Mapping[str, str] | None = None
    ) -> int:
        """Feed a histogram from a batch's samples (seconds); how many were recorded.

        At most :data:`SAMPLE_LIMIT` values, taken at an even stride over the batch,
        so a batch's telemetry cost is bounded whatever its size.
        """
        if not self.enabled or not samples_s:
            return 0
        histogram = self.histograms[name]
        stride = max(1, -(-len(samples_s) // SAMPLE_LIMIT))
        attrs = dict(attributes or {})
        recorded = 0
        for value in samples_s[::stride]:
            histogram.record(value, attrs)
            recorded += 1
        return recorded

    def collect(self) -> list[MetricPoint]:
        """The points collected now (memory exporter or ``keep_in_memory``; else empty)."""
        if self._memory is None:
            return []
        data = self._memory.get_metrics_data()
        points: list[MetricPoint] = []
        if data is None:
            return points
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    points.extend(_points_of(metric))
        return points

    def shutdown(self) -> None:
        """Flush pending exports and stop the provider (idempotent)."""
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = None
        served = _PROMETHEUS_SERVERS.pop(id(self._reader), None)
        if served is not None:
            server, thread = served
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

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
