"""The workloads' exception hierarchy.

Every error a workload or a trace raises on purpose derives from
:class:`WorkloadsError`, so the harness's command line turns it into one line and
exit status 2 in one place (``harness.cli``), whatever the workload.
"""

from __future__ import annotations

__all__ = ["WorkloadsError"]


class WorkloadsError(Exception):
    """Base class of every deliberate error of the workloads package: bad input
    (a trace, a samples file, an environment value) or a peer that does not agree."""
