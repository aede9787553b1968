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

The exact histograms are :mod:`reference_impl.histograms`; its docstring states their
guarantees (every value counted exactly once by every reader, cumulative and delta
readers, readers independent of one another).

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
``OTEL_SERVICE_NAME``) are honoured when no argument overrides them
(:mod:`reference_impl.telemetry_config`; the histograms' own machinery and guarantees
are :mod:`reference_impl.histograms`).

Why one module: what stays is the catalogue of every instrument (names, units,
descriptions: what the dashboards and their tests read), the one class that creates
them from it and wires the readers, and the sources its observable callbacks read,
each a few lines over one component's ``statistics()``. The catalogue and the class
change together whenever an instrument is added.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import (
    MeterProvider,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExporter,
    MetricReader,
)
from opentelemetry.sdk.resources import Resource

from reference_impl.errors import ConfigError
from reference_impl.histograms import (
    SCOPE_NAME,
    DisabledSeries,
    ExactExportingReader,
    HistogramSeries,
    HistogramStore,
    HistogramView,
    PrometheusHistograms,
    with_histograms,
)
from reference_impl.telemetry_config import OTLP_EXPORTERS, Exporter, TelemetryConfig, Temporality

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
        self._histograms = HistogramStore(DURATION_BUCKETS_S, HISTOGRAMS)
        self._resource = Resource.create({"service.name": self.config.service_name})
        self._memory: InMemoryMetricReader | None = None
        self._memory_view: HistogramView | None = None
        self._periodic: ExactExportingReader | None = None
        self._served: tuple[Any, threading.Thread] | None = None
        readers: list[MetricReader] = []
        exporter = self.config.exporter
        if exporter is Exporter.MEMORY or (keep_in_memory and self.enabled):
            memory = temporality if exporter is Exporter.MEMORY else Temporality.CUMULATIVE
            self._memory = InMemoryMetricReader(preferred_temporality=memory.by_instrument())
            self._memory_view = self._histograms.view(memory.histograms)
            readers.append(self._memory)
        if exporter in OTLP_EXPORTERS:
            view = self._histograms.view(temporality.histograms)
            self._periodic = ExactExportingReader(
                _otlp_exporter(self.config, temporality),
                temporality.by_instrument(),
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
            return DisabledSeries(name, attributes or {}, DURATION_BUCKETS_S)
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
        data = with_histograms(
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
        registry.register(PrometheusHistograms(functools.partial(self._histograms.take, view)))
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
