"""Loading shipped traces for workloads (read once per worker process, then reused)."""

from __future__ import annotations

import functools

from workloads.registry import trace_path
from workloads.trace import InputRecord, TraceReader

__all__ = ["load_records"]


@functools.cache
def load_records(name: str) -> tuple[InputRecord, ...]:
    """The input records of shipped trace ``name`` (its footer checked)."""
    return tuple(TraceReader(trace_path(name)))
