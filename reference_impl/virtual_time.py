"""A virtual clock for trace-time runs: an event loop whose time jumps instead of waiting.

Trace durations are the runtime's real durations (a gate of three minutes, a
human approval of twenty seconds). On :class:`VirtualTimeLoop`, ``loop.time()``
is virtual: whenever nothing is ready to run and the loop would sleep until its
next timer, the clock jumps to that timer instead. A night of gates replays in
the time its Python code takes, and makespans come out exactly in trace seconds.

Guarantees:

* ``loop.time()`` starts at 0.0 and only moves forward, by jumps to the next
  scheduled timer when nothing else is ready; ``asyncio.sleep(d)`` therefore
  returns at virtual time ``now + d`` exactly (up to float addition).
* Ready callbacks run in the same order as on the standard loop: only *waiting*
  is replaced, never *scheduling*, so behaviour (and determinism) is unchanged.
* Real I/O still works: the selector is polled without blocking before each
  jump, and the loop blocks for real only when there is no timer at all (when
  it waits for a subprocess, say).
* Work on a real thread is never skipped by a jump. While an executor future
  is pending (``loop.run_in_executor``, ``asyncio.to_thread``, a lazy import) or
  the default executor is being shut down, the clock does not jump: the loop
  waits for real, for at most the delay of its next timer, and moves the clock
  to that timer only if the real wait ran out. A thread that finishes first
  takes no virtual time; a timeout over a real thread (``asyncio.run``'s 300 s
  executor-shutdown timeout on Python 3.12+) counts real seconds, as on the
  standard loop, instead of expiring at once.

Use :func:`run` as a stand-in for ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import selectors
import sys
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from typing import Any, TypeVar, TypeVarTuple

__all__ = ["VirtualTimeLoop", "run"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that turns a timed wait into a jump of the loop's virtual clock."""

    loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events or (timeout is not None and timeout <= 0) or self.loop is None:
            return events
        if timeout is None:
            # No timer at all: only real I/O (or a thread) can wake the loop.
            return super().select(None)
        if self.loop.pending_thread_work:
            # A thread is working for the loop: wait for it for real. Its result
            # arrives through call_soon_threadsafe, which wakes this select.
            events = super().select(timeout)
            if events:
                return events
        self.loop.advance(timeout)
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose ``time()`` is virtual (see the module docstring)."""

    def __init__(self) -> None:
        selector = _JumpingSelector()
        super().__init__(selector)
        selector.loop = self
        self._virtual_now = 0.0
        self._thread_work = 0
        self.jumps = 0

    def time(self) -> float:
        """The virtual time, in seconds since the loop was made."""
        return self._virtual_now

    @property
    def pending_thread_work(self) -> int:
        """Executor futures not yet done, plus a default-executor shutdown under way."""
        return self._thread_work

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (called when the loop would wait)."""
        if seconds > 0:
            self._virtual_now += seconds
            self.jumps += 1

    def run_in_executor(
        self, executor: Executor | None, func: Callable[[*Ts], T], *args: *Ts
    ) -> asyncio.Future[T]:
        """As the standard loop's; the clock does not jump until the result is back."""
        future = super().run_in_executor(executor, func, *args)
        self._thread_work += 1
        future.add_done_callback(self._thread_work_done)
        return future

    def _thread_work_done(self, _future: asyncio.Future[Any]) -> None:
        self._thread_work -= 1

    # The stdlib's signature (3.12+), overridden as is: hence the timeout parameter.
    async def shutdown_default_executor(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """As the standard loop's; the joining threads are waited for in real time."""
        self._thread_work += 1
        try:
            if sys.version_info >= (3, 12):
                await super().shutdown_default_executor(timeout)
            else:
                await super().shutdown_default_executor()
        finally:
            self._thread_work -= 1


def run(main: Coroutine[Any, Any, T], *, debug: bool = False) -> T:
    """Run ``main`` to completion on a fresh :class:`VirtualTimeLoop`, like ``asyncio.run``."""
    with asyncio.Runner(debug=debug, loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)
