"""The spool's adaptive concurrency: a slot count that follows approval backpressure.

Guarantee: :attr:`AdaptiveConcurrency.current` is always between ``base`` and
``maximum``; it moves only on the three signals below, so it never needs a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AdaptiveConcurrency", "ConcurrencyStatistics"]


@dataclass(frozen=True, slots=True)
class ConcurrencyStatistics:
    """The adaptive controller's bounds, level now, peak and moves."""

    base: int
    maximum: int
    current: int
    peak: int
    grows: int
    shrinks: int


class AdaptiveConcurrency:
    """The spool's slot count: between ``base`` and ``maximum``, always.

    Grows by one when a gate completes while the approval queue holds no more
    than one batch; shrinks by one when a request makes it hold more; halves
    (not below ``base``) when a gate times out.
    """

    def __init__(self, base: int, maximum: int, batch_size: int) -> None:
        if not 1 <= base <= maximum:
            raise ValueError(f"need 1 <= base <= maximum, got {base} and {maximum}")
        self.base = base
        self.maximum = maximum
        self.batch_size = batch_size
        self.current = base
        self.peak = base
        self.grows = 0
        self.shrinks = 0

    def on_completed(self, approval_queue_depth: int) -> None:
        """A gate passed; grow unless approvals are backed up."""
        if approval_queue_depth <= self.batch_size and self.current < self.maximum:
            self.current += 1
            self.grows += 1
            self.peak = max(self.peak, self.current)

    def on_approval_queued(self, approval_queue_depth: int) -> None:
        """A gate asked for approval; shrink when more than a batch is waiting."""
        if approval_queue_depth > self.batch_size and self.current > self.base:
            self.current -= 1
            self.shrinks += 1

    def on_timeout(self) -> None:
        """A gate timed out: halve."""
        halved = max(self.base, self.current // 2)
        if halved < self.current:
            self.current = halved
            self.shrinks += 1

    def statistics(self) -> ConcurrencyStatistics:
        """A frozen snapshot."""
        return ConcurrencyStatistics(
            self.base, self.maximum, self.current, self.peak, self.grows, self.shrinks
        )
