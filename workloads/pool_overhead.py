"""pool_overhead: what the ordered pool costs per item, and how well it overlaps I/O.

Per round, interleaved in a balanced order, on the same no-op work (N items):
the ordered pool at concurrency 1/4/16/64 (each result committed through a
callback, a no-op function), the ordered pool at c=16 with no callback (results
dropped, as the floor drops them), ``asyncio.Semaphore`` + ``gather``,
``asyncio.TaskGroup`` with a semaphore, aiometer, the *floor* (16 plain worker
tasks pulling from one shared iterator: no ordering, no bookkeeping, no result
kept) and a plain sequential loop. Recorded per round: per-item costs of each
variant; ``item_cost_ratio_vs_semaphore`` (the ordered pool at c=16 over
Semaphore+gather, per item); ``item_cost_ratio_vs_floor`` (the pool's own cost
over the floor's, on the floor's terms: the pool with no callback, at c=16; the
callback's own cost is the difference of the two pool rows at c=16); and the
I/O efficiency of the pool and of Semaphore+gather (N items of a fixed sleep
at concurrency c: ideal makespan ceil(N/c) x sleep over the actual one) and
their ratio in the same round.
pyperf's value is the ordered pool's no-op batch at c=16.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import math
import time
from collections.abc import Awaitable, Callable

import aiometer

from reference_impl.pool import OrderedPool
from workloads._bench import Round, balanced, main, run_async

NOOP_ITEMS = 20_000
IO_ITEMS = 64
IO_SLEEP_S = 0.020
IO_CONCURRENCY = 16
# Turns of the event loop before each timed variant (see _settle).
_SETTLE_TURNS = 3


async def _noop() -> int:
    return 1


def _ignore(_index: int, _value: object) -> None:
    return None


async def ordered_pool(
    items: int,
    concurrency: int,
    job: Callable[[], Awaitable[int]],
    on_commit: Callable[[int, int], object] | None = _ignore,
) -> float:
    """The ordered pool, each result committed through ``on_commit`` (None: run for
    effect, results dropped)."""
    pool: OrderedPool[int] = OrderedPool(concurrency)
    start = time.perf_counter()
    await pool.run([job] * items, on_commit)
    return time.perf_counter() - start


async def semaphore_gather(
    items: int, concurrency: int, job: Callable[[], Awaitable[int]]
) -> float:
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> int:
        async with semaphore:
            return await job()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(items)))
    return time.perf_counter() - start


async def task_group(items: int, concurrency: int, job: Callable[[], Awaitable[int]]) -> float:
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> int:
        async with semaphore:
            return await job()

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(items):
            group.create_task(one())
    return time.perf_counter() - start


async def with_aiometer(items: int, concurrency: int, job: Callable[[], Awaitable[int]]) -> float:
    start = time.perf_counter()
    await aiometer.run_all([job] * items, max_at_once=concurrency)
    return time.perf_counter() - start


async def worker_floor(items: int, concurrency: int, job: Callable[[], Awaitable[int]]) -> float:
    """The floor of any pool: ``concurrency`` plain worker tasks pulling from one iterator.

    No ordering, no bookkeeping, no result kept: what running ``items`` jobs ``c`` at
    a time costs at least on this event loop. A reference, not a pool anyone should use.
    """
    jobs = iter([job] * items)

    async def worker() -> None:
        for each in jobs:
            await each()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start


async def sequential(items: int, _concurrency: int, job: Callable[[], Awaitable[int]]) -> float:
    start = time.perf_counter()
    for _ in range(items):
        await job()
    return time.perf_counter() - start


VARIANTS: dict[str, tuple[Callable[..., Awaitable[float]], int]] = {
    "ordered_pool_c1": (ordered_pool, 1),
    "ordered_pool_c4": (ordered_pool, 4),
    "ordered_pool_c16": (ordered_pool, 16),
    "ordered_pool_c64": (ordered_pool, 64),
    "ordered_pool_no_commit_c16": (functools.partial(ordered_pool, on_commit=None), 16),
    "semaphore_gather_c16": (semaphore_gather, 16),
    "task_group_c16": (task_group, 16),
    "aiometer_c16": (with_aiometer, 16),
    "floor_c16": (worker_floor, 16),
    "sequential": (sequential, 1),
}


async def _sleep_job() -> int:
    await asyncio.sleep(IO_SLEEP_S)
    return 1


async def _settle() -> None:
    """Start a variant on a quiet loop and a collected heap.

    After Semaphore+gather's 20,000 tasks the next variant ran 3-4x slower (the floor:
    0.47 µs an item against 0.12 µs) unless the loop ran a few times in between; a
    collection alone did not help. Without this, the variant after it in the round's
    order (every other round, the order being reversed) read a cost that was not its own.
    """
    gc.collect()
    for _ in range(_SETTLE_TURNS):
        await asyncio.sleep(0)


async def one_round(round_: Round, number: int) -> float:
    costs: dict[str, float] = {}
    for name in balanced(number, list(VARIANTS)):
        fn, concurrency = VARIANTS[name]
        await _settle()
        costs[name] = await fn(NOOP_ITEMS, concurrency, _noop) / NOOP_ITEMS
    for name, cost in costs.items():
        round_.record(f"item_cost_{name}", [cost])
    round_.record(
        "item_cost_ratio_vs_semaphore",
        [costs["ordered_pool_c16"] / costs["semaphore_gather_c16"]],
        unit="ratio",
    )
    round_.record(
        "item_cost_ratio_vs_floor",
        [costs["ordered_pool_no_commit_c16"] / costs["floor_c16"]],
        unit="ratio",
    )
    ideal = math.ceil(IO_ITEMS / IO_CONCURRENCY) * IO_SLEEP_S
    efficiencies: dict[str, float] = {}
    for name, fn in balanced(number, [("pool", ordered_pool), ("semaphore", semaphore_gather)]):
        efficiencies[name] = ideal / await fn(IO_ITEMS, IO_CONCURRENCY, _sleep_job)
    round_.record("io_efficiency", [efficiencies["pool"]], unit="ratio")
    round_.record("io_efficiency_semaphore", [efficiencies["semaphore"]], unit="ratio")
    round_.record(
        "io_efficiency_vs_semaphore",
        [efficiencies["pool"] / efficiencies["semaphore"]],
        unit="ratio",
    )
    return costs["ordered_pool_c16"] * NOOP_ITEMS


if __name__ == "__main__":
    main(
        "pool_overhead",
        lambda round_, number: run_async(one_round(round_, number)),
        __doc__.splitlines()[0] if __doc__ else "",
    )
