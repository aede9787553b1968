"""The concurrent executor: retries with backoff, adaptive per-class timeouts, result reuse.

Guarantees:

* **Retries.** A task failing with :class:`TransientError`, or running past its
  timeout, is tried again, up to ``max_attempts`` in all; before retry *r*
  (1, 2, ...) it sleeps ``min(backoff_base_s * backoff_factor**(r-1), backoff_max_s)``
  stretched by a jitter in ``[0, jitter_ratio)`` drawn from ``(seed, key, r)``: the
  same on every run and machine. Any other exception is not retried and
  propagates unchanged; exhausted retries raise :class:`TaskFailedError`.
* **Adaptive timeouts.** A task class's timeout is ``timeout_max_s`` until
  ``min_samples`` attempts of that class succeeded, then the p95 (nearest rank)
  of the last ``sample_window`` successful attempt durations times
  ``timeout_headroom``, clamped to ``[timeout_min_s, timeout_max_s]``.
* **Reuse.** Within one cycle (until :meth:`ConcurrentExecutor.new_cycle`), a
  key asked again, even while its first run is in flight, gets the first run's
  result without running again. Failures are not kept: the next ask runs again.
* Durations are measured on the running loop's clock (trace seconds on the
  virtual loop).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from reference_impl.errors import ReferenceImplError
from reference_impl.events import stable_hash

__all__ = [
    "ConcurrentExecutor",
    "ExecutorPolicy",
    "ExecutorStatistics",
    "TaskFailedError",
    "TransientError",
]

T = TypeVar("T")


class TransientError(ReferenceImplError):
    """A failure worth retrying (a flaky tool, a dropped connection)."""


class TaskFailedError(ReferenceImplError):
    """Task ``key`` failed on each of its ``attempts``; ``__cause__`` is the last error."""

    def __init__(self, task_class: str, key: str, attempts: int, cause: BaseException) -> None:
        super().__init__(f"task {key!r} ({task_class}) failed {attempts} time(s): {cause!r}")
        self.task_class = task_class
        self.key = key
        self.attempts = attempts
        self.cause = cause


@dataclass(frozen=True, slots=True)
class ExecutorPolicy:
    """Retry, backoff and timeout settings (validated: ``ValueError`` on nonsense)."""

    max_attempts: int = 3
    backoff_base_s: float = 1.0
    backoff_factor: float = 2.0
    backoff_max_s: float = 60.0
    jitter_ratio: float = 0.25
    timeout_min_s: float = 1.0
    timeout_max_s: float = 600.0
    timeout_headroom: float = 1.5
    min_samples: int = 5
    sample_window: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.min_samples < 1 or self.sample_window < 1:
            raise ValueError("max_attempts, min_samples and sample_window must be positive")
        numbers = (self.backoff_base_s, self.backoff_max_s, self.jitter_ratio, self.timeout_min_s)
        if not all(math.isfinite(x) and x >= 0 for x in numbers):
            raise ValueError("backoff, jitter and timeout bounds must be finite and >= 0")
        if self.backoff_factor < 1 or self.timeout_headroom < 1:
            raise ValueError("backoff_factor and timeout_headroom must be >= 1")
        if not 0 < self.timeout_min_s <= self.timeout_max_s:
            raise ValueError("need 0 < timeout_min_s <= timeout_max_s")


@dataclass(frozen=True, slots=True)
class ExecutorStatistics:
    """A snapshot of the executor's counters and of each class's current timeout."""

    cycle: int
    submitted: int
    executed: int
    reused: int
    attempts: int
    retries: int
    timeouts: int
    failures: int
    cached_results: int
    class_timeouts_s: tuple[tuple[str, float], ...]


class ConcurrentExecutor:
    """Runs keyed tasks with retries, adaptive timeouts and per-cycle reuse (see the module).

    ``reuse_results=False`` turns reuse off (today's behaviour: every ask runs).
    """

    def __init__(self, policy: ExecutorPolicy | None = None, *, reuse_results: bool = True) -> None:
        self.policy = ExecutorPolicy() if policy is None else policy
        self.reuse_results = reuse_results
        self._results: dict[str, asyncio.Future[Any]] = {}
        self._samples: dict[str, deque[float]] = {}
        self._cycle = 0
        self._submitted = 0
        self._executed = 0
        self._reused = 0
        self._attempts = 0
        self._retries = 0
        self._timeouts = 0
        self._failures = 0

    def new_cycle(self) -> None:
        """Forget the results of the cycle that ends (runs in flight finish unaffected)."""
        self._cycle += 1
        self._results.clear()

    def timeout_for(self, task_class: str) -> float:
        """The timeout the next attempt of ``task_class`` gets (see the module)."""
        policy = self.policy
        samples = self._samples.get(task_class)
        if samples is None or len(samples) < policy.min_samples:
            return policy.timeout_max_s
        ordered = sorted(samples)
        p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
        return min(policy.timeout_max_s, max(policy.timeout_min_s, p95 * policy.timeout_headroom))

    def backoff_s(self, key: str, retry: int) -> float:
        """The sleep before retry number ``retry`` (1-based) of ``key``: deterministic."""
        policy = self.policy
        base = min(
            policy.backoff_base_s * policy.backoff_factor ** (retry - 1), policy.backoff_max_s
        )
        jitter = random.Random(stable_hash("prp.backoff", key, retry, seed=policy.seed)).random()
        return base * (1.0 + policy.jitter_ratio * jitter)

    def record_sample(self, task_class: str, duration_s: float) -> None:
        """Add one successful attempt's duration to ``task_class``'s window."""
        window = self._samples.get(task_class)
        if window is None:
            window = self._samples[task_class] = deque(maxlen=self.policy.sample_window)
        window.append(duration_s)

    async def run(self, task_class: str, key: str, work: Callable[[], Awaitable[T]]) -> T:
        """``work()``'s result for ``key``: reused, or run with retries and a timeout."""
        self._submitted += 1
        if not self.reuse_results:
            return await self._attempt_all(task_class, key, work)
        shared = self._results.get(key)
        if shared is not None:
            self._reused += 1
            return cast(T, await asyncio.shield(shared))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._results[key] = future
        try:
            value = await self._attempt_all(task_class, key, work)
        except BaseException as exc:
            if self._results.get(key) is future:
                del self._results[key]
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved here; waiters, if any, re-raise it
            raise
        future.set_result(value)
        return value

    async def _attempt_all(self, task_class: str, key: str, work: Callable[[], Awaitable[T]]) -> T:
        loop = asyncio.get_running_loop()
        self._executed += 1
        max_attempts = self.policy.max_attempts
        for attempt in range(1, max_attempts + 1):
            self._attempts += 1
            started = loop.time()
            try:
                async with asyncio.timeout(self.timeout_for(task_class)):
                    value = await work()
            except TimeoutError as exc:
                self._timeouts += 1
                error: BaseException = exc
            except TransientError as exc:
                error = exc
            else:
                self.record_sample(task_class, loop.time() - started)
                return value
            if attempt < max_attempts:
                self._retries += 1
                await asyncio.sleep(self.backoff_s(key, attempt))
        self._failures += 1
        raise TaskFailedError(task_class, key, max_attempts, error) from error

    def statistics(self) -> ExecutorStatistics:
        """A frozen snapshot."""
        return ExecutorStatistics(
            cycle=self._cycle,
            submitted=self._submitted,
            executed=self._executed,
            reused=self._reused,
            attempts=self._attempts,
            retries=self._retries,
            timeouts=self._timeouts,
            failures=self._failures,
            cached_results=len(self._results),
            class_timeouts_s=tuple(
                (name, self.timeout_for(name)) for name in sorted(self._samples)
            ),
        )
