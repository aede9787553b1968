"""The workloads' exception hierarchy.

Every error a workload or a trace raises on purpose derives from
:class:`WorkloadsError`, so the harness's command line turns it into one line and
exit status 2 in one place (``harness.cli``), whatever the workload.
"""

from __future__ import annotations

__all__ = ["SettingError", "TraceKindError", "WorkloadsError"]


class WorkloadsError(Exception):
    """Base class of every deliberate error of the workloads package: bad input
    (a trace, a samples file, an environment value) or a peer that does not agree."""


class TraceKindError(WorkloadsError, TypeError):
    """A driver met a record its trace kind does not hold (or an unknown kind)."""


class SettingError(WorkloadsError, ValueError):
    """An environment switch of the workloads has a value it does not accept."""
