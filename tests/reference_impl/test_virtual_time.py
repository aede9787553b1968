"""The virtual clock jumps instead of waiting, and changes nothing else."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from reference_impl import virtual_time


def test_sleeps_complete_at_exact_virtual_times() -> None:
    async def main() -> tuple[list[float], float]:
        loop = asyncio.get_running_loop()
        order: list[float] = []

        async def wait(seconds: float) -> None:
            await asyncio.sleep(seconds)
            order.append(loop.time())

        await asyncio.gather(wait(180.0), wait(20.0), wait(3600.0))
        return order, loop.time()

    order, end = virtual_time.run(main())
    assert order == [20.0, 180.0, 3600.0]
    assert end == 3600.0


def test_timeouts_fire_in_virtual_time() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(30.0):
                await asyncio.sleep(10_000.0)
        except TimeoutError:
            return loop.time()
        raise AssertionError("the timeout did not fire")

    assert virtual_time.run(main()) == 30.0


def test_real_io_still_completes() -> None:
    async def main() -> bytes:
        proc = await asyncio.create_subprocess_exec("echo", "hello", stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        return out

    assert virtual_time.run(main()) == b"hello\n"


def test_thread_work_is_not_skipped_by_a_jump() -> None:
    # Another task sleeps an hour: the clock must not jump to it while a thread
    # still works for the loop, or the thread's result would arrive an hour late.
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        sleeper = asyncio.ensure_future(asyncio.sleep(3600.0))
        await asyncio.to_thread(time.sleep, 0.05)
        back_at = loop.time()
        await sleeper
        return back_at, loop.time()

    back_at, end = virtual_time.run(main())
    assert back_at == 0.0
    assert end == 3600.0


def test_a_timeout_over_a_stuck_thread_still_fires_at_its_virtual_time() -> None:
    release = threading.Event()

    async def main() -> float:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(0.05):
                await asyncio.to_thread(release.wait, 30.0)
        except TimeoutError:
            return loop.time()
        finally:
            release.set()
        raise AssertionError("the timeout did not fire")

    assert virtual_time.run(main()) == 0.05


def test_default_executor_shutdown_is_awaited_in_real_time() -> None:
    # What asyncio.run does on Python 3.12+: join the default executor's threads
    # under a 300 s timeout. A worker still busy must be joined, not timed out
    # by a jump of the virtual clock (the 3.13 "did not finish joining" failure).
    async def main() -> tuple[float, int]:
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(max_workers=1)
        loop.set_default_executor(executor)
        busy = executor.submit(time.sleep, 0.05)  # behind the loop's back
        async with asyncio.timeout(300.0):
            await loop.shutdown_default_executor()
        assert busy.done()
        assert isinstance(loop, virtual_time.VirtualTimeLoop)
        return loop.time(), loop.pending_thread_work

    assert virtual_time.run(main()) == (0.0, 0)


def test_a_run_that_used_a_thread_closes_cleanly_after_long_virtual_waits() -> None:
    # asyncio.Runner.close shuts the default executor down (under a timeout on
    # 3.12+); with warnings as errors, a timed-out join would fail this test.
    async def main() -> float:
        await asyncio.to_thread(sum, [1, 2, 3])
        await asyncio.sleep(86_400.0)
        return asyncio.get_running_loop().time()

    assert virtual_time.run(main()) == 86_400.0


def test_executor_futures_are_counted_until_done() -> None:
    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, virtual_time.VirtualTimeLoop)
        release = threading.Event()
        future = loop.run_in_executor(None, release.wait, 30.0)
        try:
            during = loop.pending_thread_work
        finally:
            release.set()
        await future
        await asyncio.sleep(0)  # the done callback runs on the next turn
        return during, loop.pending_thread_work

    assert virtual_time.run(main()) == (1, 0)
