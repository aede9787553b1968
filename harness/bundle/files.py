"""Run bundles: one directory per run, the only thing downstream tools read.

Layout of ``<out>/<run-id>/``::

    results.json    a pyperf BenchmarkSuite (every workload's benchmarks merged):
                    ``python -m pyperf stats|compare_to`` read it unchanged
    samples.jsonl   per-operation samples, one MetricSamples JSON object a line
    metrics.json    the OpenTelemetry points of the run: a JSON list of
                    ``MetricPoint.as_json()`` objects
    manifest.json   a :class:`Manifest`: schema version, run id, profile,
                    workloads (and their pyperf benchmarks), start and end times,
                    environment and fingerprint, trace ids, verdicts, determinism
    profiles.json   optional: the hot paths' pyinstrument profiles captured by the
                    run (:class:`HotPathProfile`: text view and call tree, the tree
                    at most :data:`PROFILE_TREE_MAX_BYTES` each)

Guarantees:

* :func:`write_bundle` is atomic: it builds the bundle in ``<out>/.tmp-<run-id>``,
  fsyncs every file and the directory, then renames it to ``<out>/<run-id>``. A
  directory with the final name is therefore always complete; an exception
  (including KeyboardInterrupt) removes the temporary directory. Only a crash
  of the process itself can leave a ``.tmp-*`` directory, never a final one.
* Run ids (``YYYYmmddTHHMMSSZ-<sha7>-<random6>``) sort by start time (UTC).
* :func:`load_bundle` validates every file and raises
  :class:`~harness.errors.BundleError` naming the file (and line or field) and
  what is missing or wrong, never another exception: bytes that are not UTF-8
  JSON in any file, a samples file with more or fewer lines of a workload than
  the manifest records (``WorkloadRun.samples``), a negative duration on the
  trace clock (naming workload, metric and round).

Why one module: it is the bundle format, whole. The file names, the schema version and the
structs that :func:`write_bundle` writes are the ones :func:`load_bundle` checks, so the writer
and the validating reader change together, in one place; the rest (run ids, the merged pyperf
suite, pyperf values as samples) is what goes into those files or is read back out of them.
"""

from __future__ import annotations

import enum
import json
import os
import secrets
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import msgspec
import pyperf

from harness.bundle.environment import Environment
from harness.bundle.verdicts import (
    PYPERF_METRIC,
    TargetOutcome,
    Verdict,
)
from harness.errors import BundleError, WorkloadError
from workloads.samples import MetricSamples

__all__ = [
    "MANIFEST",
    "METRICS",
    "RESULTS",
    "SAMPLES",
    "SCHEMA_VERSION",
    "Bundle",
    "Determinism",
    "DeterminismStatus",
    "HotPathProfile",
    "Interleaving",
    "Manifest",
    "ProfileRecord",
    "WorkloadRun",
    "load_bundle",
    "load_profiles",
    "merge_results",
    "new_run_id",
    "write_bundle",
]

# Schema history:
# 1: results.json, samples.jsonl, metrics.json, manifest.json (profile, workloads,
#    environment + fingerprint, traces, targets file, verdicts, determinism).
#    Later, without a version change (older manifests read as before):
#    workloads[].skipped (the workload's skip line, "" when it ran) and the verdict
#    outcome "skipped".
#    Amended, still 1: an optional ``interleaving`` record (None for a plain run) on
#    one side of an interleaved comparison; readers of the earlier files decode it
#    as None, and msgspec readers of the earlier code ignore the unknown field.
SCHEMA_VERSION = 1
RESULTS = "results.json"
SAMPLES = "samples.jsonl"
METRICS = "metrics.json"
MANIFEST = "manifest.json"
PROFILES = "profiles.json"
BUNDLE_FILES = (RESULTS, SAMPLES, METRICS, MANIFEST)
# A profile's call tree above this size is not kept (its text view still is).
PROFILE_TREE_MAX_BYTES = 1_000_000
STAGING_PREFIX = ".tmp-"


class ProfileRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The pyperf profile a run used."""

    name: str
    processes: int
    values: int
    warmups: int
    min_time_s: float


class WorkloadRun(msgspec.Struct, frozen=True, kw_only=True):
    """One workload of a run: its pyperf benchmarks, its samples, its wall time.

    ``skipped`` is the line a workload that skipped itself wrote (what it lacks
    and how to install it; then it has no benchmarks and no samples), else "".
    """

    name: str
    clock: str
    benchmarks: list[str]
    samples: int
    elapsed_s: float
    traces: list[str]
    skipped: str = ""


class DeterminismStatus(enum.StrEnum):
    """The run's replay verdict."""

    NOT_RUN = "not run"
    DETERMINISTIC = "deterministic"
    DIVERGED = "diverged"


class Determinism(msgspec.Struct, frozen=True, kw_only=True):
    """The replay step's outcome; ``results`` holds each replay verdict as JSON data."""

    status: DeterminismStatus
    reason: str = ""
    results: list[dict[str, Any]] = msgspec.field(default_factory=list)


class Interleaving(msgspec.Struct, frozen=True, kw_only=True):
    """One side of an interleaved comparison (``harness interleave``): how it was run.

    ``order`` holds one entry per round, ``"AB"`` (base first) or ``"BA"``: the
    order actually used. Round ``k``'s samples carry round ids ``r<k>:<side>:...``
    and each benchmark's ``k``-th pyperf run is round ``k``; the same ``k`` on the
    two sides is a pair. ``method`` is ``"ABBA"`` or ``"random"`` (a seeded,
    balanced permutation; ``seed`` reproduces it). ``env`` holds the variables
    set for this side only (``--base-env`` / ``--candidate-env``). ``reruns`` says
    which rounds were run again because other processes took the CPU during them
    (the second run replaced the first), and why.
    """

    side: str
    ref: str
    sha: str
    method: str
    seed: int | None
    rounds: int
    order: list[str]
    pair_id: str
    env: dict[str, str] = msgspec.field(default_factory=dict)
    reruns: list[str] = msgspec.field(default_factory=list)


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """What a run was, where it ran and what it concluded (``manifest.json``)."""

    schema: int = SCHEMA_VERSION
    run_id: str
    profile: ProfileRecord
    workloads: list[WorkloadRun]
    started_utc: str
    finished_utc: str
    environment: Environment
    traces: dict[str, str]
    targets_file: str
    targets_sha256: str
    verdicts: list[Verdict]
    determinism: Determinism
    otlp_endpoint: str | None = None
    interleaving: Interleaving | None = None

    @property
    def passed(self) -> bool:
        """Every target passed (or was skipped with its workload) and replay did not diverge."""
        return (
            all(
                verdict.passed or verdict.outcome is TargetOutcome.SKIPPED
                for verdict in self.verdicts
            )
            and self.determinism.status is not DeterminismStatus.DIVERGED
        )


class HotPathProfile(msgspec.Struct, frozen=True, kw_only=True):
    """One hot path's profile, captured by the run that measured it (``profiles.json``).

    ``text`` is pyinstrument's text view; ``tree`` its call tree as JSON (nested
    ``{"function", "where", "time", "self", "children"}``, seconds; see
    :func:`harness.measure.profiles.call_tree`), empty when it was larger than
    :data:`PROFILE_TREE_MAX_BYTES`; ``duration_s`` is wall seconds.
    """

    path: str
    description: str
    duration_s: float
    text: str
    note: str
    tree: str = ""


class _SchemaOnly(msgspec.Struct):
    schema: int


@dataclass(frozen=True, slots=True)
class Bundle:
    """A loaded, validated bundle. ``suite`` is a ``pyperf.BenchmarkSuite``."""

    path: Path
    manifest: Manifest
    suite: Any
    samples: tuple[MetricSamples, ...]
    metrics: tuple[dict[str, Any], ...]
    profiles: tuple[HotPathProfile, ...] = ()

    def pyperf_samples(self) -> tuple[MetricSamples, ...]:
        """Each workload's pyperf values as samples of metric ``pyperf``.

        One round per pyperf run (one worker process's values), so the values of
        a process are resampled together; wall-clock seconds.
        """
        return pyperf_samples(self.suite, self.manifest.workloads)


def pyperf_samples(suite: Any, workloads: Iterable[WorkloadRun]) -> tuple[MetricSamples, ...]:
    """The pyperf values of ``suite`` as samples of metric ``pyperf``, per workload."""
    by_name = {bench.get_name(): bench for bench in suite}
    samples: list[MetricSamples] = []
    for workload in workloads:
        for bench_name in workload.benchmarks:
            bench = by_name[bench_name]
            for index, run in enumerate(bench.get_runs()):
                values = tuple(float(v) for v in run.values)
                if values:
                    samples.append(
                        MetricSamples(
                            workload.name,
                            PYPERF_METRIC,
                            f"{bench_name}-{index}",
                            "s" if bench.get_unit() == "second" else str(bench.get_unit()),
                            "wall",
                            values,
                        )
                    )
    return tuple(samples)


def new_run_id(short_sha: str, now: datetime | None = None) -> str:
    """A new run id: UTC start time, the code's short sha, 6 random hex digits."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{short_sha}-{secrets.token_hex(3)}"


def merge_results(outputs: Sequence[tuple[str, Path]]) -> tuple[Any, dict[str, list[str]]]:
    """One pyperf suite of every ``(workload, pyperf JSON file)``, and each workload's benchmarks.

    Raises :class:`~harness.errors.WorkloadError` when a file is missing or not a
    pyperf file, or when two workloads name a benchmark alike.
    """
    suite: Any = None
    owners: dict[str, str] = {}
    benchmarks: dict[str, list[str]] = {}
    for workload, path in outputs:
        try:
            loaded = pyperf.BenchmarkSuite.load(str(path))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WorkloadError(
                f"workload {workload} left no readable pyperf results: {exc}",
                where=str(path),
                expected="the pyperf JSON file its --output option names",
            ) from None
        benchmarks[workload] = []
        for bench in loaded:
            name = str(bench.get_name())
            if name in owners:
                raise WorkloadError(
                    f"workloads {owners[name]} and {workload} both name a benchmark {name!r}",
                    where=str(path),
                    expected="benchmark names unique across workloads",
                )
            owners[name] = workload
            benchmarks[workload].append(name)
            if suite is None:
                suite = pyperf.BenchmarkSuite([bench])
            else:
                suite.add_benchmark(bench)
    if suite is None:
        raise WorkloadError("no pyperf benchmark in any workload's results")
    return suite, benchmarks


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, write: Callable[[IO[str]], object]) -> None:
    with path.open("x", encoding="utf-8") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def write_bundle(
    out_dir: Path,
    manifest: Manifest,
    suite: Any,
    samples: Sequence[MetricSamples],
    metrics: Sequence[dict[str, Any]],
    profiles: Sequence[HotPathProfile] = (),
) -> Path:
    """Write the bundle of ``manifest.run_id`` under ``out_dir`` atomically; its path.

    ``suite`` is a ``pyperf.BenchmarkSuite``. See the module's guarantees.
    """
    final = out_dir / manifest.run_id
    if final.exists():
        raise BundleError("a bundle of this run id already exists", where=str(final))
    staging = out_dir / f"{STAGING_PREFIX}{manifest.run_id}"
    staging.mkdir()
    try:
        _write_file(staging / RESULTS, lambda fh: suite.dump(fh, compact=False))
        _write_file(
            staging / SAMPLES,
            lambda fh: fh.writelines(msgspec.json.encode(s).decode() + "\n" for s in samples),
        )
        _write_file(
            staging / METRICS,
            lambda fh: fh.write(msgspec.json.format(msgspec.json.encode(list(metrics))).decode()),
        )
        if profiles:
            _write_file(
                staging / PROFILES,
                lambda fh: fh.write(msgspec.json.encode(list(profiles)).decode()),
            )
        _write_file(
            staging / MANIFEST,
            lambda fh: fh.write(msgspec.json.format(msgspec.json.encode(manifest)).decode()),
        )
        _fsync_dir(staging)
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_dir(out_dir)
    return final


def load_bundle(path: Path | str) -> Bundle:
    """The bundle at ``path``, every file validated (see the module's guarantees)."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError("no bundle directory", where=str(path), expected="a run bundle directory")
    for name in BUNDLE_FILES:
        if not (path / name).is_file():
            raise BundleError(
                f"{name} is missing",
                where=str(path / name),
                expected="a complete bundle: " + ", ".join(BUNDLE_FILES),
            )
    manifest = _load_manifest(path / MANIFEST)
    _check_results_shape(path / RESULTS)
    suite = _load_suite(path / RESULTS)
    names = set(suite.get_benchmark_names())
    for workload in manifest.workloads:
        for bench in workload.benchmarks:
            if bench not in names:
                raise BundleError(
                    f"benchmark {bench!r} of workload {workload.name} is not in {RESULTS}",
                    where=str(path / RESULTS),
                    expected="every benchmark the manifest lists",
                )
    samples = _load_samples(path / SAMPLES)
    _check_sample_counts(path / SAMPLES, manifest, samples)
    return Bundle(
        path=path,
        manifest=manifest,
        suite=suite,
        samples=samples,
        metrics=_load_metrics(path / METRICS),
        profiles=load_profiles(path),
    )


def _load_manifest(path: Path) -> Manifest:
    try:
        data = path.read_bytes()
        schema = msgspec.json.decode(data, type=_SchemaOnly).schema
    except (OSError, msgspec.DecodeError) as exc:
        raise BundleError(f"unreadable manifest: {exc}", where=str(path)) from None
    if schema != SCHEMA_VERSION:
        raise BundleError(
            f"schema version {schema}",
            where=f"{path}: field schema",
            expected=f"schema {SCHEMA_VERSION}",
        )
    try:
        return msgspec.json.decode(data, type=Manifest)
    except msgspec.ValidationError as exc:
        text, _, field = str(exc).partition(" - at `")
        where = f"{path}: field {field.rstrip('`')}" if field else str(path)
        raise BundleError(text, where=where, expected="a manifest of schema 1") from None
    except msgspec.DecodeError as exc:
        # The schema-only pass skips the fields it does not read, so bytes that are
        # not UTF-8 in any other field surface only here.
        raise BundleError(
            f"unreadable manifest: {exc}", where=str(path), expected="UTF-8 JSON"
        ) from None


def _load_suite(path: Path) -> Any:
    try:
        return pyperf.BenchmarkSuite.load(str(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(
            f"not a pyperf benchmark suite: {exc}", where=str(path), expected="pyperf JSON"
        ) from None


def _check_results_shape(path: Path) -> None:
    """Refuse JSON that pyperf's loader would meet with an AttributeError, not a ValueError.

    pyperf takes the file's top level (and its ``metadata``) for objects; any other
    JSON value (``[]``, ``null``, ``"x"``) would escape as a traceback.
    """
    try:
        top = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError) as exc:
        raise BundleError(
            f"not a pyperf benchmark suite: {exc}", where=str(path), expected="pyperf JSON"
        ) from None
    if not isinstance(top, dict):
        raise BundleError(
            f"the top level is a JSON {type(top).__name__}",
            where=str(path),
            expected="pyperf JSON (an object with version, benchmarks, metadata)",
        )
    for field, kind in (("metadata", dict), ("benchmarks", list)):
        if field in top and not isinstance(top[field], kind):
            raise BundleError(
                f"{field} is a JSON {type(top[field]).__name__}",
                where=f"{path}: field {field}",
                expected=f"pyperf JSON ({field}: a JSON {'object' if kind is dict else 'array'})",
            )
    for index, bench in enumerate(top.get("benchmarks") or ()):
        runs = bench.get("runs", []) if isinstance(bench, dict) else None
        if (
            not isinstance(bench, dict)
            or not isinstance(bench.get("metadata", {}), dict)
            or not isinstance(runs, list)
            or not all(isinstance(run, dict) for run in runs)
            or not all(isinstance(run.get("metadata", {}), dict) for run in runs)
        ):
            raise BundleError(
                "not a benchmark object",
                where=f"{path}: field benchmarks[{index}]",
                expected="pyperf JSON (each benchmark an object: metadata, runs of objects)",
            )


def _load_samples(path: Path) -> tuple[MetricSamples, ...]:
    samples: list[MetricSamples] = []
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                sample = msgspec.json.decode(line, type=MetricSamples)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise BundleError(
                    str(exc), where=f"{path}:{number}", expected="one MetricSamples object a line"
                ) from None
            _check_sample(sample, f"{path}:{number}")
            samples.append(sample)
    return tuple(samples)


# Units the trace clock cannot make negative: it never runs backwards, so a duration
# (or a count per hour of it) below zero is a damaged or hand-edited file.
_NON_NEGATIVE_TRACE_UNITS = frozenset({"s", "per_hour"})


def _check_sample(sample: MetricSamples, where: str) -> None:
    if sample.clock != "trace" or sample.unit not in _NON_NEGATIVE_TRACE_UNITS:
        return
    negative = next((value for value in sample.values if value < 0), None)
    if negative is not None:
        raise BundleError(
            f"workload {sample.workload}, metric {sample.metric}, round {sample.round}: "
            f"{negative:g} {sample.unit} on the trace clock",
            where=where,
            expected="values >= 0 (the trace clock never runs backwards)",
        )


def _check_sample_counts(path: Path, manifest: Manifest, samples: Sequence[MetricSamples]) -> None:
    """Every workload has as many sample lines as the manifest says it wrote."""
    counts = Counter(sample.workload for sample in samples)
    for workload in manifest.workloads:
        found = counts.pop(workload.name, 0)
        if found != workload.samples:
            raise BundleError(
                f"{found} sample lines of workload {workload.name}, "
                f"but the manifest records {workload.samples}",
                where=str(path),
                expected="every line the run wrote (a truncated or edited file?)",
            )
    if counts:
        stray = sorted(counts)[0]
        raise BundleError(
            f"{counts[stray]} sample lines of workload {stray}, which the manifest does not list",
            where=str(path),
            expected="samples of the manifest's workloads only",
        )


def _load_metrics(path: Path) -> tuple[dict[str, Any], ...]:
    try:
        points = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"unreadable metrics: {exc}", where=str(path)) from None
    if not isinstance(points, list) or not all(
        isinstance(p, dict) and isinstance(p.get("name"), str) for p in points
    ):
        raise BundleError(
            "not a list of metric points", where=str(path), expected="[{name, kind, unit, ...}]"
        )
    return tuple(points)


def load_profiles(bundle: Path) -> tuple[HotPathProfile, ...]:
    """The profiles of the bundle at ``bundle``; none when the run captured none
    (``--no-profile``, older runs).

    Reads that one file, not the whole bundle: a comparison's report may name a
    base whose other files it never needs.
    """
    path = bundle / PROFILES
    if not path.is_file():
        return ()
    try:
        return tuple(msgspec.json.decode(path.read_bytes(), type=list[HotPathProfile]))
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BundleError(
            f"unreadable profiles: {exc}", where=str(path), expected="a JSON list of profiles"
        ) from None
