"""Exact histograms: the hot path's buckets, and their export as the SDK's data points,
OTLP batches and Prometheus families.

The hot path counts every value into a :class:`HistogramSeries` (a bisect into explicit
bucket bounds, the sum, min and max, under one uncontended lock), never through the
OpenTelemetry SDK: one SDK ``Histogram.record`` costs 7-9 µs, and the SDK has no
pre-aggregated path. A :class:`HistogramStore` holds every series and one
:class:`HistogramView` per reader; at collection time it drains the series and hands
each reader its histograms as the SDK's own data classes (``Metric`` holding
``HistogramDataPoint``), which reach every reader:

* the in-memory reader, through :func:`with_histograms` (which adds them to the SDK's
  ``MetricsData``, in this runtime's scope :data:`SCOPE_NAME`);
* an OTLP exporter, through :class:`ExactExportingReader` (one ``export()`` per period
  carrying the SDK's observable points and the histograms together);
* a Prometheus endpoint, through :class:`PrometheusHistograms` (a ``prometheus_client``
  collector serving them as ``HistogramMetricFamily``, named and labelled as the
  OpenTelemetry Prometheus exporter would).

:class:`DisabledSeries` is the series of telemetry switched off: it drops its values.
:class:`reference_impl.telemetry.Telemetry` wires all of this to its configuration; this
module knows nothing of it (the bounds and the descriptions are handed in).

Guarantees of the histograms:

* every recorded value is counted exactly once by every reader: a histogram's
  count equals the number of values recorded, bucket by bucket (upper bounds
  inclusive, as in OpenTelemetry and Prometheus's ``le``);
* a cumulative reader's point is the whole run so far; a delta reader's point
  is exactly what was recorded since that reader's previous collection (a series
  with nothing new has no delta point), its start time being that collection's
  time;
* readers are independent: a delta OTLP export does not empty what the
  in-memory reader of the same :class:`~reference_impl.telemetry.Telemetry` will
  report;
* ``sum`` is the float sum of the values in the order recorded, per collection
  interval.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
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

__all__ = [
    "SCOPE_NAME",
    "DisabledSeries",
    "ExactExportingReader",
    "HistogramSeries",
    "HistogramStore",
    "HistogramView",
    "PrometheusHistograms",
    "with_histograms",
]

_LOG = logging.getLogger(__name__)

# The instrumentation scope of every instrument (Prometheus: otel_scope_name).
SCOPE_NAME = "agentbench.reference_impl"

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
    Get one from :meth:`reference_impl.telemetry.Telemetry.histogram`.
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


class DisabledSeries(HistogramSeries):
    """Telemetry off: values are dropped, as the no-op API drops them."""

    __slots__ = ()

    def record(self, value_s: float) -> None:
        del value_s

    def record_many(self, values_s: Sequence[float]) -> int:
        del values_s
        return 0


@dataclass(slots=True)
class HistogramView:
    """What one reader has been handed: running totals, or what is new since its last take."""

    temporality: AggregationTemporality
    start_ns: int
    tallies: dict[_SeriesKey, _Tally] = field(default_factory=dict)

    def add(self, key: _SeriesKey, tally: _Tally) -> None:
        earlier = self.tallies.get(key)
        self.tallies[key] = tally if earlier is None else earlier + tally


class HistogramStore:
    """Every histogram series, and one view of them per reader.

    A collection drains every series once and adds what it found to *every* view, so
    readers never take values from one another: a delta OTLP export leaves the
    cumulative in-memory view whole. ``bounds`` are every series' bucket upper bounds;
    ``descriptions`` give each histogram's description by name.
    """

    def __init__(self, bounds: tuple[float, ...], descriptions: Mapping[str, str]) -> None:
        self.bounds = bounds
        self.descriptions = descriptions
        self._series: dict[_SeriesKey, HistogramSeries] = {}
        self._views: list[HistogramView] = []
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

    def view(self, temporality: AggregationTemporality) -> HistogramView:
        """A new reader's view; it sees what is recorded from now on."""
        with self._lock:
            view = HistogramView(temporality, time.time_ns())
            self._views.append(view)
        return view

    def take(self, view: HistogramView) -> list[Metric]:
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
                description=self.descriptions[name],
                unit="s",
                data=Histogram(data_points=data_points, aggregation_temporality=view.temporality),
            )
            for name, data_points in points.items()
        ]


def with_histograms(
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


class ExactExportingReader(MetricReader):
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
        preferred_temporality: dict[type, AggregationTemporality],
        histograms: Callable[[], list[Metric]],
        resource: Resource,
        interval_s: float,
    ) -> None:
        super().__init__(preferred_temporality=preferred_temporality)
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
        batch = with_histograms(data, self._histograms(), self._resource)
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


class PrometheusHistograms:
    """A prometheus_client collector: the exact histograms, cumulative, at every scrape."""

    def __init__(self, histograms: Callable[[], list[Metric]]) -> None:
        self._histograms = histograms

    def collect(self) -> Iterator[HistogramMetricFamily]:
        for metric in self._histograms():
            yield _prometheus_family(metric)
