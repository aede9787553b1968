"""The harness's exception hierarchy and its exit codes.

The CLI alone (:func:`harness.cli.main`) turns these, the workloads' and the reference
implementation's errors, and an OSError on a path the user gave, into one line and
:attr:`ExitCode.BAD_INPUT`.
"""

from __future__ import annotations

import enum

__all__ = [
    "BundleError",
    "EnvironmentRefused",
    "ExitCode",
    "HarnessError",
    "RefError",
    "TargetsError",
    "TraceError",
    "WorkloadError",
    "WorkloadSkipped",
]


class HarnessError(Exception):
    """Base of every deliberate harness error: bad input or an unusable environment.

    ``where`` says where the bad input is (``file:line``, a field, a git ref);
    ``expected`` what would have been accepted.
    """

    def __init__(self, what: str, *, where: str = "", expected: str = "") -> None:
        parts = [f"{where}: {what}" if where else what]
        if expected:
            parts.append(f"expected {expected}")
        super().__init__("; ".join(parts))
        self.what = what
        self.where = where
        self.expected = expected


class TraceError(HarnessError):
    """A trace file is malformed, truncated, of another schema version, or unreadable."""


class TargetsError(HarnessError):
    """The targets file is malformed or names an unknown workload."""


class BundleError(HarnessError):
    """A run bundle is missing, incomplete or unreadable."""


class WorkloadError(HarnessError):
    """An unknown workload was asked for, or a workload could not run."""


class WorkloadSkipped(WorkloadError):
    """A workload skipped itself (an optional dependency group is not installed).

    ``line`` is its ``<name>: skipped: <reason>`` line; ``elapsed_s`` its wall time.
    ``harness run`` records the skip; where a skip cannot be honoured (a
    comparison), it is an error like any other :class:`WorkloadError`.
    """

    def __init__(self, line: str, *, elapsed_s: float, where: str = "") -> None:
        super().__init__(line, where=where, expected="its optional dependencies installed")
        self.line = line
        self.elapsed_s = elapsed_s


class EnvironmentRefused(HarnessError):
    """The environment cannot run this (unwritable output, different machines compared)."""


class RefError(HarnessError):
    """A git ref names no commit, or the repository to resolve it in is not a git work tree."""


class ExitCode(enum.IntEnum):
    """The exit statuses of every ``harness`` command (compare and nightly included)."""

    OK = 0
    WORSE = 1  # a target missed, a regression, a replay that diverged
    BAD_INPUT = 2  # bad input or an environment that cannot run it: one line on stderr
    INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C (SIGTERM too)
