"""A runnable reference of the agent-workflow runtime: kernel and PRP runner.

The public face; the implementation lives in the modules named after each concept.
"""

from reference_impl.cache import ContentHashCache, LazyImporter, LRUCache
from reference_impl.errors import ConfigError, DeniedError, EvidenceError, ReferenceImplError
from reference_impl.events import EventLog, EvidenceChain, canonical_json, stable_hash, verify
from reference_impl.mode import Mode
from reference_impl.pool import OrderedPool, Outcome, OutcomeStatus, PoolItemError

__all__ = [
    "ConfigError",
    "ContentHashCache",
    "DeniedError",
    "EventLog",
    "EvidenceChain",
    "EvidenceError",
    "LRUCache",
    "LazyImporter",
    "Mode",
    "OrderedPool",
    "Outcome",
    "OutcomeStatus",
    "PoolItemError",
    "ReferenceImplError",
    "canonical_json",
    "stable_hash",
    "verify",
]
