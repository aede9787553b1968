"""What the kernel's tools share: their call and denial counters, and the read chunk size.

:class:`ToolStatistics` is the snapshot the shell and filesystem tools return from
``statistics()``; ``_Counters`` and ``_counted`` are the plain counters behind it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from reference_impl.errors import DeniedError

T = TypeVar("T")

_READ_CHUNK_BYTES = 65_536


@dataclass(frozen=True, slots=True)
class ToolStatistics:
    """Counters of a shell or filesystem tool: calls made, and how many were denied."""

    calls: int
    denials: int


class _Counters:
    """Plain counters on the hot path; snapshots are taken by ``statistics()``."""

    __slots__ = ("calls", "denials")

    def __init__(self) -> None:
        self.calls = 0
        self.denials = 0


def _counted(tool: _Counters, action: Callable[[], T]) -> T:
    tool.calls += 1
    try:
        return action()
    except DeniedError:
        tool.denials += 1
        raise
