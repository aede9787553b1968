"""The event loop a wall-clock workload runs on: asyncio's own, or uvloop.

``harness run --loop uvloop`` sets ``AGENTBENCH_LOOP=uvloop`` for every workload
(pyperf's workers inherit it, :func:`workloads.registry.command`); each round's
coroutine then runs on a fresh loop of that kind (:func:`run`). Trace-clock
workloads run on the virtual clock's own loop whatever is chosen.

Guarantees:

* Unset or empty means asyncio: runs, bundles and fingerprints of before this
  switch are asyncio runs.
* Any other value than ``asyncio`` or ``uvloop`` is a :class:`SettingError`
  naming the variable (one line, exit 2 from the harness).
* uvloop is an optional group (``pip install 'agentbench[uvloop]'``): without it
  :func:`missing` says so in one line, and the workload skips itself with that
  line (SKIPPED in the run) instead of measuring another loop than asked.
"""

from __future__ import annotations

import asyncio
import enum
import importlib.util
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

from workloads.errors import SettingError

__all__ = ["LOOP_ENV", "EventLoop", "SettingError", "chosen", "missing", "run"]

LOOP_ENV = "AGENTBENCH_LOOP"
T = TypeVar("T")


class EventLoop(enum.StrEnum):
    """The event loops a run can be measured on."""

    ASYNCIO = "asyncio"
    UVLOOP = "uvloop"


def chosen() -> EventLoop:
    """The loop ``$AGENTBENCH_LOOP`` names; asyncio when unset or empty."""
    text = os.environ.get(LOOP_ENV, "").strip()
    if not text:
        return EventLoop.ASYNCIO
    try:
        return EventLoop(text)
    except ValueError:
        expected = " or ".join(loop.value for loop in EventLoop)
        raise SettingError(f"{LOOP_ENV}={text!r}: expected {expected}") from None


def missing(loop: EventLoop) -> str:
    """Why ``loop`` cannot run here (one line with the install command); "" when it can."""
    if loop is EventLoop.UVLOOP and importlib.util.find_spec("uvloop") is None:
        return "uvloop is not installed: pip install 'agentbench[uvloop]'"
    return ""


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh event loop of the :func:`chosen` kind."""
    if chosen() is EventLoop.UVLOOP:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)
