"""The caches' guarantees: bound, TTL, content-hash invalidation, import once."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference_impl.cache import ContentHashCache, EvictionReason, LazyImporter, LRUCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@given(st.integers(1, 16), st.lists(st.tuples(st.integers(0, 40), st.booleans()), max_size=200))
def test_lru_never_exceeds_its_bound_and_evicts_least_recent(
    bound: int, operations: list[tuple[int, bool]]
) -> None:
    evicted: list[tuple[int, EvictionReason]] = []
    cache: LRUCache[int, int] = LRUCache(bound, on_evict=lambda k, v, r: evicted.append((k, r)))
    recency: list[int] = []  # a model: most recent last
    for key, is_put in operations:
        if is_put:
            cache.put(key, key * 2)
            if key in recency:
                recency.remove(key)
            recency.append(key)
            while len(recency) > bound:
                assert evicted[-1 - (len(recency) - bound - 1)][0] == recency[0]
                recency.pop(0)
        else:
            value = cache.get(key)
            if key in recency:
                assert value == key * 2
                recency.remove(key)
                recency.append(key)
            else:
                assert value is None
        assert len(cache) <= bound
    assert len(cache) == len(recency)


def test_ttl_expires_entries_on_the_injected_clock() -> None:
    clock = FakeClock()
    reasons: list[EvictionReason] = []
    cache: LRUCache[str, int] = LRUCache(
        10, ttl_s=5.0, clock=clock, on_evict=lambda k, v, r: reasons.append(r)
    )
    cache.put("a", 1)
    clock.now = 4.9
    assert cache.get("a") == 1
    cache.put("b", 2)
    clock.now = 5.0
    assert cache.get("a") is None, "an entry exactly ttl old is expired"
    assert cache.get("b") == 2
    clock.now = 20.0
    assert cache.purge_expired() == 1
    assert len(cache) == 0
    assert reasons == [EvictionReason.EXPIRED, EvictionReason.EXPIRED]
    stats = cache.statistics()
    assert (stats.hits, stats.misses, stats.evictions) == (2, 1, 2)


def test_get_or_create_calls_the_factory_once_per_key() -> None:
    calls: list[str] = []
    cache: LRUCache[str, str] = LRUCache(4)

    def make(key: str) -> str:
        calls.append(key)
        return key.upper()

    for _ in range(3):
        assert cache.get_or_create("x", lambda: make("x")) == "X"
    assert calls == ["x"]


def test_content_cache_parses_once_while_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "profile.md"
    path.write_text("rule: 1\n")
    later = time.time_ns() + 10**12  # a clock well past the racy window
    cache: ContentHashCache[str] = ContentHashCache(
        lambda p, data: data.decode(), clock_ns=lambda: later
    )
    for _ in range(5):
        assert cache.get(path) == "rule: 1\n"
    assert cache.parses == 1
    assert cache.hashes == 1, "an old, unchanged file is trusted on its stat alone"


def test_content_cache_sees_an_edit_that_keeps_size_and_mtime(tmp_path: Path) -> None:
    path = tmp_path / "profile.md"
    path.write_text("limit: 10\n")
    old = 1_000_000_000_000_000_000
    os.utime(path, ns=(old, old))
    later = time.time_ns() + 10**12
    cache: ContentHashCache[str] = ContentHashCache(
        lambda p, data: data.decode(), clock_ns=lambda: later
    )
    assert cache.get(path) == "limit: 10\n"
    # Same size, same mtime: only the content tells.
    path.write_text("limit: 99\n")
    os.utime(path, ns=(old, old))
    assert cache.get(path) == "limit: 99\n"
    assert cache.parses == 2


def test_content_cache_hashes_recent_files_but_reparses_only_on_change(tmp_path: Path) -> None:
    path = tmp_path / "profile.md"
    path.write_text("a\n")
    cache: ContentHashCache[str] = ContentHashCache(lambda p, data: data.decode())
    cache.get(path)
    cache.get(path)
    assert cache.parses == 1
    assert cache.hashes == 2, "a file modified just now is hashed in case of a same-tick edit"
    path.write_text("b\n")
    assert cache.get(path) == "b\n"
    assert cache.parses == 2


def test_content_cache_reports_a_missing_file(tmp_path: Path) -> None:
    cache: ContentHashCache[str] = ContentHashCache(lambda p, data: data.decode())
    with pytest.raises(FileNotFoundError):
        cache.get(tmp_path / "absent.md")


def test_lazy_import_imports_once_for_100_simultaneous_callers(tmp_path: Path) -> None:
    module_file = tmp_path / "lazy_probe_module.py"
    module_file.write_text("LOADS = []\nLOADS.append(1)\n")
    sys.path.insert(0, str(tmp_path))
    try:
        importer = LazyImporter()

        async def main() -> None:
            modules = await asyncio.gather(*(importer.get("lazy_probe_module") for _ in range(100)))
            assert len({id(m) for m in modules}) == 1
            assert modules[0].LOADS == [1]
            assert await importer.get("lazy_probe_module") is modules[0]

        asyncio.run(main())
        assert importer.import_count == 1
        assert importer.statistics().hits == 1
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("lazy_probe_module", None)


def test_lazy_import_error_reaches_every_waiting_caller() -> None:
    importer = LazyImporter()

    async def main() -> None:
        results = await asyncio.gather(
            *(importer.get("no_such_module_anywhere") for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, ModuleNotFoundError) for r in results)

    asyncio.run(main())


def test_a_cancelled_first_caller_does_not_cancel_the_import_for_others() -> None:
    importer = LazyImporter()

    async def main() -> None:
        first = asyncio.ensure_future(importer.get("json"))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(importer.get("json"))
        await asyncio.sleep(0)
        first.cancel()
        module = await second
        assert module.__name__ == "json"
        assert first.cancelled()
        assert importer.loaded("json") is module
        assert await importer.get("json") is module

    asyncio.run(main())
    assert importer.import_count == 1
