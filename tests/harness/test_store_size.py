"""What a run adds to the history store, on synthetic bundles shaped like real runs.

:func:`synthetic_bundle` builds a run of every registered workload with a profile's
rounds (processes x values) and each metric's ``per_round`` values, pyperf runs of
the profile's shape, a verdict per target of ``workloads/targets.toml`` and a
rigorous run's 57 replay results. Wall-clock values are multiples of 2**-36 s, as
``perf_counter`` differences are a day after boot; trace-clock values repeat, as
virtual-clock figures do.

``python -m tests.harness.test_store_size`` prints the bytes a run adds.
"""

from __future__ import annotations

import dataclasses
import math
import sqlite3
import tempfile
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import numpy as np

from harness.bundle.files import (
    SAMPLES,
    Determinism,
    DeterminismStatus,
    Interleaving,
    Manifest,
    ProfileRecord,
    WorkloadRun,
    load_bundle,
    write_bundle,
)
from harness.bundle.verdicts import TargetOutcome, Verdict
from harness.judge.targets import load_targets
from harness.judge.verdict import evaluate, measurement_of
from harness.store.db import HistoryStore
from workloads import registry
from workloads.samples import MetricSamples

from ._bundles import make_environment, make_suite

_TICK = 2.0**-36
# Trace-clock figures are few distinct values (the same gates and waits every round).
_TRACE_VALUES = (3.0, 14.55, 42.0, 120.0, 545.4)
_REPLAYS = 57


def _wall(rng: np.random.Generator, median: float, count: int, slow: float) -> tuple[float, ...]:
    drawn = rng.lognormal(math.log(median), 0.1, count) * slow
    return tuple(float(v) for v in np.maximum(np.round(drawn / _TICK), 1.0) * _TICK)


def _values(
    rng: np.random.Generator, clock: str, metric: registry.Metric, slow: float
) -> tuple[float, ...]:
    count = metric.per_round
    if clock == "trace":
        return tuple(float(v) for v in rng.choice(_TRACE_VALUES, count))
    median = 0.9 if metric.unit == "ratio" else 0.01
    return _wall(rng, median, count, slow)


def synthetic_bundle(
    out: Path,
    profile: str = "fast",
    *,
    run_id: str = "20240101T000000Z-0123456-synthe",
    started_utc: str = "2024-01-01T00:00:00+00:00",
    workloads: Sequence[str] | None = None,
    seed: int = 0,
    slow: float = 1.0,
    interleave: str = "",
) -> Path:
    """A bundle of ``workloads`` (every registered one by default) shaped by ``profile``.

    ``slow`` multiplies every wall-clock value. ``interleave`` (``"base"`` or
    ``"candidate"``) makes it one side of an interleaved pair: round ids ``r<k>:...``
    and an interleaving record, so rounds pair by ``k``.
    """
    shape = registry.PROFILES[profile]
    rng = np.random.default_rng(seed)
    names = list(workloads or registry.WORKLOADS)
    samples: list[MetricSamples] = []
    runs: dict[str, list[list[float]]] = {}
    for name in names:
        info = registry.WORKLOADS[name]
        runs[name] = []
        for process in range(shape.processes):
            pid = 4000 + 100 * names.index(name) + process
            if not interleave:  # an interleaved side has one pyperf run a round
                runs[name].append(list(_wall(rng, 0.05, shape.values, slow)))
            for value in range(shape.values):
                k = process * shape.values + value
                if interleave:
                    runs[name].append(list(_wall(rng, 0.05, 1, slow)))
                round_id = f"{pid}-{value + 1}"
                if interleave:
                    round_id = f"r{k}:{interleave}:{round_id}"
                samples.extend(
                    MetricSamples(
                        name,
                        metric.name,
                        round_id,
                        metric.unit,
                        info.clock,
                        _values(rng, info.clock, metric, slow),
                    )
                    for metric in info.metrics
                )
    rounds = shape.processes * shape.values
    verdicts = []
    for target in load_targets():
        if target.workload not in names:
            continue
        measured = measurement_of(target, samples)
        verdict = evaluate(target, measured.values, rounds=measured.rounds, resamples=50)
        # Synthetic numbers are not the real ones: every target reads as met.
        verdicts.append(_passed(verdict))
    replays = [
        {
            "trace": "kernel-small",
            "mode": "pooled" if index % 2 else "legacy",
            "concurrency": (1, 4, 16)[index % 3],
            "jitter": 0.2,
            "seed": index,
            "deterministic": True,
            "events": 1200 + index,
            "makespan_s": 12.5 + index,
        }
        for index in range(_REPLAYS)
    ]
    manifest = Manifest(
        run_id=run_id,
        profile=ProfileRecord(
            name=shape.name,
            processes=shape.processes,
            values=shape.values,
            warmups=shape.warmups,
            min_time_s=shape.min_time_s,
        ),
        workloads=[
            WorkloadRun(
                name=name,
                clock=registry.WORKLOADS[name].clock,
                benchmarks=[name],
                samples=rounds * len(registry.WORKLOADS[name].metrics),
                elapsed_s=10.0,
                traces=list(registry.WORKLOADS[name].traces),
            )
            for name in names
        ],
        started_utc=started_utc,
        finished_utc=started_utc,
        environment=make_environment(),
        traces={"kernel-small": "0" * 64},
        targets_file="workloads/targets.toml",
        targets_sha256="0" * 64,
        verdicts=verdicts,
        determinism=Determinism(status=DeterminismStatus.DETERMINISTIC, results=replays),
        interleaving=(
            Interleaving(
                side=interleave,
                ref="HEAD",
                sha="0" * 40,
                method="ABBA",
                seed=None,
                rounds=rounds,
                order=["AB" if k % 2 == 0 else "BA" for k in range(rounds)],
                pair_id="pair",
            )
            if interleave
            else None
        ),
    )
    metrics = [{"name": "kernel.pool.active", "kind": "gauge", "unit": "{job}", "attributes": {}}]
    return write_bundle(out, manifest, make_suite(runs), samples, metrics)


def _passed(verdict: Verdict) -> Verdict:
    return dataclasses.replace(verdict, outcome=TargetOutcome.PASS, passed=True)


def bytes_per_run(profile: str, runs: int = 3) -> dict[str, int]:
    """The store's growth per run of ``profile`` (file size after ``runs`` appends, minus
    after one, per run), the packed values and layouts alone, and the bundle's raw files."""
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        store = HistoryStore(directory / "history.sqlite")
        bundles = directory / "bundles"
        bundles.mkdir()
        sizes = []
        for index in range(runs):
            path = synthetic_bundle(
                bundles, profile, run_id=f"20240101T00000{index}Z-0123456-synth{index}", seed=index
            )
            store.append_run(load_bundle(path))
            sizes.append(store.path.stat().st_size)
        with closing(sqlite3.connect(store.path)) as connection:
            blobs = connection.execute(
                "SELECT sum(length(packed_values)), sum(length(layout)) FROM "
                "(SELECT packed_values, layout FROM sample_series UNION ALL "
                "SELECT packed_values, layout FROM pyperf_series)"
            ).fetchone()
            manifests = connection.execute(
                "SELECT sum(length(manifest)) FROM run_manifests"
            ).fetchone()[0]
        bundle = load_bundle(path)
        raw_values = 8 * sum(len(s.values) for s in (*bundle.samples, *bundle.pyperf_samples()))
        return {
            "store_bytes_per_run": (sizes[-1] - sizes[0]) // (runs - 1),
            "packed_values_per_run": int(blobs[0]) // runs,
            "layouts_per_run": int(blobs[1]) // runs,
            "manifest_per_run": int(manifests) // runs,
            "float64_bytes_per_run": raw_values,
            "bundle_samples_jsonl": (path / SAMPLES).stat().st_size,
        }


def test_a_fast_run_adds_a_bounded_size_and_values_pack_below_raw_float64() -> None:
    sizes = bytes_per_run("fast")
    assert sizes["packed_values_per_run"] < 0.75 * sizes["float64_bytes_per_run"]
    # Everything a run adds, pages and indexes included, stays within twice its raw values.
    assert sizes["store_bytes_per_run"] < 2 * sizes["float64_bytes_per_run"]
    assert sizes["store_bytes_per_run"] < sizes["bundle_samples_jsonl"]


if __name__ == "__main__":
    for name in ("fast", "rigorous"):
        print(name, bytes_per_run(name))
