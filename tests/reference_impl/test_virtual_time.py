"""The virtual clock jumps instead of waiting, and changes nothing else."""

from __future__ import annotations

import asyncio

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
