"""What every trace driver shares: the setting of a run, its recorder and its outcome.

:mod:`workloads.drivers` (kernel, MCP) and :mod:`workloads.prp_driver` (PRP) both
build on these, so neither imports the other's module for them.
"""

from __future__ import annotations

import hashlib
import random
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reference_impl.events import canonical_json
from reference_impl.mode import Mode
from reference_impl.pool import OrderedPool

__all__ = [
    "CANONICAL",
    "EVENT_DIGEST_SIZE",
    "PoolFactory",
    "Recorder",
    "Setting",
    "TraceOutcome",
    "jittered",
]

EVENT_DIGEST_SIZE = 8


@dataclass(frozen=True, slots=True)
class Setting:
    """How one replay runs: mode, concurrency, jitter (a fraction) and its seed."""

    mode: Mode = Mode.LEGACY
    concurrency: int = 1
    jitter: float = 0.0
    seed: int = 0
    time_scale: float = 1.0

    def label(self) -> str:
        """A short, copyable description (``--mode pooled --concurrency 4 ...``)."""
        return (
            f"--mode {self.mode.value} --concurrency {self.concurrency} "
            f"--jitter {self.jitter:g} --seed {self.seed}"
        )


# The canonical setting: how `harness record` computes a trace's footer.
CANONICAL = Setting(Mode.LEGACY, 1, 0.0, 0)


@dataclass(slots=True)
class Recorder:
    """For drivers: the committed-sequence digest, a short digest per event, one captured event."""

    capture_index: int | None = None
    committed: Any = field(default_factory=hashlib.sha256)
    event_digests: bytearray = field(default_factory=bytearray)
    captured: dict[str, Any] | None = None
    count: int = 0

    def commit(self, event: Mapping[str, Any]) -> None:
        line = canonical_json(event)
        self.committed.update(line)
        self.committed.update(b"\n")
        self.event_digests += hashlib.blake2b(line, digest_size=EVENT_DIGEST_SIZE).digest()
        if self.count == self.capture_index:
            self.captured = dict(event)
        self.count += 1

    def outcome(
        self,
        events_digest: str,
        evidence_digest: str,
        counts: Mapping[str, int],
        makespan_s: float,
        latencies_s: array[float],
        metrics: Mapping[str, Any] | None = None,
    ) -> TraceOutcome:
        """The run's :class:`TraceOutcome`: the driver's digests, figures and what it recorded."""
        return TraceOutcome(
            self.committed.hexdigest(),
            events_digest,
            evidence_digest,
            counts,
            bytes(self.event_digests),
            self.captured,
            makespan_s,
            latencies_s,
            metrics or {},
        )


@dataclass(frozen=True, slots=True)
class TraceOutcome:
    """What one run of a trace produced (compared against the footer by replay)."""

    committed_digest: str
    events_digest: str
    evidence_digest: str
    counts: Mapping[str, int]
    event_digests: bytes
    captured_event: Mapping[str, Any] | None
    makespan_s: float
    latencies_s: array[float]
    metrics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def events(self) -> int:
        """How many events were committed."""
        return len(self.event_digests) // EVENT_DIGEST_SIZE

    def event_digest(self, index: int) -> bytes:
        """The short digest of event ``index``."""
        return self.event_digests[index * EVENT_DIGEST_SIZE : (index + 1) * EVENT_DIGEST_SIZE]


def jittered(setting: Setting) -> Callable[[float], float]:
    if setting.jitter <= 0:
        return lambda duration: duration
    rng = random.Random(setting.seed)
    spread = setting.jitter
    return lambda duration: duration * (1.0 + rng.uniform(-spread, spread))


PoolFactory = Callable[[int], OrderedPool[Any]]
