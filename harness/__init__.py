"""The harness: run the workloads, check determinism, compare, report.

Public face; the implementation lives in the modules named for each concept.
"""

from harness.errors import (
    BundleError,
    EnvironmentRefused,
    HarnessError,
    RefError,
    TargetsError,
    TraceError,
    WorkloadError,
)

__all__ = [
    "BundleError",
    "EnvironmentRefused",
    "HarnessError",
    "RefError",
    "TargetsError",
    "TraceError",
    "WorkloadError",
]
