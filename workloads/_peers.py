"""What the workloads against a peer framework share: the skip when it is absent, the check.

Guarantees:

* A peer workload whose framework is not installed skips itself with one
  stderr line (:func:`workloads.registry.skip_line`) that says how to install
  it, and exit status :data:`~workloads.registry.SKIP_EXIT_STATUS`; a framework
  that is installed but fails to import (a broken install) is not a skip: the
  import error propagates and the workload fails.
* :func:`check_same_results` raises :class:`PeerMismatchError` when any side
  computed another result than the reference side, before any timing counts.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import NoReturn

from workloads import registry
from workloads.errors import WorkloadsError

__all__ = [
    "LANGGRAPH_MISSING",
    "PeerMismatchError",
    "check_same_results",
    "is_absent",
    "skip",
]

LANGGRAPH_MISSING = (
    "LangGraph is not installed; install the peers group: "
    "pip install 'agentbench[peers]' (nox -s bench does)"
)


class PeerMismatchError(WorkloadsError, RuntimeError):
    """Side ``side`` of ``workload`` computed ``actual``; the reference side got ``expected``."""

    def __init__(
        self, workload: str, reference: str, side: str, expected: object, actual: object
    ) -> None:
        super().__init__(
            f"{workload}: {side} computed another result than {reference}: "
            f"expected {expected!r}, got {actual!r}"
        )
        self.workload = workload
        self.side = side
        self.expected = expected
        self.actual = actual


def is_absent(error: ModuleNotFoundError, *packages: str) -> bool:
    """Whether ``error`` says one of ``packages`` (or one of their modules) is not installed.

    False when another module is missing: the packages are there but broken.
    """
    name = error.name or ""
    return any(name == package or name.startswith(f"{package}.") for package in packages)


def skip(workload: str, reason: str) -> NoReturn:
    """Skip ``workload``: one line on stderr, exit status ``SKIP_EXIT_STATUS``."""
    print(registry.skip_line(workload, reason), file=sys.stderr)
    raise SystemExit(registry.SKIP_EXIT_STATUS)


def check_same_results(workload: str, results: Mapping[str, object]) -> None:
    """Raise :class:`PeerMismatchError` unless every side's result equals the first side's."""
    sides = iter(results.items())
    reference, expected = next(sides)
    for side, actual in sides:
        if actual != expected:
            raise PeerMismatchError(workload, reference, side, expected, actual)
