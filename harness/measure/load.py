"""How busy the machine was with *other* work while a round ran.

A round that shared the CPU with another process is not a measurement of the code:
on the 2-core development machine one round of twelve, run while another process
was busy, read a telemetry overhead of 140 % (0.6-2.1 % in the eleven others). So
each round is metered: the CPU time every process of the machine took
(``/proc/stat``: all CPUs' busy jiffies) minus the CPU time of this process and
its reaped children (``getrusage``; a round's workload processes are reaped
before the round ends) is the time *others* took; divided by the round's wall
time it is the cores they kept busy on average. Above :data:`DISTURBED_CORES` the
round is disturbed.

Where ``/proc/stat`` is missing (not Linux), :class:`LoadMeter` falls back on the
1-minute load average's rise, and says so in its reading's ``source``.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DISTURBED_CORES", "LoadMeter", "LoadReading", "busy_cpu_seconds"]

# Others keeping a fifth of a core busy through a whole round disturb it: an idle
# Linux machine's own housekeeping stays well under 0.05.
DISTURBED_CORES = 0.2
PROC_STAT = Path("/proc/stat")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class LoadReading:
    """Other processes' CPU over an interval: ``other_cores`` on average over ``wall_s``."""

    other_cores: float
    wall_s: float
    source: str

    @property
    def disturbed(self) -> bool:
        """Whether others kept more than :data:`DISTURBED_CORES` busy."""
        return self.other_cores > DISTURBED_CORES

    def describe(self) -> str:
        """``other processes kept 0.93 cores busy for 12.1 s (/proc/stat)``."""
        return (
            f"other processes kept {self.other_cores:.2f} cores busy for "
            f"{self.wall_s:.1f} s ({self.source})"
        )


def busy_cpu_seconds(stat: Path = PROC_STAT) -> float | None:
    """All CPUs' busy time since boot, from ``/proc/stat`` (None where unreadable).

    Busy = user + nice + system + irq + softirq + steal; idle and iowait are not.
    """
    try:
        first = stat.read_text(encoding="ascii").splitlines()[0].split()
    except (OSError, IndexError, UnicodeDecodeError):
        return None
    if not first or first[0] != "cpu" or len(first) < 5:
        return None
    fields = [int(value) for value in first[1:9]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields) - idle) / _TICKS


def _own_cpu_seconds() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class LoadMeter:
    """Meters one interval: :meth:`start`, then :meth:`stop` gives its reading."""

    def __init__(
        self,
        *,
        busy: Callable[[], float | None] = busy_cpu_seconds,
        own: Callable[[], float] = _own_cpu_seconds,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._busy, self._own, self._clock = busy, own, clock
        self._start: tuple[float | None, float, float, float] | None = None

    def start(self) -> None:
        """Begin an interval."""
        self._start = (self._busy(), self._own(), self._clock(), os.getloadavg()[0])

    def stop(self) -> LoadReading:
        """The reading of the interval begun by :meth:`start`."""
        if self._start is None:
            raise RuntimeError("LoadMeter.stop() before start()")
        busy0, own0, wall0, load0 = self._start
        busy1, own1, wall1 = self._busy(), self._own(), self._clock()
        wall = max(wall1 - wall0, 1e-9)
        if busy0 is None or busy1 is None:
            rise = max(0.0, os.getloadavg()[0] - load0)
            return LoadReading(rise, wall, "load average rise: /proc/stat unreadable")
        other = max(0.0, (busy1 - busy0) - (own1 - own0))
        return LoadReading(other / wall, wall, "/proc/stat")
