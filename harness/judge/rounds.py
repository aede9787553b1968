"""The unit of evidence: a metric's values grouped by round, paired across two sides.

A comparison (:mod:`harness.judge.compare`) reads each side as rounds: the
samples of round ``k`` of an interleaved run carry ids ``r<k>:...`` (the
contract of :class:`harness.bundle.files.Interleaving`), and the ``k``-th pyperf
run of a workload's benchmark is round ``k``. Rounds named ``r<k>`` on both sides
pair; any other round stands alone (an unpaired comparison).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from harness.bundle.files import Bundle
from harness.bundle.verdicts import PYPERF_METRIC
from workloads.samples import MetricSamples

__all__ = ["MetricRounds", "metric_rounds", "sample_rounds"]

_PAIRED_ROUND = re.compile(r"^r(\d+):")


@dataclass(frozen=True, slots=True)
class MetricRounds:
    """One metric of one workload on one side: its values, round by round (in run order)."""

    workload: str
    metric: str
    unit: str
    clock: str
    rounds: tuple[tuple[str, tuple[float, ...]], ...]

    @property
    def paired_keys(self) -> tuple[str, ...]:
        """The round keys of an interleaved run (``r<k>``)."""
        return tuple(key for key, _ in self.rounds if _PAIRED_ROUND.match(key + ":"))


def metric_rounds(bundle: Bundle) -> dict[tuple[str, str], MetricRounds]:
    """Every compared metric of ``bundle``, keyed (workload, metric), values grouped by round.

    Sample round ids ``r<k>:...`` become round ``r<k>`` (all of a round's samples
    merged); other ids are rounds of their own. Pyperf values: one round per
    pyperf run, named ``r<k>`` by position when the workload's samples have as
    many interleaved rounds as the benchmark has runs, or the manifest's
    interleaving record as many rounds (the interleaving contract: run ``k`` is
    round ``k``), ``run<i>`` otherwise. A workload with several benchmarks gets one
    metric ``pyperf:<benchmark>`` each.
    """
    grouped, kinds = _group(bundle.samples)
    by_name = {bench.get_name(): bench for bench in bundle.suite}
    record = bundle.manifest.interleaving
    for workload in bundle.manifest.workloads:
        if (workload.name, PYPERF_METRIC) in grouped:
            continue  # the samples already carry the pyperf values
        interleaved = sorted(
            {
                int(found.group(1))
                for sample in bundle.samples
                if sample.workload == workload.name
                and (found := _PAIRED_ROUND.match(sample.round)) is not None
            }
        )
        for bench_name in workload.benchmarks:
            bench = by_name[bench_name]
            runs = [tuple(float(v) for v in run.values) for run in bench.get_runs()]
            runs = [values for values in runs if values]
            if interleaved and len(interleaved) == len(runs):
                names = [f"r{k}" for k in interleaved]
            elif record is not None and record.rounds == len(runs):
                names = [f"r{k}" for k in range(record.rounds)]
            else:
                names = [f"run{index}" for index in range(len(runs))]
            metric = (
                PYPERF_METRIC if len(workload.benchmarks) == 1 else f"{PYPERF_METRIC}:{bench_name}"
            )
            unit = "s" if bench.get_unit() == "second" else str(bench.get_unit())
            grouped[(workload.name, metric)] = {
                name: list(values) for name, values in zip(names, runs, strict=True)
            }
            kinds[(workload.name, metric)] = (unit, "wall")
    return _as_rounds(grouped, kinds)


_Grouped = dict[tuple[str, str], dict[str, list[float]]]
_Kinds = dict[tuple[str, str], tuple[str, str]]


def _group(samples: Iterable[MetricSamples]) -> tuple[_Grouped, _Kinds]:
    grouped: _Grouped = {}
    kinds: _Kinds = {}
    for sample in samples:
        key = (sample.workload, sample.metric)
        found = _PAIRED_ROUND.match(sample.round)
        round_key = f"r{int(found.group(1))}" if found else sample.round
        grouped.setdefault(key, {}).setdefault(round_key, []).extend(sample.values)
        kinds.setdefault(key, (sample.unit, sample.clock))
    return grouped, kinds


def _as_rounds(grouped: _Grouped, kinds: _Kinds) -> dict[tuple[str, str], MetricRounds]:
    return {
        key: MetricRounds(
            workload=key[0],
            metric=key[1],
            unit=kinds[key][0],
            clock=kinds[key][1],
            rounds=tuple((name, tuple(values)) for name, values in rounds.items()),
        )
        for key, rounds in grouped.items()
    }


def sample_rounds(samples: Iterable[MetricSamples]) -> dict[tuple[str, str], MetricRounds]:
    """Samples grouped into rounds as :func:`metric_rounds` groups them (``r<k>:...``: ``r<k>``)."""
    return _as_rounds(*_group(samples))
