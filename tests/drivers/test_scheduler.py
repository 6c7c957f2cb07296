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


class PerDeviceLink(ScriptedLink):
    """A transaction of device ``name`` takes ``delays[name]`` seconds (once, if ``once``)."""

    def __init__(self, delays: dict[str, float], once: bool = False) -> None:
        super().__init__()
        self.delays, self.once = delays, once

    async def read(self, device: DeviceConfig, request: ReadRequest) -> list[int]:
        delay = self.delays.get(device.name, 0.0)
        if self.once:
            self.delays.pop(device.name, None)
        if delay:
            await asyncio.sleep(delay)
        return list(range(request.start, request.end + 1))


def multi_poller(link: ScriptedLink, specs: list[tuple[str, float, int]]) -> ModbusPoller:
    bus = BusConfig("b", "tcp", address="x:1")
    runtimes = [
        DeviceRuntime.build(
            DeviceConfig(name, "b", poll=poll, priority=prio), [PointConfig(f"{name}.r", name)]
        )
        for name, poll, prio in specs
    ]
    return ModbusPoller(bus, runtimes, link)


async def run_recording(p: ModbusPoller, seconds: float) -> list[tuple[int, str]]:
    """(deadline offset in µs, device) of every cycle served, in order."""
    served: list[tuple[int, str]] = []
    by_name = {d.device.name: d for d in p.devices}

    async def emit(readings: list[Reading]) -> None:
        rt = by_name[readings[0].point.split(".")[0]]
        served.append((rt.deadline_us - rt.anchor, rt.device.name))

    task = asyncio.create_task(p.run(emit))
    await asyncio.sleep(seconds)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return served


async def test_late_deadline_is_skipped_and_counted_not_served_twice() -> None:
    # s's one 270 ms transaction at t=0 holds the line past p's deadlines 0.1 and 0.2
    link = PerDeviceLink({"s": 0.27}, once=True)
    p = multi_poller(link, [("p", 0.1, 0), ("s", 10.0, 0)])
    served = await run_recording(p, 0.75)
    slots = [off // 100_000 for off, name in served if name == "p"]
    assert slots[:2] == [0, 2]  # deadline 0.1 was missed by a whole interval: skipped
    assert len(slots) == len(set(slots))  # never one slot twice
    assert slots == sorted(slots)
    d = p.stats().devices["p"]
    assert d.skipped >= 1
    assert p.stats().overruns == d.skipped + p.stats().devices["s"].skipped
    # every configured cycle up to the last one served is polled or skipped, none vanishes
    assert d.polls + d.skipped == slots[-1] + 1
    gaps = p.take_gaps()
    assert (gaps[0].device, gaps[0].reason, gaps[0].cycles) == ("p", "skipped", 1)
    assert abs(gaps[0].last - gaps[0].first) < 1e-6
    assert p.take_gaps() == []  # collected once


async def test_ties_go_by_priority_then_config_order() -> None:
    p = multi_poller(
        ScriptedLink(), [("a", 0.05, 0), ("b", 0.05, 5), ("c", 0.05, 0), ("d", 0.1, 0)]
    )
    served = await run_recording(p, 0.32)
    groups: dict[int, list[str]] = {}
    for off, name in served:
        groups.setdefault(off, []).append(name)
    full = [g for off, g in groups.items() if off % 100_000 == 0 and len(g) == 4]
    assert full, groups
    assert all(g == ["b", "a", "c", "d"] for g in full), groups
    assert all(g[:3] == ["b", "a", "c"] for g in groups.values() if len(g) >= 3)


def test_deadlines_are_exact_multiples_of_the_interval() -> None:
    """15 x 0.1 s and 6 x 0.25 s are one instant (in floats 1.5000000000000002 and 1.5)."""
    p = multi_poller(ScriptedLink(), [("a", 0.1, 0), ("b", 0.25, 0)])
    a, b = p.devices
    a.slot, b.slot = 15, 6
    assert a.deadline_us == b.deadline_us == 1_500_000
    assert a.key() < b.key()
