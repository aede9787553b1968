"""Per-operation samples recorded inside workloads, beside pyperf's own values.

pyperf keeps the wall time of each measured value; percentiles of single
operations (a task's latency, a tool call's hook time), per-round ratios of an
interleaved A/B measurement and trace-time figures are recorded here instead,
and stored in the run bundle.

The contract between a workload and the harness: when the environment variable
``AGENTBENCH_SAMPLES_DIR`` names a directory, each worker process appends JSON
lines to ``<dir>/<workload>-<pid>.jsonl``, one per (metric, round)::

    {"workload": "scheduler_latency", "metric": "task_latency", "round": "4711-0",
     "unit": "s", "clock": "wall", "values": [0.0123, ...]}

A *round* is one measured value of one pyperf worker process (its ``pid-index``):
samples within a round are correlated, rounds are the unit of resampling.
Without the variable nothing is written (a plain pyperf run).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["SAMPLES_DIR_ENV", "MetricSamples", "SampleSink", "read_samples"]

SAMPLES_DIR_ENV = "AGENTBENCH_SAMPLES_DIR"

ClockName = Literal["wall", "trace", "instructions"]


@dataclass(frozen=True, slots=True)
class MetricSamples:
    """The values of one metric in one round of one workload."""

    workload: str
    metric: str
    round: str
    unit: str
    clock: ClockName
    values: tuple[float, ...]

    def as_json(self) -> dict[str, object]:
        """As one JSON line's data."""
        return {
            "workload": self.workload,
            "metric": self.metric,
            "round": self.round,
            "unit": self.unit,
            "clock": self.clock,
            "values": list(self.values),
        }


class SampleSink:
    """Where a workload process writes its samples (a no-op without the variable)."""

    def __init__(self, workload: str, directory: str | None = None) -> None:
        self.workload = workload
        directory = directory if directory is not None else os.environ.get(SAMPLES_DIR_ENV)
        self.path = Path(directory) / f"{workload}-{os.getpid()}.jsonl" if directory else None
        self._round = 0

    @property
    def enabled(self) -> bool:
        """Whether samples are kept (the harness asked for them)."""
        return self.path is not None

    def next_round(self) -> str:
        """A new round id, unique within the whole run."""
        self._round += 1
        return f"{os.getpid()}-{self._round}"

    def write(
        self,
        metric: str,
        values: Sequence[float],
        *,
        round_id: str,
        unit: str = "s",
        clock: ClockName = "wall",
    ) -> None:
        """Append one round's values of ``metric`` (one line, written whole)."""
        if self.path is None:
            return
        sample = MetricSamples(self.workload, metric, round_id, unit, clock, tuple(values))
        line = json.dumps(sample.as_json(), separators=(",", ":")) + "\n"
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)


def read_samples(directory: Path) -> Iterator[MetricSamples]:
    """Every sample line in ``directory``, in file-name then line order."""
    for path in sorted(directory.glob("*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                data = json.loads(line)
                yield MetricSamples(
                    str(data["workload"]),
                    str(data["metric"]),
                    str(data["round"]),
                    str(data["unit"]),
                    data["clock"],
                    tuple(float(v) for v in data["values"]),
                )


def values_of(samples: Iterable[MetricSamples], workload: str, metric: str) -> list[float]:
    """Every value of one metric, all rounds together."""
    return [v for s in samples if s.workload == workload and s.metric == metric for v in s.values]
