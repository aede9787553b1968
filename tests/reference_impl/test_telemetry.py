"""Telemetry: instruments report what a known run did; levels are read at collection time.

Histograms are exact: every recorded value is in the exported buckets, checked against a
hand count (a plain loop over the bounds, not the module's bisect).
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import math
import operator
import re
import socket
import sys
import threading
import urllib.request
from collections.abc import Iterable, Iterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric as ProtoMetric

from reference_impl import virtual_time
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
    Exporter,
    MetricPoint,
    Reading,
    Telemetry,
    TelemetryConfig,
    Temporality,
    cache_source,
    graph_source,
    pool_source,
    scheduler_source,
)


def points_named(points: Iterable[MetricPoint], name: str) -> list[MetricPoint]:
    return [p for p in points if p.name == name]


def hand_buckets(values: Iterable[float]) -> list[int]:
    """Per-bucket counts by hand: bucket i holds bounds[i-1] < v <= bounds[i]; last: +Inf."""
    counts = [0] * (len(DURATION_BUCKETS_S) + 1)
    for value in values:
        counts[sum(1 for bound in DURATION_BUCKETS_S if bound < value)] += 1
    return counts


def ordered_sum(values: Iterable[float]) -> float:
    """The float sum in recording order (what the histogram promises, on any Python)."""
    return functools.reduce(operator.add, values, 0.0)


# Durations spread over the buckets, 50 µs to 400 s.
SPREAD_S = (0.00005, 0.0003, 0.002, 0.04, 0.3, 2.0, 45.0, 400.0)


def test_a_known_scheduler_run_is_reported_exactly() -> None:
    telemetry = Telemetry(TelemetryConfig(exporter=Exporter.MEMORY))
    scheduler = Scheduler(Mode.POOLED, max_concurrent=4, time_scale=1.0)
    telemetry.add_source(scheduler_source(scheduler))
    tasks = [TaskSpec(f"t{i}", i % 3, SPREAD_S[i % len(SPREAD_S)]) for i in range(60)]
    result = virtual_time.run(scheduler.run(tasks))
    latencies = list(result.latencies_s)
    assert telemetry.record_samples(
        "kernel.scheduler.task_duration", latencies, {"mode": "pooled"}
    ) == len(latencies)
    points = telemetry.collect()
    (committed,) = points_named(points, "kernel.scheduler.tasks.committed")
    assert committed.value == 60
    assert committed.attributes == {"mode": "pooled"}
    assert points_named(points, "kernel.scheduler.tasks.failed")[0].value == 0
    (history,) = points_named(points, "runtime.history.length")
    assert history.value == 60
    (durations,) = points_named(points, "kernel.scheduler.task_duration")
    assert durations.attributes == {"mode": "pooled"}
    assert durations.count == committed.value  # every task, not a sample of them
    assert durations.bucket_bounds == DURATION_BUCKETS_S
    assert list(durations.bucket_counts) == hand_buckets(latencies)
    assert sum(1 for c in durations.bucket_counts if c) >= 5  # the run spans the buckets
    assert durations.sum == ordered_sum(latencies)
    telemetry.shutdown()


def test_histograms_use_second_scale_buckets() -> None:
    telemetry = Telemetry()
    telemetry.record_samples("prp.gate.duration", [0.0003, 0.04, 180.0])
    (gate,) = points_named(telemetry.collect(), "prp.gate.duration")
    # 0.3 ms, 40 ms and 3 min land in three different buckets, not all in the first.
    assert sum(1 for c in gate.bucket_counts if c) == 3
    assert gate.unit == "s"
    telemetry.shutdown()


def test_upper_bounds_are_inclusive() -> None:
    """A value equal to a bound is in that bound's bucket (OpenTelemetry, Prometheus `le`)."""
    telemetry = Telemetry()
    series = telemetry.histogram("kernel.pool.run_time")
    for bound in DURATION_BUCKETS_S:
        series.record(bound)
    series.record(0.0)
    series.record(DURATION_BUCKETS_S[-1] * 2)
    (run_time,) = points_named(telemetry.collect(), "kernel.pool.run_time")
    assert list(run_time.bucket_counts) == [2] + [1] * (len(DURATION_BUCKETS_S) - 1) + [1]
    telemetry.shutdown()


def test_a_large_batch_is_counted_whole() -> None:
    """No sampling: five thousand values are five thousand counts, bucket by bucket."""
    telemetry = Telemetry()
    values = [SPREAD_S[(i * 7) % len(SPREAD_S)] * (1 + i % 3) for i in range(5000)]
    assert telemetry.record_samples("kernel.pool.run_time", values) == 5000
    (run_time,) = points_named(telemetry.collect(), "kernel.pool.run_time")
    assert run_time.count == 5000
    assert list(run_time.bucket_counts) == hand_buckets(values)
    assert run_time.sum == ordered_sum(values)
    telemetry.shutdown()


def test_delta_and_cumulative_across_two_collections() -> None:
    cumulative = Telemetry(TelemetryConfig(temporality=Temporality.CUMULATIVE))
    delta = Telemetry(TelemetryConfig(temporality=Temporality.DELTA))
    first, second = [0.003, 0.2, 0.2], [45.0]
    collected: dict[str, list[list[MetricPoint]]] = {"cumulative": [], "delta": []}
    for batch in (first, second, []):
        for key, telemetry in (("cumulative", cumulative), ("delta", delta)):
            telemetry.record_samples("prp.approval.wait", batch, {"mode": "pooled"})
            collected[key].append(points_named(telemetry.collect(), "prp.approval.wait"))
    totals = [p.count for (p,) in collected["cumulative"]]
    assert totals == [3, 4, 4]
    assert [list(p.bucket_counts) for (p,) in collected["cumulative"]] == [
        hand_buckets(first),
        hand_buckets(first + second),
        hand_buckets(first + second),
    ]
    (delta_first,), (delta_second,), nothing_new = collected["delta"]
    assert (delta_first.count, delta_first.sum) == (3, ordered_sum(first))
    assert list(delta_first.bucket_counts) == hand_buckets(first)
    assert (delta_second.count, delta_second.sum) == (1, 45.0)
    assert list(delta_second.bucket_counts) == hand_buckets(second)
    assert nothing_new == []  # a series with nothing new has no delta point
    cumulative.shutdown()
    delta.shutdown()


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(
        st.lists(
            st.one_of(
                st.sampled_from(DURATION_BUCKETS_S),
                st.floats(min_value=0.0, max_value=7200.0, allow_nan=False),
            ),
            max_size=30,
        ),
        max_size=6,
    )
)
def test_deltas_add_up_to_the_cumulative_whatever_the_batches(
    batches: list[list[float]],
) -> None:
    delta = Telemetry(TelemetryConfig(temporality=Temporality.DELTA))
    cumulative = Telemetry()
    delta_counts = [0] * (len(DURATION_BUCKETS_S) + 1)
    for batch in batches:
        for telemetry in (delta, cumulative):
            telemetry.record_samples("prp.gate.duration", batch)
        for point in points_named(delta.collect(), "prp.gate.duration"):
            delta_counts = [a + b for a, b in zip(delta_counts, point.bucket_counts, strict=True)]
    everything = [value for batch in batches for value in batch]
    assert delta_counts == hand_buckets(everything)
    final = points_named(cumulative.collect(), "prp.gate.duration")
    assert [list(p.bucket_counts) for p in final] == ([hand_buckets(everything)] * bool(everything))
    delta.shutdown()
    cumulative.shutdown()


def test_collections_racing_the_hot_path_lose_and_repeat_nothing() -> None:
    """A writer thread records while collections drain: the deltas sum to what was written."""
    telemetry = Telemetry(TelemetryConfig(temporality=Temporality.DELTA))
    series = telemetry.histogram("kernel.pool.commit_wait", {"mode": "pooled"})
    values = [SPREAD_S[i % len(SPREAD_S)] for i in range(40_000)]
    half_written, resume, done = threading.Event(), threading.Event(), threading.Event()

    def write(part: Sequence[float]) -> None:
        for start in range(0, len(part), 100):
            series.record_many(part[start : start + 50])
            for value in part[start + 50 : start + 100]:
                series.record(value)

    def writer() -> None:
        write(values[: len(values) // 2])
        half_written.set()
        resume.wait(timeout=30)  # until a collection has run between the halves
        write(values[len(values) // 2 :])
        done.set()

    thread = threading.Thread(target=writer)
    counts = [0] * (len(DURATION_BUCKETS_S) + 1)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: more interleavings
    try:
        thread.start()
        while True:
            finished, halfway = done.is_set(), half_written.is_set()
            for point in points_named(telemetry.collect(), "kernel.pool.commit_wait"):
                counts = [a + b for a, b in zip(counts, point.bucket_counts, strict=True)]
            if halfway:
                resume.set()
            if finished:
                break
        thread.join(timeout=30)
    finally:
        sys.setswitchinterval(interval)
    assert counts == hand_buckets(values)
    telemetry.shutdown()


def test_one_series_per_name_and_attributes() -> None:
    telemetry = Telemetry()
    pooled = telemetry.histogram("kernel.pool.queue_wait", {"mode": "pooled"})
    assert telemetry.histogram("kernel.pool.queue_wait", {"mode": "pooled"}) is pooled
    pooled.record(0.001)
    telemetry.histogram("kernel.pool.queue_wait", {"mode": "legacy"}).record(0.5)
    points = points_named(telemetry.collect(), "kernel.pool.queue_wait")
    assert {(p.attributes["mode"], p.count) for p in points} == {("pooled", 1), ("legacy", 1)}
    with pytest.raises(ConfigError, match=r"unknown histogram 'kernel\.pool\.wait'"):
        telemetry.histogram("kernel.pool.wait")
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
    telemetry.histogram("prp.gate.duration").record(1.0)
    assert telemetry.collect() == []
    with pytest.raises(ConfigError, match="unknown histogram"):
        telemetry.histogram("prp.gate.durations")
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


def test_temporality_follows_the_standard_variable_for_otlp_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    variable = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
    monkeypatch.delenv(variable, raising=False)
    otlp = {"OTEL_METRICS_EXPORTER": "otlp"}
    assert TelemetryConfig.from_env(otlp).resolved_temporality() is Temporality.DELTA
    assert TelemetryConfig().resolved_temporality() is Temporality.CUMULATIVE  # in memory
    for value, expected in (
        ("Cumulative", Temporality.CUMULATIVE),
        ("lowmemory", Temporality.LOWMEMORY),
    ):
        config = TelemetryConfig.from_env({**otlp, variable: value})
        assert config.temporality is expected
        assert config.resolved_temporality() is expected
    # The in-memory reader ignores an OTLP preference.
    assert TelemetryConfig.from_env({variable: "delta"}).temporality is None
    monkeypatch.setenv(variable, "cumulative")  # read at construction when not configured
    assert TelemetryConfig(exporter=Exporter.OTLP_HTTP).resolved_temporality() is (
        Temporality.CUMULATIVE
    )
    with pytest.raises(ConfigError, match=variable):
        TelemetryConfig.from_env({**otlp, variable: "sometimes"})
    prometheus = TelemetryConfig(exporter=Exporter.PROMETHEUS, temporality=Temporality.DELTA)
    with pytest.raises(ConfigError, match=r"TelemetryConfig\.temporality: delta with the"):
        Telemetry(prometheus)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body: str = response.read().decode()
        return body


def _exposed_buckets(body: str, family: str, mode: str) -> list[tuple[str, float]]:
    """The (le, value) pairs of one series' _bucket lines, in exposition order."""
    pattern = rf'^{family}_bucket{{(?=[^}}]*mode="{mode}")[^}}]*le="([^"]+)"[^}}]*}} (\S+)$'
    return [(le, float(value)) for le, value in re.findall(pattern, body, re.MULTILINE)]


def test_prometheus_endpoint_serves_exact_cumulative_buckets() -> None:
    port = _free_port()
    config = TelemetryConfig(exporter=Exporter.PROMETHEUS, prometheus_port=port)
    telemetry = Telemetry(config)
    telemetry.add_source(lambda: [Reading("prp.spool.concurrency", 3, {"mode": "pooled"})])
    first = [SPREAD_S[i % len(SPREAD_S)] for i in range(2000)]
    second = [0.3] * 5
    telemetry.record_samples("prp.gate.duration", first, {"mode": "pooled"})
    telemetry.record_samples("prp.gate.duration", [1.0], {"mode": "legacy", "gate.kind": "x"})
    body = _scrape(port)
    assert 'prp_spool_concurrency{mode="pooled"' in body
    family = "prp_gate_duration_seconds"
    assert f"# TYPE {family} histogram" in body
    # Labels as the OpenTelemetry exporter writes them: sanitised, scope, "" when missing.
    assert re.search(
        rf'^{family}_count{{gate_kind="",mode="pooled",otel_scope_name="agentbench.reference_impl"'
        r',otel_scope_schema_url="",otel_scope_version=""} 2000\.0$',
        body,
        re.MULTILINE,
    ), body
    assert f'{family}_count{{gate_kind="x",mode="legacy"' in body
    telemetry.record_samples("prp.gate.duration", second, {"mode": "pooled"})
    body = _scrape(port)  # cumulative: the second scrape holds both batches
    buckets = _exposed_buckets(body, family, "pooled")
    expected = [f"{bound}" for bound in DURATION_BUCKETS_S] + ["+Inf"]
    assert [le for le, _ in buckets] == expected
    below = 0
    for (_, value), count in zip(buckets, hand_buckets(first + second), strict=True):
        below += count
        assert value == below
    sums = re.findall(rf'^{family}_sum{{[^}}]*mode="pooled"[^}}]*}} (\S+)$', body, re.MULTILINE)
    assert [float(v) for v in sums] == [ordered_sum(first) + ordered_sum(second)]
    telemetry.shutdown()
    # The same port can serve again: the first endpoint is gone.
    again = Telemetry(config)
    again.shutdown()


class _Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP collector: keeps every request's path and body, answers 200."""

    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.received.append((self.path, self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        del format, args


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """An OTLP/HTTP collector on 127.0.0.1: its endpoint and the requests it received."""
    received: list[tuple[str, bytes]] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _decoded(body: bytes) -> dict[str, ProtoMetric]:
    """The metrics of one OTLP export request, by name."""
    request = ExportMetricsServiceRequest()
    request.ParseFromString(body)
    return {
        metric.name: metric
        for resource in request.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


@pytest.mark.parametrize("temporality", [Temporality.DELTA, Temporality.CUMULATIVE])
def test_otlp_http_exports_exact_histograms_to_a_collector_on_loopback(
    collector: tuple[str, list[tuple[str, bytes]]], temporality: Temporality
) -> None:
    """A real OTLP/HTTP export, decoded: exact buckets, sum, min, max, and temporality.

    The first export has no observable points (no source yet): the histograms go alone.
    The second carries both in one request. The in-memory reader beside it still sees
    every value, whatever the OTLP temporality.
    """
    endpoint, received = collector
    config = TelemetryConfig(
        exporter=Exporter.OTLP_HTTP,
        endpoint=endpoint,
        export_interval_s=math.inf,  # exports on flush and shutdown only
        temporality=temporality,
    )
    telemetry = Telemetry(config, keep_in_memory=True)
    first = [12.0, 180.0, 0.0002, 0.0002, 3600.0, 5000.0]
    telemetry.record_samples("prp.gate.duration", first, {"mode": "pooled"})
    telemetry.flush()
    telemetry.add_source(lambda: [Reading("prp.gates.completed", 7, {"mode": "pooled"})])
    second = [0.04]
    telemetry.record_samples("prp.gate.duration", second, {"mode": "pooled"})
    telemetry.flush()
    (in_memory,) = points_named(telemetry.collect(), "prp.gate.duration")
    assert list(in_memory.bucket_counts) == hand_buckets(first + second)
    telemetry.shutdown()  # one last export: nothing new for the histogram

    assert [path for path, _ in received] == ["/v1/metrics"] * 3
    one, two, last = (_decoded(body) for _, body in received)
    assert set(one) == {"prp.gate.duration"}
    assert set(two) == {"prp.gate.duration", "prp.gates.completed"}
    gate_one, gate_two = one["prp.gate.duration"], two["prp.gate.duration"]
    assert gate_one.unit == "s"
    assert gate_one.description == "Quality gate duration"
    (p1,) = gate_one.histogram.data_points
    (p2,) = gate_two.histogram.data_points
    assert {kv.key: kv.value.string_value for kv in p1.attributes} == {"mode": "pooled"}
    assert list(p1.explicit_bounds) == list(DURATION_BUCKETS_S)
    assert (p1.count, list(p1.bucket_counts)) == (len(first), hand_buckets(first))
    assert (p1.sum, p1.min, p1.max) == (ordered_sum(first), 0.0002, 5000.0)
    if temporality is Temporality.DELTA:
        expected = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
        assert (p2.count, list(p2.bucket_counts)) == (1, hand_buckets(second))
        assert (p2.sum, p2.min, p2.max) == (0.04, 0.04, 0.04)
        assert p2.start_time_unix_nano == p1.time_unix_nano  # starts where the last ended
        assert "prp.gate.duration" not in last  # nothing new: no delta point
    else:
        expected = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
        assert (p2.count, list(p2.bucket_counts)) == (7, hand_buckets(first + second))
        assert (p2.sum, p2.min, p2.max) == (ordered_sum(first) + 0.04, 0.0002, 5000.0)
        assert p2.start_time_unix_nano == p1.start_time_unix_nano
        assert last["prp.gate.duration"].histogram.data_points[0].count == 7
    assert gate_one.histogram.aggregation_temporality == expected
    assert gate_two.histogram.aggregation_temporality == expected


def test_the_periodic_export_has_its_own_thread_until_shutdown(
    collector: tuple[str, list[tuple[str, bytes]]],
) -> None:
    endpoint, received = collector
    config = TelemetryConfig(exporter=Exporter.OTLP_HTTP, endpoint=endpoint, export_interval_s=0.01)
    telemetry = Telemetry(config)
    telemetry.record_samples("prp.run.duration", [420.0])

    def exporters() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "agentbench-metrics"]

    assert len(exporters()) == 1
    for _ in range(1000):  # bounded: at most about ten seconds
        if received:
            break
        threading.Event().wait(0.01)
    telemetry.shutdown()
    assert exporters() == []
    counts = [
        point.count
        for _, body in received
        if "prp.run.duration" in (metrics := _decoded(body))
        for point in metrics["prp.run.duration"].histogram.data_points
    ]
    assert counts == [1]  # delta: exported once, by the thread or at shutdown
