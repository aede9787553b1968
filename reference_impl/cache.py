"""Bounded caches: an LRU mapping with TTL, a content-hash file cache, a cached lazy import.

Guarantees:

* :class:`LRUCache` never holds more than ``max_entries``; an entry older than
  ``ttl_s`` (on the injected clock) is never returned. Every eviction, by size or
  by age, is reported to ``on_evict``.
* :class:`ContentHashCache` returns a fresh parse whenever the file's *content*
  changed, even when an edit kept its size and modification time; an unchanged
  file is parsed once.
* :class:`LazyImporter` imports each module once, in a worker thread so that the
  event loop is never blocked, however many callers ask at the same moment; later
  calls cost a dictionary lookup.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import importlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Generic, TypeVar

__all__ = [
    "CacheStatistics",
    "ContentHashCache",
    "EvictionReason",
    "LRUCache",
    "LazyImporter",
]

K = TypeVar("K")
V = TypeVar("V")
P = TypeVar("P")

_MISSING = object()


class EvictionReason(enum.Enum):
    """Why an entry left a cache."""

    SIZE = "size"
    EXPIRED = "expired"
    INVALIDATED = "invalidated"


@dataclass(frozen=True, slots=True)
class CacheStatistics:
    """A snapshot of one cache's counters."""

    name: str
    entries: int
    max_entries: int
    hits: int
    misses: int
    evictions: int


class LRUCache(Generic[K, V]):
    """A mapping bounded to ``max_entries``, least recently used out first, with an optional TTL.

    Expired entries are dropped when touched and by :meth:`purge_expired`; the
    size bound holds at every moment.
    """

    def __init__(
        self,
        max_entries: int,
        *,
        ttl_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_evict: Callable[[K, V, EvictionReason], object] | None = None,
        name: str = "lru",
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be a positive integer, got {max_entries}")
        if ttl_s is not None and ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        self.name = name
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._on_evict = on_evict
        # key -> (value, stored_at)
        self._entries: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return self.get(key, _MISSING) is not _MISSING  # type: ignore[arg-type]  # a probe, any key

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value for ``key`` if present and fresh (now most recently used), else ``default``."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return default
        value, stored_at = entry
        if self.ttl_s is not None and self._clock() - stored_at >= self.ttl_s:
            del self._entries[key]
            self._evicted(key, value, EvictionReason.EXPIRED)
            self.misses += 1
            return default
        self._entries.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: K, value: V) -> None:
        """Store ``value``; evict the least recently used entries beyond the bound."""
        entries = self._entries
        if key in entries:
            entries.move_to_end(key)
        entries[key] = (value, self._clock())
        while len(entries) > self.max_entries:
            old_key, (old_value, _) = entries.popitem(last=False)
            self._evicted(old_key, old_value, EvictionReason.SIZE)

    def get_or_create(self, key: K, factory: Callable[[], V]) -> V:
        """The cached value, or ``factory()`` stored and returned."""
        value = self.get(key, _MISSING)  # type: ignore[arg-type]  # sentinel
        if value is _MISSING:
            value = factory()
            self.put(key, value)
        return value  # type: ignore[return-value]  # not the sentinel here

    def pop(self, key: K) -> V | None:
        """Remove ``key`` (reported as invalidated); its value, or None."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self._evicted(key, entry[0], EvictionReason.INVALIDATED)
        return entry[0]

    def purge_expired(self) -> int:
        """Drop every expired entry now; how many were dropped."""
        if self.ttl_s is None:
            return 0
        deadline = self._clock() - self.ttl_s
        stale = [k for k, (_, at) in self._entries.items() if at <= deadline]
        for key in stale:
            value, _ = self._entries.pop(key)
            self._evicted(key, value, EvictionReason.EXPIRED)
        return len(stale)

    def clear(self) -> None:
        """Remove every entry (each reported as invalidated)."""
        while self._entries:
            key, (value, _) = self._entries.popitem(last=False)
            self._evicted(key, value, EvictionReason.INVALIDATED)

    def statistics(self) -> CacheStatistics:
        """A frozen snapshot of the counters."""
        return CacheStatistics(
            self.name, len(self._entries), self.max_entries, self.hits, self.misses, self.evictions
        )

    def _evicted(self, key: K, value: V, reason: EvictionReason) -> None:
        self.evictions += 1
        if self._on_evict is not None:
            self._on_evict(key, value, reason)


@dataclass(frozen=True, slots=True)
class _FileEntry(Generic[P]):
    size: int
    mtime_ns: int
    ctime_ns: int
    stored_at_ns: int
    digest: str
    parsed: P


class ContentHashCache(Generic[P]):
    """Parsed files, re-parsed exactly when their content changes.

    A cheap ``stat`` decides when the stored parse is certainly current: same
    size, mtime and ctime (an edit whose mtime was put back still moves the
    ctime), and a ctime older than the file system's timestamp granularity
    window *of the moment the entry was stored* (git's "racy" rule: a file
    changed in the same tick as it was read may change again unseen). Otherwise
    the content is hashed, and only a different hash causes a
    new parse. An edit within the same timestamp tick that keeps the size is
    therefore caught by the hash, never served stale.
    """

    # Modification times closer to "now" than this may hide a second write in the
    # same tick (coarse file-system timestamps): such files are always hashed.
    RACY_WINDOW_NS = 2_000_000_000

    def __init__(
        self,
        parse: Callable[[Path, bytes], P],
        *,
        max_entries: int = 128,
        name: str = "content",
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._parse = parse
        self._clock_ns = clock_ns
        self._entries: LRUCache[Path, _FileEntry[P]] = LRUCache(max_entries, name=name)
        self.parses = 0
        self.hashes = 0

    def get(self, path: Path) -> P:
        """The parse of ``path``'s current content (``OSError`` if it cannot be read)."""
        key = path.resolve()
        st = os.stat(key)
        entry = self._entries.get(key)
        if (
            entry is not None
            and entry.size == st.st_size
            and entry.mtime_ns == st.st_mtime_ns
            and entry.ctime_ns == st.st_ctime_ns
            # As git does: a stat taken when the file was changing (ctime within
            # the window of the moment we stored it) is "racy": hash to be sure.
            and entry.stored_at_ns - st.st_ctime_ns > self.RACY_WINDOW_NS
        ):
            return entry.parsed
        content = key.read_bytes()
        self.hashes += 1
        digest = hashlib.sha256(content).hexdigest()
        if entry is not None and entry.digest == digest:
            parsed = entry.parsed
        else:
            parsed = self._parse(key, content)
            self.parses += 1
        self._entries.put(
            key,
            _FileEntry(
                len(content), st.st_mtime_ns, st.st_ctime_ns, self._clock_ns(), digest, parsed
            ),
        )
        return parsed

    def statistics(self) -> CacheStatistics:
        """A frozen snapshot of the underlying entry cache."""
        return self._entries.statistics()


class LazyImporter:
    """Import modules on first use, off the event loop, once each.

    Concurrent first callers share one import: the first starts it in a worker
    thread and the others await the same future. ``import_count`` counts real
    imports (``importlib.import_module`` calls), so tests can prove "once".
    """

    def __init__(self, name: str = "imports") -> None:
        self.name = name
        self._modules: dict[str, ModuleType] = {}
        self._loading: dict[str, asyncio.Future[ModuleType]] = {}
        self._lock = threading.Lock()
        self.import_count = 0
        self.hits = 0
        self.misses = 0
        self.import_seconds_total = 0.0

    def loaded(self, module_name: str) -> ModuleType | None:
        """The module if already imported through this importer (no import)."""
        return self._modules.get(module_name)

    async def get(self, module_name: str) -> ModuleType:
        """The module, imported in a worker thread on first use."""
        module = self._modules.get(module_name)
        if module is not None:
            self.hits += 1
            return module
        self.misses += 1
        loading = self._loading.get(module_name)
        if loading is None:
            # The import belongs to the importer, not to the first caller: a caller
            # cancelled while waiting never cancels it (the others still get it).
            loading = asyncio.ensure_future(asyncio.to_thread(self._import, module_name))
            self._loading[module_name] = loading
            loading.add_done_callback(lambda done: self._loaded(module_name, done))
        return await asyncio.shield(loading)

    def _loaded(self, module_name: str, done: asyncio.Future[ModuleType]) -> None:
        self._loading.pop(module_name, None)
        if not done.cancelled() and done.exception() is None:
            self._modules[module_name] = done.result()

    def get_sync(self, module_name: str) -> ModuleType:
        """The module, imported in this thread on first use (for code without a loop)."""
        module = self._modules.get(module_name)
        if module is not None:
            self.hits += 1
            return module
        self.misses += 1
        module = self._import(module_name)
        self._modules[module_name] = module
        return module

    def statistics(self) -> CacheStatistics:
        """A frozen snapshot (entries = modules held)."""
        return CacheStatistics(
            self.name, len(self._modules), len(self._modules), self.hits, self.misses, 0
        )

    def _import(self, module_name: str) -> ModuleType:
        with self._lock:
            start = time.perf_counter()
            module = importlib.import_module(module_name)
            self.import_seconds_total += time.perf_counter() - start
            self.import_count += 1
            return module
