"""The bus scheduler with a scripted link: splitting on exception 02, overruns, no drift.

The link is a stand-in (the real ones are exercised in test_faults / test_acquire_cli); here it
lets the test script exactly which request fails and how long a transaction takes.
"""

from __future__ import annotations

import asyncio

from edge.config import BusConfig, DeviceConfig, PointConfig
from edge.drivers.planner import ReadRequest
from edge.drivers.scheduler import DeviceRuntime, ModbusPoller
from edge.drivers.transport import ModbusTransport
from edge.errors import DeviceException
from edge.readings import Quality, Reading


class ScriptedLink(ModbusTransport):
    """Registers 0..99 hold their own address; ``illegal`` addresses raise exception 02."""

    def __init__(self, illegal: frozenset[int] = frozenset(), delay: float = 0.0) -> None:
        self.illegal, self.delay = illegal, delay
        self.sent: list[tuple[int, int]] = []
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def read(self, device: DeviceConfig, request: ReadRequest) -> list[int]:
        self.sent.append((request.start, request.count))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.illegal & set(range(request.start, request.end + 1)):
            raise DeviceException("exception 02", 2)
        return list(range(request.start, request.end + 1))


def poller(link: ScriptedLink, poll: float, regs: list[int]) -> ModbusPoller:
    bus = BusConfig("b", "tcp", address="x:1")
    dev = DeviceConfig("d", "b", poll=poll, max_gap=10)
    pts = [PointConfig(f"r{r}", "d", register=r) for r in regs]
    return ModbusPoller(bus, [DeviceRuntime.build(dev, pts)], link)


async def test_exception_02_splits_and_marks_only_the_bad_point() -> None:
    link = ScriptedLink(illegal=frozenset({5}))
    p = poller(link, 1.0, [1, 3, 5, 7, 9])
    first = await p.poll_device(p.devices[0])
    assert {r.point: r.quality for r in first} == {
        "r1": Quality.GOOD, "r3": Quality.GOOD, "r5": Quality.CONFIG_ERROR,
        "r7": Quality.GOOD, "r9": Quality.GOOD,
    }  # fmt: skip
    assert [r.value for r in first if r.quality == Quality.GOOD] == [1, 3, 7, 9]
    # merged 1..9 fails, halves 1..3 ok and 5..9 fails, 5 alone fails, 7..9 ok
    assert link.sent == [(1, 9), (1, 3), (5, 5), (5, 1), (7, 3)]
    link.sent.clear()
    second = await p.poll_device(p.devices[0])
    assert link.sent == [(1, 3), (7, 3)]  # the learned split is kept, the bad register never read
    assert [r.quality for r in second].count(Quality.CONFIG_ERROR) == 1
    assert p.stats().devices["d"].config_errors == 1


async def test_overruns_are_counted_and_deadlines_do_not_drift() -> None:
    link = ScriptedLink(delay=0.03)
    p = poller(link, 0.01, [1])  # a 30 ms transaction every 10 ms: the bus cannot keep up
    cycles: list[float] = []

    async def emit(readings: list[Reading]) -> None:
        cycles.append(asyncio.get_running_loop().time())

    task = asyncio.create_task(p.run(emit))
    await asyncio.sleep(0.35)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    stats = p.stats()
    # every lost cycle is counted: skipped (deadline missed) or deferred (line budget)
    assert stats.overruns + stats.deferred >= 10
    d = stats.devices["d"]
    assert d.skipped + d.deferred == stats.overruns + stats.deferred
    assert d.polls + d.skipped + d.deferred >= 30  # 0.35 s of 10 ms cycles, all accounted
    assert len(cycles) <= 12  # skipped, not run in a burst afterwards

    link2 = ScriptedLink()
    p2 = poller(link2, 0.05, [1])
    ticks: list[float] = []

    async def emit2(readings: list[Reading]) -> None:
        ticks.append(asyncio.get_running_loop().time())

    task = asyncio.create_task(p2.run(emit2))
    await asyncio.sleep(0.52)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert p2.stats().overruns == 0
    # deadline scheduling: the k-th cycle stays near start + k * poll (no accumulated drift)
    assert abs((ticks[-1] - ticks[0]) - 0.05 * (len(ticks) - 1)) < 0.02
    assert not link2.is_open  # closed on cancellation
