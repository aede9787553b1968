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

Use :func:`run` as a stand-in for ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["VirtualTimeLoop", "run"]

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that turns a timed wait into a jump of the loop's virtual clock."""

    loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events or timeout is None or timeout <= 0 or self.loop is None:
            if not events and timeout is None:
                # No timer at all: only real I/O can wake the loop.
                return super().select(None)
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
        self.jumps = 0

    def time(self) -> float:
        """The virtual time, in seconds since the loop was made."""
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (called when the loop would wait)."""
        if seconds > 0:
            self._virtual_now += seconds
            self.jumps += 1


def run(main: Coroutine[Any, Any, T], *, debug: bool = False) -> T:
    """Run ``main`` to completion on a fresh :class:`VirtualTimeLoop`, like ``asyncio.run``."""
    with asyncio.Runner(debug=debug, loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)
