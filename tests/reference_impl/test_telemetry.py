"""Telemetry: instruments report what a known run did; levels are read at collection time."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from collections.abc import Iterable

import pytest

from reference_impl.cache import LRUCache
from reference_impl.errors import ConfigError
from reference_impl.kernel.graph import GraphRunner, GraphSpec
from reference_impl.kernel.scheduler import Scheduler, TaskSpec
from reference_impl.mode import Mode
from reference_impl.pool import OrderedPool
from reference_impl.telemetry import (
    COUNTERS,
    DURATION_BUCKETS_S,
    GAUGES,
    HISTOGRAMS,
    SAMPLE_LIMIT,
    Exporter,
    MetricPoint,
    Reading,
    Telemetry,
    TelemetryConfig,
    cache_source,
    graph_source,
    pool_source,
    scheduler_source,
)


def points_named(points: Iterable[MetricPoint], name: str) -> list[MetricPoint]:
    return [p for p in points if p.name == name]


def test_a_known_scheduler_run_is_reported_exactly() -> None:
    telemetry = Telemetry(TelemetryConfig(exporter=Exporter.MEMORY))
    scheduler = Scheduler(Mode.POOLED, max_concurrent=4, time_scale=0)
    telemetry.add_source(scheduler_source(scheduler))
    tasks = [TaskSpec(f"t{i}", i % 3, 0.0) for i in range(10)]
    result = asyncio.run(scheduler.run(tasks))
    telemetry.record_samples(
        "kernel.scheduler.task_duration", result.latencies_s, {"mode": "pooled"}
    )
    points = telemetry.collect()
    (committed,) = points_named(points, "kernel.scheduler.tasks.committed")
    assert committed.value == 10
    assert committed.attributes == {"mode": "pooled"}
    assert points_named(points, "kernel.scheduler.tasks.failed")[0].value == 0
    (history,) = points_named(points, "runtime.history.length")
    assert history.value == 10
    (durations,) = points_named(points, "kernel.scheduler.task_duration")
    assert durations.count == 10
    assert durations.sum == pytest.approx(sum(result.latencies_s))
    assert durations.bucket_bounds == DURATION_BUCKETS_S
    assert sum(durations.bucket_counts) == 10
    telemetry.shutdown()


def test_histograms_use_second_scale_buckets() -> None:
    telemetry = Telemetry()
    telemetry.record_samples("prp.gate.duration", [0.0003, 0.04, 180.0])
    (gate,) = points_named(telemetry.collect(), "prp.gate.duration")
    # 0.3 ms, 40 ms and 3 min land in three different buckets, not all in the first.
    assert sum(1 for c in gate.bucket_counts if c) == 3
    assert gate.unit == "s"
    telemetry.shutdown()


def test_a_batch_feeds_at_most_the_sample_limit() -> None:
    telemetry = Telemetry()
    recorded = telemetry.record_samples("kernel.pool.run_time", [0.001] * (SAMPLE_LIMIT * 5))
    assert recorded == SAMPLE_LIMIT
    (run_time,) = points_named(telemetry.collect(), "kernel.pool.run_time")
    assert run_time.count == SAMPLE_LIMIT
    telemetry.shutdown()


def test_observable_levels_are_read_at_collection_time() -> None:
    telemetry = Telemetry()
    pool: OrderedPool[int] = OrderedPool(3)
    telemetry.add_source(pool_source(pool, mode="pooled"))

    async def main() -> tuple[list[MetricPoint], list[MetricPoint]]:
        gate = asyncio.Event()

        async def job() -> int:
            await gate.wait()
            return 1

        runner = asyncio.create_task(pool.run([job] * 10))
        for _ in range(3):
            await asyncio.sleep(0)
        during = telemetry.collect()
        gate.set()
        await runner
        return during, telemetry.collect()

    during, after = asyncio.run(main())
    assert points_named(during, "kernel.pool.active")[0].value == 3
    assert points_named(during, "kernel.pool.queued")[0].value == 7
    assert points_named(after, "kernel.pool.active")[0].value == 0
    assert points_named(after, "kernel.pool.queued")[0].value == 0
    telemetry.shutdown()


def test_cache_counters_carry_the_cache_attribute() -> None:
    telemetry = Telemetry()
    cache: LRUCache[str, int] = LRUCache(1, name="hooks")
    telemetry.add_source(cache_source(cache))
    cache.put("a", 1)
    cache.get("a")
    cache.get("b")
    cache.put("b", 2)  # evicts a
    points = telemetry.collect()
    values = {p.name: p.value for p in points if p.attributes == {"cache": "hooks"}}
    assert values == {
        "runtime.cache.hits": 1,
        "runtime.cache.misses": 1,
        "runtime.cache.evictions": 1,
        "runtime.cache.entries": 1,
    }
    telemetry.shutdown()


def test_a_graph_runner_reports_its_bounded_history_and_idle_pools() -> None:
    telemetry = Telemetry()
    runner = GraphRunner(Mode.POOLED, GraphSpec(build_units=2, evaluation_samples=2))
    telemetry.add_source(graph_source(runner))

    async def main() -> None:
        for number in range(3):
            await runner.run(f"run-{number}")

    asyncio.run(main())
    points = telemetry.collect()
    (history,) = points_named(points, "runtime.history.length")
    assert history.attributes == {"component": "graph"}
    assert history.value == len(runner.history) == 3 * 7
    assert [p.value for p in points_named(points, "kernel.pool.active")] == [0]
    assert [p.value for p in points_named(points, "kernel.pool.queued")] == [0]
    telemetry.shutdown()


def test_the_hot_path_never_touches_the_sdk() -> None:
    """Running a pool between two collections records nothing until a collection asks."""
    reads = 0
    telemetry = Telemetry()

    def source() -> Iterable[Reading]:
        nonlocal reads
        reads += 1
        return [Reading("kernel.pool.active", 0)]

    telemetry.add_source(source)

    async def noop() -> int:
        return 1

    asyncio.run(OrderedPool[int](4).run([noop] * 1000))
    assert reads == 0
    telemetry.collect()
    assert reads == len(COUNTERS) + len(GAUGES)  # one read per observable callback
    telemetry.shutdown()


def test_telemetry_off_is_the_noop_api() -> None:
    telemetry = Telemetry(TelemetryConfig(exporter=Exporter.NONE))
    assert not telemetry.enabled
    assert telemetry.record_samples("prp.gate.duration", [1.0]) == 0
    assert telemetry.collect() == []
    assert set(telemetry.histograms) == set(HISTOGRAMS)
    telemetry.shutdown()


@pytest.mark.parametrize(
    ("env", "exporter"),
    [
        ({}, Exporter.MEMORY),
        ({"OTEL_METRICS_EXPORTER": "none"}, Exporter.NONE),
        ({"OTEL_METRICS_EXPORTER": "prometheus"}, Exporter.PROMETHEUS),
        ({"OTEL_METRICS_EXPORTER": "otlp"}, Exporter.OTLP_HTTP),
        (
            {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            Exporter.OTLP_GRPC,
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, Exporter.OTLP_HTTP),
    ],
)
def test_standard_otel_variables_choose_the_exporter(
    env: dict[str, str], exporter: Exporter
) -> None:
    assert TelemetryConfig.from_env(env).exporter is exporter


def test_bad_otel_variables_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="OTEL_METRICS_EXPORTER"):
        TelemetryConfig.from_env({"OTEL_METRICS_EXPORTER": "zipkin"})
    with pytest.raises(ConfigError, match="OTEL_METRIC_EXPORT_INTERVAL"):
        TelemetryConfig.from_env({"OTEL_METRIC_EXPORT_INTERVAL": "soon"})
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_PROMETHEUS_PORT"):
        TelemetryConfig.from_env({"OTEL_EXPORTER_PROMETHEUS_PORT": "99999"})
    assert TelemetryConfig.from_env({"OTEL_METRIC_EXPORT_INTERVAL": "500"}).export_interval_s == 0.5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_prometheus_endpoint_serves_and_shutdown_releases_the_port() -> None:
    port = _free_port()
    config = TelemetryConfig(exporter=Exporter.PROMETHEUS, prometheus_port=port)
    telemetry = Telemetry(config)
    telemetry.add_source(lambda: [Reading("prp.spool.concurrency", 3, {"mode": "pooled"})])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    assert 'prp_spool_concurrency{mode="pooled"' in body
    telemetry.shutdown()
    # The same port can serve again: the first endpoint is gone.
    again = Telemetry(config)
    again.shutdown()


def test_otlp_http_exports_to_a_collector_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real OTLP/HTTP export: a collector on 127.0.0.1 decodes names, units, temporality."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", raising=False)
    import http.server
    import threading

    received: list[tuple[str, bytes]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            received.append((self.path, self.rfile.read(length)))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            del format, args

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        config = TelemetryConfig(exporter=Exporter.OTLP_HTTP, endpoint=endpoint)
        telemetry = Telemetry(config, keep_in_memory=True)
        telemetry.record_samples("prp.gate.duration", [12.0, 180.0])
        assert points_named(telemetry.collect(), "prp.gate.duration")[0].count == 2
        telemetry.shutdown()  # flushes the periodic exporter
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert received, "the collector received nothing"
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )
    from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

    path, body = received[0]
    assert path == "/v1/metrics"
    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    metrics = {
        metric.name: metric
        for resource in request.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    gate = metrics["prp.gate.duration"]
    assert gate.unit == "s"
    # Delta temporality by default for OTLP (no OTEL_EXPORTER_OTLP_..._PREFERENCE set).
    assert (
        gate.histogram.aggregation_temporality
        == AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    )
    (point,) = gate.histogram.data_points
    assert point.count == 2
    assert point.sum == 192.0
    assert list(point.explicit_bounds) == list(DURATION_BUCKETS_S)
