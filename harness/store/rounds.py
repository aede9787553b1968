"""A run's per-round values as the history store keeps them, and the bundle rebuilt from them.

What is kept is what :func:`harness.judge.rounds.metric_rounds` and the report
read: every :class:`~workloads.samples.MetricSamples` of the bundle, and every
pyperf run's values of each benchmark the manifest lists. A *series* is one row:

* ``sample_series``: one per (workload, metric, unit, clock): its rounds' ids,
  their positions among the bundle's samples and their value counts (the
  *layout*), and every value of every round (the *packed values*);
* ``pyperf_series``: one per benchmark: the value count of each pyperf run, and
  the values. A run without values (a calibration-only run) is not kept: every
  reader skips those.

Packed values are float64 little-endian, byte-shuffled (byte k of every value
together: the sign and exponent bytes repeat, and the low mantissa bytes of a
``perf_counter`` difference are mostly zeros) then zlib-compressed: about half
the raw size for wall-clock latencies, a few bytes for trace-clock values.
A layout, and the run's manifest, are zlib-compressed JSON. :func:`workload_stats`
summarises the same values per (workload, metric) for the ``workload_stats`` table.

Guarantees: :func:`rebuild` gives back the bundle's manifest, samples (same
order, bit-identical values) and a pyperf suite with the same runs' values, so
every comparison of the rebuilt bundle equals that of the original. The bundle's
OpenTelemetry points and profiles are not kept (the rebuilt bundle has none).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast, get_args

import msgspec
import numpy as np
import pyperf

from harness.bundle.files import SCHEMA_VERSION as BUNDLE_SCHEMA
from harness.bundle.files import Bundle, Manifest
from harness.bundle.verdicts import Statistic, statistic_of
from harness.errors import BundleError
from workloads.samples import ClockName, MetricSamples

__all__ = [
    "PyperfSeries",
    "SampleSeries",
    "pack_manifest",
    "pack_values",
    "pyperf_series",
    "rebuild",
    "sample_series",
    "unpack_values",
    "workload_stats",
]

_FLOAT = np.dtype("<f8")
_CLOCKS: tuple[str, ...] = get_args(ClockName)


class _Layout(msgspec.Struct, frozen=True):
    counts: list[int]
    rounds: list[str] = []
    positions: list[int] = []


@dataclass(frozen=True, slots=True)
class SampleSeries:
    """Every round of one metric of one workload (one ``sample_series`` row)."""

    workload: str
    metric: str
    unit: str
    clock: str
    layout: bytes
    packed_values: bytes


@dataclass(frozen=True, slots=True)
class PyperfSeries:
    """Every pyperf run of one benchmark (one ``pyperf_series`` row)."""

    position: int
    workload: str
    benchmark: str
    unit: str
    layout: bytes
    packed_values: bytes


def pack_values(values: Iterable[float]) -> bytes:
    """``values`` as shuffled, compressed float64 (see the module's docstring)."""
    array = np.ascontiguousarray(np.fromiter(values, dtype=_FLOAT))
    return zlib.compress(array.view(np.uint8).reshape(-1, _FLOAT.itemsize).T.tobytes())


def unpack_values(blob: bytes) -> tuple[float, ...]:
    """The values :func:`pack_values` packed (ValueError or zlib.error when damaged)."""
    raw = zlib.decompress(blob)
    if len(raw) % _FLOAT.itemsize:
        raise ValueError(f"{len(raw)} bytes is not a whole number of float64 values")
    shuffled = np.frombuffer(raw, dtype=np.uint8).reshape(_FLOAT.itemsize, -1)
    values: list[float] = np.ascontiguousarray(shuffled.T).view(_FLOAT).ravel().tolist()
    return tuple(values)


def workload_stats(samples: Iterable[MetricSamples]) -> list[tuple[Any, ...]]:
    """Per (workload, metric): workload, metric, unit, clock, n, p50, p95, p99, median, mean."""
    grouped: dict[tuple[str, str], tuple[str, str, list[float]]] = {}
    for sample in samples:
        key = (sample.workload, sample.metric)
        grouped.setdefault(key, (sample.unit, sample.clock, []))[2].extend(sample.values)
    rows: list[tuple[Any, ...]] = []
    for (workload, metric), (unit, clock, values) in sorted(grouped.items()):
        if not values:
            continue
        array = np.asarray(values, dtype=float)
        stats = [
            statistic_of(array, s)
            for s in (Statistic.P50, Statistic.P95, Statistic.P99, Statistic.MEDIAN, Statistic.MEAN)
        ]
        rows.append((workload, metric, unit, clock, len(values), *stats))
    return rows


def _layout(layout: _Layout) -> bytes:
    return zlib.compress(msgspec.json.encode(layout))


def sample_series(samples: Sequence[MetricSamples]) -> list[SampleSeries]:
    """The bundle's samples as series, in the order their first round appears."""
    grouped: dict[tuple[str, str, str, str], list[tuple[int, MetricSamples]]] = {}
    for position, sample in enumerate(samples):
        key = (sample.workload, sample.metric, sample.unit, sample.clock)
        grouped.setdefault(key, []).append((position, sample))
    return [
        SampleSeries(
            *key,
            layout=_layout(
                _Layout(
                    counts=[len(sample.values) for _, sample in rounds],
                    rounds=[sample.round for _, sample in rounds],
                    positions=[position for position, _ in rounds],
                )
            ),
            packed_values=pack_values(v for _, sample in rounds for v in sample.values),
        )
        for key, rounds in grouped.items()
    ]


def pyperf_series(bundle: Bundle) -> list[PyperfSeries]:
    """Each benchmark of the manifest's workloads: its runs' values, in manifest order."""
    by_name = {bench.get_name(): bench for bench in bundle.suite}
    series: list[PyperfSeries] = []
    for workload in bundle.manifest.workloads:
        for name in workload.benchmarks:
            bench = by_name[name]
            runs = [[float(v) for v in run.values] for run in bench.get_runs()]
            runs = [values for values in runs if values]
            series.append(
                PyperfSeries(
                    position=len(series),
                    workload=workload.name,
                    benchmark=name,
                    unit=str(bench.get_unit()),
                    layout=_layout(_Layout(counts=[len(values) for values in runs])),
                    packed_values=pack_values(v for values in runs for v in values),
                )
            )
    return series


def _split(
    layout_blob: bytes, packed: bytes, where: str
) -> tuple[_Layout, list[tuple[float, ...]]]:
    try:
        layout = msgspec.json.decode(zlib.decompress(layout_blob), type=_Layout)
        values = unpack_values(packed)
    except (zlib.error, ValueError, msgspec.DecodeError) as exc:
        raise BundleError(f"stored values unreadable: {exc}", where=where) from None
    counts = layout.counts
    shapes_agree = not layout.rounds or len(layout.rounds) == len(layout.positions) == len(counts)
    if not shapes_agree or sum(counts) != len(values) or min(counts, default=0) < 0:
        raise BundleError(
            f"stored layout of {len(counts)} rounds does not fit {len(values)} values",
            where=where,
        )
    starts = np.cumsum([0, *counts[:-1]]).tolist() if counts else []
    return layout, [values[start : start + n] for start, n in zip(starts, counts, strict=True)]


def pack_manifest(manifest: Manifest) -> bytes:
    """``manifest`` as zlib-compressed msgspec JSON (a rigorous run's: 17 kB to 3 kB)."""
    return zlib.compress(msgspec.json.encode(manifest))


def _manifest(blob: bytes, where: str) -> Manifest:
    try:
        manifest = msgspec.json.decode(zlib.decompress(blob), type=Manifest)
    except (zlib.error, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BundleError(f"stored manifest unreadable: {exc}", where=where) from None
    if manifest.schema != BUNDLE_SCHEMA:
        raise BundleError(
            f"stored manifest of bundle schema {manifest.schema}",
            where=where,
            expected=f"bundle schema {BUNDLE_SCHEMA}",
        )
    return manifest


def _suite(series: Sequence[PyperfSeries], manifest: Manifest, where: str) -> Any:
    benchmarks = []
    for row in series:
        _, runs = _split(row.layout, row.packed_values, f"{where}, benchmark {row.benchmark}")
        metadata = {"name": row.benchmark, "unit": row.unit}
        try:
            benchmarks.append(
                pyperf.Benchmark(
                    [
                        pyperf.Run(values, metadata=metadata, collect_metadata=False)
                        for values in runs
                    ]
                )
            )
        except ValueError as exc:
            raise BundleError(
                f"stored pyperf values of benchmark {row.benchmark} unusable: {exc}",
                where=where,
                expected="at least one run of positive values",
            ) from None
    stored = {row.benchmark for row in series}
    missing = [b for w in manifest.workloads for b in w.benchmarks if b not in stored]
    if missing or not benchmarks:
        raise BundleError(
            "no stored pyperf values of benchmark(s) " + (", ".join(missing) or "(none listed)"),
            where=where,
            expected="every benchmark the manifest lists",
        )
    return pyperf.BenchmarkSuite(benchmarks)


def rebuild(
    path: Path,
    manifest: bytes,
    samples: Sequence[SampleSeries],
    pyperf_runs: Sequence[PyperfSeries],
    where: str,
) -> Bundle:
    """The bundle stored as these rows (``where`` names the store and run in errors)."""
    loaded = _manifest(manifest, where)
    placed: dict[int, MetricSamples] = {}
    stored = 0
    for row in samples:
        row_where = f"{where}, {row.workload}/{row.metric}"
        if row.clock not in _CLOCKS:
            raise BundleError(
                f"stored clock {row.clock!r}", where=row_where, expected=" or ".join(_CLOCKS)
            )
        layout, rounds = _split(row.layout, row.packed_values, row_where)
        if len(layout.rounds) != len(rounds):
            raise BundleError("stored rounds without their ids", where=row_where)
        stored += len(rounds)
        for position, round_id, values in zip(layout.positions, layout.rounds, rounds, strict=True):
            placed[position] = MetricSamples(
                row.workload, row.metric, round_id, row.unit, cast(ClockName, row.clock), values
            )
    if len(placed) != stored or sorted(placed) != list(range(stored)):
        raise BundleError("stored sample positions are not 0..n-1", where=where)
    return Bundle(
        path=path,
        manifest=loaded,
        suite=_suite(pyperf_runs, loaded, where),
        samples=tuple(placed[position] for position in range(len(placed))),
        metrics=(),
    )
