"""edge.beat: housekeeping released by a pulse in a wake-up the node has anyway, or by its timer."""

from __future__ import annotations

import asyncio

import pytest

from edge import beat as beat_module
from edge.beat import Beat


async def test_a_pulse_after_earliest_releases_the_waiter_in_that_wake_up() -> None:
    beat = Beat()
    loop = asyncio.get_running_loop()
    woke: list[float] = []

    async def housekeeping() -> None:
        await beat.sleep(0.2, 5.0)
        woke.append(loop.time())

    task = asyncio.create_task(housekeeping())
    await asyncio.sleep(0)
    beat.pulse(loop.time())  # too early: stays
    await asyncio.sleep(0.25)
    assert woke == []
    pulsed = loop.time()
    beat.pulse(pulsed)
    await asyncio.sleep(0)  # the released task runs in this same loop pass
    assert woke
    assert woke[0] - pulsed < 0.05
    await task


async def test_without_pulses_the_latest_time_wakes_it() -> None:
    beat = Beat()
    loop = asyncio.get_running_loop()
    start = loop.time()
    await beat.sleep(0.05, 0.3)
    assert 0.3 - 0.01 <= loop.time() - start < 2.0


async def test_a_pulse_releases_only_the_waiters_that_are_due() -> None:
    beat = Beat()
    loop = asyncio.get_running_loop()
    order: list[str] = []

    async def wait(name: str, earliest: float) -> None:
        await beat.sleep(earliest, 10.0)
        order.append(name)

    soon = asyncio.create_task(wait("soon", 0.05))
    later = asyncio.create_task(wait("later", 0.5))
    await asyncio.sleep(0.1)
    beat.pulse(loop.time())
    await asyncio.sleep(0.01)
    assert order == ["soon"]
    await asyncio.sleep(0.45)
    beat.pulse(loop.time())
    await asyncio.sleep(0.01)
    assert order == ["soon", "later"]
    await asyncio.gather(soon, later)


async def test_a_cancelled_waiter_leaves_no_timer_and_is_forgotten() -> None:
    beat = Beat()
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(beat.sleep(0.01, 60.0))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    scheduled = loop._scheduled  # type: ignore[attr-defined]  # the loop's timer queue
    assert not [h for h in scheduled if not h.cancelled() and h._callback is beat_module._release]
    beat.pulse(loop.time())  # the cancelled one is dropped, nothing raises
    assert beat._waiters == []
