"""The Modbus bus scheduler: deadline polling of every device on one bus, one transaction at a time.

Each device has a deadline; the scheduler sleeps until the earliest one, polls that device (all
its planned requests, back to back), emits its readings and moves its deadline on by exactly one
poll interval, so intervals do not drift. A deadline missed by a whole interval or more is an
*overrun*: the missed cycles are counted and skipped rather than run in a burst.

Failures are contained per device: a timeout ends that device's cycle at once (a dead device
costs one timeout, not one per request) and feeds its :class:`~edge.drivers.health.Breaker`; while
the breaker is open the device's cycles still emit (stale/comm_fail) but send nothing, so the
other devices keep their deadlines. A lost port closes the link; every cycle then emits without
I/O while the port is re-opened with its own exponential backoff.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from edge.config import BusConfig, DeviceConfig, PointConfig
from edge.drivers.base import BusPoller, Emit
from edge.drivers.codec import decode_point
from edge.drivers.health import Breaker, PointState
from edge.drivers.planner import BIT_TABLES, ReadRequest, plan_reads, split_request
from edge.drivers.stats import BusStats, Counters, DeviceStats
from edge.drivers.transport import Link, ModbusTransport, where
from edge.errors import DeviceException, DeviceTimeout, FrameError, PortUnavailable
from edge.log import event
from edge.readings import Reading, Value

__all__ = ["BACKOFF_CAP", "PORT_BACKOFF", "BusScheduler", "DeviceRuntime", "ModbusPoller"]


#: longest a dead device waits between probes, seconds (at least its poll interval)
BACKOFF_CAP = 30.0
#: below this a sleep costs more than it waits (epoll timers have millisecond resolution)
_TIMER_RESOLUTION = 0.001
#: port re-open backoff: first delay, cap (seconds)
PORT_BACKOFF = (0.25, 2.0)


@dataclass(slots=True)
class DeviceRuntime:
    """A device's plan, deadline, breaker and point states."""

    device: DeviceConfig
    points: list[PointState]
    plan: list[ReadRequest]
    breaker: Breaker
    deadline: float = 0.0
    polls: int = 0
    failed_polls: int = 0
    by_name: dict[str, PointState] = field(default_factory=dict)

    @classmethod
    def build(
        cls, device: DeviceConfig, points: Sequence[PointConfig], *, plan: bool = True
    ) -> DeviceRuntime:
        """Plan the device's reads (``plan=False``: a line device, which has no registers)."""
        states = [PointState(p, device.stale_after) for p in points]
        breaker = Breaker(base=device.poll, cap=max(BACKOFF_CAP, device.poll))
        rt = cls(device, states, plan_reads(device, points) if plan else [], breaker)
        rt.by_name = {s.point.name: s for s in states}
        return rt


class BusScheduler(BusPoller):
    """Deadline scheduling, port re-opening and quality for one bus; subclasses do the I/O."""

    def __init__(
        self,
        bus: BusConfig,
        devices: Sequence[DeviceRuntime],
        transport: Link,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.name = bus.name
        self.bus = bus
        self.devices = list(devices)
        self.transport = transport
        self._clock, self._wall = clock, wall
        self._counters = Counters()
        self._port_retry_at = 0.0
        self._port_delay = 0.0
        self._was_open = False

    def stats(self) -> BusStats:
        """Snapshot of the counters."""
        devices = {
            d.device.name: DeviceStats(
                d.device.name,
                d.device.unit,
                d.breaker.state,
                d.breaker.failures,
                d.polls,
                d.failed_polls,
                sum(1 for s in d.points if s.config_error),
            )
            for d in self.devices
        }
        return self._counters.snapshot(self.name, self.transport.is_open, devices)

    async def run(self, emit: Emit) -> None:
        """Poll until cancelled; see :class:`BusPoller`."""
        start = self._clock()
        for dev in self.devices:
            dev.deadline = start
        try:
            while self.devices:
                dev = min(self.devices, key=lambda d: d.deadline)
                delay = dev.deadline - self._clock()
                # The loop's timers are only millisecond-accurate: sleeping less would cost a
                # whole tick, so a deadline closer than that is served now (the I/O yields).
                if delay > _TIMER_RESOLUTION:
                    await asyncio.sleep(delay)
                readings = await self.poll_device(dev)
                await emit(readings)
                self._advance(dev)
            await asyncio.Event().wait()  # a bus without devices idles until cancelled
        finally:
            await self.transport.close()
            self.transport.shutdown()

    def _advance(self, dev: DeviceRuntime) -> None:
        dev.deadline += dev.device.poll
        late = self._clock() - dev.deadline
        if late >= dev.device.poll:
            skipped = int(late // dev.device.poll)
            self._counters.overruns += skipped
            dev.deadline += skipped * dev.device.poll

    async def _ensure_port(self, current: DeviceRuntime | None = None) -> bool:
        if self.transport.is_open:
            return True
        now = self._clock()
        # a deadline within the timer resolution is served early (see run): count it as due
        if now < self._port_retry_at - _TIMER_RESOLUTION:
            return False
        try:
            await self.transport.open()
        except PortUnavailable as exc:
            self._counters.port_errors += 1
            first, cap = PORT_BACKOFF
            self._port_delay = min(cap, self._port_delay * 2) if self._port_delay else first
            self._port_retry_at = self._clock() + self._port_delay
            # the retry happens at a poll: snap to it, so what is logged is what happens
            self._port_retry_at = self._next_attempt(current)
            event(
                "bus.port_unavailable",
                logging.WARNING,
                bus=self.name,
                error=str(exc),
                retry_in=round(self._port_retry_at - self._clock(), 3),
            )
            return False
        if self._was_open:
            self._counters.reopens += 1
            event("bus.port_reopened", logging.INFO, bus=self.name)
        self._was_open = True
        self._port_delay = 0.0
        return True

    def _next_attempt(self, current: DeviceRuntime | None) -> float:
        """When the port will really be tried again: the first poll at or after the backoff.

        The port is only re-opened by a device's poll, so the backoff delay alone is not when
        the next attempt happens (a device polled every 1 s retries a 0.25 s backoff after 1 s):
        the logged ``retry_in`` says the real time.
        """
        due = self._port_retry_at - _TIMER_RESOLUTION
        best = math.inf
        for d in self.devices:
            period = d.device.poll
            t = d.deadline + (period if d is current else 0.0)  # current: polled just now
            if t < due:
                t += math.ceil((due - t) / period) * period
            best = min(best, t)
        return best if best < math.inf else self._port_retry_at

    def _timed_out(self, dev: DeviceRuntime, exc: DeviceTimeout) -> None:
        """Count a timeout; open the device's breaker (logged once per backoff) when it trips."""
        self._counters.timeouts += 1
        delay = dev.breaker.failure(self._clock())
        if delay:
            event(
                "device.backoff",
                logging.WARNING,
                bus=self.name,
                device=dev.device.name,
                unit=dev.device.unit,
                error=str(exc),
                retry_in=round(delay, 3),
            )

    def _frame_discarded(self, dev: DeviceRuntime, exc: FrameError) -> None:
        """Count and log a reply that was discarded unread (CRC, unit id, function, format)."""
        self._counters.frame_errors += 1
        event(
            "device.frame_discarded",
            logging.INFO,
            bus=self.name,
            device=dev.device.name,
            error=str(exc),
        )

    async def _port_lost(self, exc: PortUnavailable) -> None:
        self._counters.port_errors += 1
        event("bus.port_lost", logging.WARNING, bus=self.name, error=str(exc))
        await self.transport.close()
        self._port_retry_at = self._clock() + PORT_BACKOFF[0]
        self._port_delay = PORT_BACKOFF[0]

    async def poll_device(self, dev: DeviceRuntime) -> list[Reading]:
        """Run one poll cycle of ``dev``: one reading per point. Never raises DeviceError."""
        dev.polls += 1
        got: dict[str, tuple[Value, float, float]] = {}
        rejected: set[str] = set()
        failed = False
        if dev.breaker.allows(self._clock()) and await self._ensure_port(dev):
            failed = await self._run_plan(dev, got, rejected)
        else:
            failed = True
        if failed:
            dev.failed_polls += 1
        now = self._wall()
        out: list[Reading] = []
        for state in dev.points:
            name = state.point.name
            if name in got:
                value, ts, latency = got[name]
                out.append(state.good(value, ts, latency))
            elif name in rejected:
                out.append(state.rejected(now))
            else:
                out.append(state.miss(now))
        return out

    @abc.abstractmethod
    async def _run_plan(
        self, dev: DeviceRuntime, got: dict[str, tuple[Value, float, float]], rejected: set[str]
    ) -> bool:
        """Do the device's I/O, filling ``got``; returns True when the cycle failed."""


class ModbusPoller(BusScheduler):
    """Polls every device of one RTU or TCP bus through one :class:`ModbusTransport`."""

    def __init__(
        self,
        bus: BusConfig,
        devices: Sequence[DeviceRuntime],
        transport: ModbusTransport,
        **kw: Callable[[], float],
    ) -> None:
        super().__init__(bus, devices, transport, **kw)
        self.modbus = transport

    async def _run_plan(
        self, dev: DeviceRuntime, got: dict[str, tuple[Value, float, float]], rejected: set[str]
    ) -> bool:
        """Send the device's requests; returns True when the cycle failed (timeout or port)."""
        pending = list(dev.plan)
        answered = False
        while pending:
            request = pending.pop(0)
            self._counters.requests += 1
            t0 = self._clock()
            try:
                values = await self.modbus.read(dev.device, request)
            except DeviceTimeout as exc:
                self._timed_out(dev, exc)
                return True  # a dead device costs one timeout per cycle, not one per request
            except PortUnavailable as exc:
                await self._port_lost(exc)
                return True
            except FrameError as exc:
                self._frame_discarded(dev, exc)
                answered = True  # something answered: the device is alive, keep going
                continue
            except DeviceException as exc:
                self._counters.responses += 1
                self._counters.exceptions += 1
                answered = True
                if exc.code in (2, 3):
                    pending[:0] = self._reject(dev, request, rejected, exc)
                else:
                    event(
                        "device.exception",
                        logging.INFO,
                        bus=self.name,
                        device=dev.device.name,
                        code=exc.code,
                        error=str(exc),
                    )
                continue
            latency = self._clock() - t0
            self._counters.responses += 1
            answered = True
            ts = self._wall()
            self._decode(dev, request, values, ts, latency, got)
        if answered:
            dev.breaker.success()
        return False

    def _reject(
        self, dev: DeviceRuntime, request: ReadRequest, rejected: set[str], exc: DeviceException
    ) -> list[ReadRequest]:
        """Exception 02/03: split the request; a single point is marked config_error for good."""
        index = dev.plan.index(request)
        if len(request.points) == 1:
            del dev.plan[index]
            name = request.points[0].point.name
            rejected.add(name)
            event(
                "point.config_error",
                logging.WARNING,
                bus=self.name,
                device=dev.device.name,
                point=name,
                error=str(exc),
            )
            return []
        halves = list(split_request(request))
        dev.plan[index : index + 1] = halves
        return halves

    def _decode(
        self,
        dev: DeviceRuntime,
        request: ReadRequest,
        values: list[int],
        ts: float,
        latency: float,
        got: dict[str, tuple[Value, float, float]],
    ) -> None:
        for item in request.points:
            lo = item.address - request.start
            chunk = values[lo : lo + item.count]
            try:
                if request.table in BIT_TABLES:
                    value: Value = bool(chunk[0])
                else:
                    value = decode_point(item.point, chunk)
            except (ValueError, IndexError) as exc:
                self._counters.frame_errors += 1
                event(
                    "point.decode_failed",
                    logging.INFO,
                    where=where(self.bus, dev.device, request),
                    point=item.point.name,
                    error=str(exc),
                )
                continue
            got[item.point.name] = (value, ts, latency)
