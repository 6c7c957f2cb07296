"""The bus scheduler: earliest-deadline-first polling of every device on one bus, one at a time.

Deadlines sit on a grid computed from the start time: device ``d``'s k-th deadline is
``start + k * poll`` in integer microseconds (never advanced by repeated float addition, so
deadlines that coincide -- 0.1 s x 15 and 0.25 s x 6 -- coincide exactly and do not drift).
The scheduler sleeps until the earliest deadline and polls that device (all its planned
requests, back to back); at coinciding deadlines the device with the higher ``priority`` goes
first, then config order, so the order is the same in every run.

Every configured cycle is polled, *skipped* or *deferred*, and every lost one is counted per
device (:class:`~edge.drivers.stats.DeviceStats`) and recorded as a :class:`Gap`:

- a deadline missed by a whole interval or more is skipped: the device is polled once for its
  latest passed deadline, never twice in a burst;
- the line budget (:mod:`edge.drivers.budget`) stretches the interval of a device whose cycles
  are out of proportion (slow answers, huge reads) by a whole factor of its interval when the
  line is over-committed; the cycles in between are deferred, the device's status says
  "polled late: line over-committed" (logged once, ``device.stretched``), and it returns to its
  interval when the line has room (``device.unstretched``).

Failures are contained per device: a timeout ends that device's cycle at once (a dead device
costs one timeout, not one per request) and feeds its :class:`~edge.drivers.health.Breaker`,
whose probes use a share of the line's spare capacity; while the breaker is open the device's
cycles still emit (stale/comm_fail) but send nothing. A reply drained in the guard window after
a timeout is counted as that device's late reply. A lost port closes the link; every cycle then
emits without I/O while the port is re-opened with its own exponential backoff.

This module holds :class:`BusScheduler` (the loop above) and :class:`ModbusPoller` (its Modbus
I/O). The per-device state it schedules, :class:`DeviceRuntime` (plan, deadline grid, breaker,
counters), lives in :mod:`edge.drivers.device_runtime` and is re-exported here.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence

from edge.config import BusConfig
from edge.drivers.base import BusPoller, Emit
from edge.drivers.budget import Load, probe_ceiling, spare_capacity, stretch_factors
from edge.drivers.device_runtime import _US, DeviceRuntime
from edge.drivers.health import BreakerState
from edge.drivers.planner import BIT_TABLES, ReadRequest, split_request
from edge.drivers.stats import STRETCHED, BusStats, Counters, DeviceStats, Gap
from edge.drivers.transport import Link, ModbusTransport, guard_window, where
from edge.errors import DeviceException, DeviceTimeout, FrameError, PortUnavailable
from edge.log import event
from edge.readings import Reading, Value

__all__ = ["BACKOFF_CAP", "PORT_BACKOFF", "BusScheduler", "DeviceRuntime", "ModbusPoller"]


#: default longest a dead device waits between probes on a busy line, seconds (backoff_cap)
BACKOFF_CAP = 30.0
#: below this a sleep costs more than it waits (epoll timers have millisecond resolution)
_TIMER_RESOLUTION = 0.001
#: port re-open backoff: first delay, cap (seconds)
PORT_BACKOFF = (0.25, 2.0)
#: how often the line budget is worked out again, seconds
REBUDGET_EVERY = 0.2
#: weight of the newest measured cycle in a device's cost (exponential moving average)
COST_WEIGHT = 0.3
#: a stretched device comes back only when its interval would fit with this much more cost
#: (hysteresis: a cost hovering at a threshold does not flap the interval)
RELAX_MARGIN = 1.1
#: gap records kept until collected (:meth:`BusScheduler.take_gaps`); more are counted, dropped
MAX_GAPS = 1000


class BusScheduler(BusPoller):
    """Deadline scheduling, line budget, port re-opening and quality for one bus.

    Subclasses do the I/O (:meth:`_run_plan`).
    """

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
        for i, dev in enumerate(self.devices):
            dev.order = i
        self.transport = transport
        self._clock, self._wall = clock, wall
        self._counters = Counters()
        self._port_retry_at = 0.0
        self._port_delay = 0.0
        self._was_open = False
        self._budget_at = float("-inf")
        self._spare = 1.0
        self._utilisation = 0.0
        # what probing a dead device costs the line: its timeout, then the guard
        self._probe_cost = bus.timeout + (guard_window(bus) if bus.kind == "rtu" else 0.0)
        self._gaps: list[Gap] = []
        #: (device, reason) -> (index in _gaps, last deadline µs, stretch) of its open record
        self._open_gap: dict[tuple[str, str], tuple[int, int, int]] = {}

    def stats(self) -> BusStats:
        """Snapshot of the counters."""
        devices = {d.device.name: self._device_stats(d) for d in self.devices}
        return self._counters.snapshot(
            self.name, self.transport.is_open, devices, round(self._utilisation, 6)
        )

    def _device_stats(self, d: DeviceRuntime) -> DeviceStats:
        state = d.breaker.state
        if state is BreakerState.BACKOFF:
            status = str(state)
        else:
            status = STRETCHED if d.stretch > 1 else "ok"
        return DeviceStats(
            d.device.name,
            d.device.unit,
            state,
            d.breaker.failures,
            d.polls,
            d.failed_polls,
            sum(1 for s in d.points if s.config_error),
            skipped=d.skipped,
            deferred=d.deferred,
            late_replies=d.late_replies,
            last_lateness=d.last_lateness,
            frame_errors=d.frame_errors,
            interval=d.device.poll * d.stretch,
            stretch=d.stretch,
            stretches=d.stretches,
            cost=d.cost or 0.0,
            status=status,
        )

    def take_gaps(self) -> list[Gap]:
        """The gap records (cycles not polled) since the last call, oldest first."""
        gaps, self._gaps = self._gaps, []
        self._open_gap.clear()
        return gaps

    async def run(self, emit: Emit) -> None:
        """Poll until cancelled; see :class:`BusPoller`."""
        start = self._now_us()
        for dev in self.devices:
            dev.anchor, dev.slot = start, 0
        try:
            while self.devices:
                self._plan_probes()
                dev = min(self.devices, key=DeviceRuntime.key)
                delay = (dev.deadline_us - self._now_us()) / _US
                # The loop's timers are only millisecond-accurate: sleeping less would cost a
                # whole tick, so a deadline closer than that is served now (the I/O yields).
                if delay > _TIMER_RESOLUTION:
                    await asyncio.sleep(delay)
                    continue  # choose again: a dead device's probe may have fallen due
                self._catch_up(dev)
                readings = await self.poll_device(dev)
                dev.probe_at = None
                await emit(readings)
                self._advance(dev)
                self._rebudget()
            await asyncio.Event().wait()  # a bus without devices idles until cancelled
        finally:
            await self.transport.close()
            self.transport.shutdown()

    def _plan_probes(self) -> None:
        """Place each dead device's probe that has fallen due (see :meth:`_probe_slot`)."""
        now = self._clock()
        for dev in self.devices:
            if (
                dev.probe_at is None
                and dev.breaker.state is BreakerState.BACKOFF
                and dev.breaker.allows(max(dev.deadline, now))
            ):
                dev.probe_at = self._probe_slot(dev)

    def _probe_slot(self, dev: DeviceRuntime) -> int:
        """When a probe due at the device's deadline goes (µs).

        A probe holds the line for a whole timeout. When the live device with the shortest
        interval falls due within that time, the probe goes right after it is served: then it
        costs that device one cycle at most (started just before its deadline, two).
        """
        due = dev.deadline_us
        live = [d for d in self.devices if d is not dev and d.breaker.state is BreakerState.OK]
        if not live:
            return due
        fastest = min(live, key=lambda d: (d.interval_us * d.stretch, d.order))
        step = fastest.interval_us * fastest.stretch
        after = fastest.deadline_us + max(0, -(-(due - fastest.deadline_us) // step)) * step
        return after if after < due + round(self._probe_cost * _US) else due

    def _now_us(self) -> int:
        return round(self._clock() * _US)

    def _catch_up(self, dev: DeviceRuntime) -> None:
        """Skip (and count) the device's deadlines missed by a whole interval or more.

        The device is then polled for its latest passed deadline: late, once, not in a burst.
        """
        step = dev.interval_us * dev.stretch
        late = self._now_us() - dev.deadline_us
        if late < step:
            return
        missed = late // step
        first = dev.deadline_us
        dev.slot += missed * dev.stretch
        cycles = missed * dev.stretch
        dev.skipped += cycles
        self._counters.overruns += cycles
        self._gap(dev, "skipped", first, dev.deadline_us - dev.interval_us, cycles, 1)

    def _advance(self, dev: DeviceRuntime) -> None:
        """Move the device to its next deadline; a stretched device defers the cycles between."""
        m = dev.stretch
        if m > 1:
            first = dev.deadline_us + dev.interval_us
            dev.deferred += m - 1
            self._gap(dev, "deferred", first, first + (m - 2) * dev.interval_us, m - 1, m)
        dev.slot += m

    def _gap(
        self, dev: DeviceRuntime, reason: str, first: int, last: int, n: int, stretch: int
    ) -> None:
        """Record deadlines not polled (``first``..``last``, µs on the clock).

        A record continues the device's previous one of the same kind when nothing but what
        the record says lies between: a skipped run right after another (no poll between), a
        deferred run one polled deadline after another at the same stretch.
        """
        key = (dev.device.name, reason)
        step = dev.interval_us * (1 if reason == "skipped" else 2)
        open_ = self._open_gap.get(key)
        offset = self._wall() - self._clock()
        wall_last = last / _US + offset
        if open_ is not None:
            at, prev_last, prev_stretch = open_
            if first - prev_last == step and stretch == prev_stretch:
                prev = self._gaps[at]
                self._gaps[at] = dataclasses.replace(prev, last=wall_last, cycles=prev.cycles + n)
                self._open_gap[key] = (at, last, stretch)
                return
        if len(self._gaps) >= MAX_GAPS:
            self._counters.gaps_dropped += 1
            return
        self._open_gap[key] = (len(self._gaps), last, stretch)
        self._gaps.append(Gap(dev.device.name, reason, first / _US + offset, wall_last, n, stretch))

    def _rebudget(self) -> None:
        """Work the line budget out again (at most every REBUDGET_EVERY seconds)."""
        now = self._clock()
        if now - self._budget_at < REBUDGET_EVERY:
            return
        self._budget_at = now
        alive = [d.breaker.state is BreakerState.OK for d in self.devices]
        loads = [
            Load(d.device.poll, d.cost if ok else None)
            for d, ok in zip(self.devices, alive, strict=True)
        ]
        need = stretch_factors(loads)
        relaxed = stretch_factors(
            [Load(ld.interval, None if ld.cost is None else ld.cost * RELAX_MARGIN) for ld in loads]
        )
        for dev, low, high in zip(self.devices, need, relaxed, strict=True):
            self._set_stretch(dev, min(max(dev.stretch, low), high))
        factors = [d.stretch for d in self.devices]
        self._utilisation = sum(
            ld.cost / (ld.interval * m) for ld, m in zip(loads, factors, strict=True) if ld.cost
        )
        self._spare = spare_capacity(loads, factors)
        dead = alive.count(False)
        for dev, ok in zip(self.devices, alive, strict=True):
            if not ok:
                dev.breaker.reclamp(self._probe_ceiling(dev, dead))

    @staticmethod
    def _measured(dev: DeviceRuntime, cost: float) -> None:
        """Fold one answered cycle's line time into the device's cost (moving average).

        A stretched cycle stands for ``stretch`` configured ones, so it weighs as much as they
        would have together: a device whose answers got fast again is back in a cycle or two.
        """
        if dev.cost is None:
            dev.cost = cost
            return
        weight = 1.0 - (1.0 - COST_WEIGHT) ** dev.stretch
        dev.cost += weight * (cost - dev.cost)

    def _probe_ceiling(self, dev: DeviceRuntime, dead: int) -> float:
        return probe_ceiling(self._spare, self._probe_cost, dead, dev.device.poll, dev.breaker.cap)

    def _set_stretch(self, dev: DeviceRuntime, factor: int) -> None:
        if factor == dev.stretch:
            return
        was, dev.stretch = dev.stretch, factor
        if was == 1:
            dev.stretches += 1
            event(
                "device.stretched",
                logging.WARNING,
                bus=self.name,
                device=dev.device.name,
                status=STRETCHED,
                interval=round(dev.device.poll * factor, 6),
                configured=dev.device.poll,
                cycle_ms=round((dev.cost or 0.0) * 1000, 1),
            )
        elif factor == 1:
            event(
                "device.unstretched",
                logging.INFO,
                bus=self.name,
                device=dev.device.name,
                interval=dev.device.poll,
                deferred=dev.deferred,
            )

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
            period = d.interval_us * d.stretch / _US  # a stretched device polls less often
            t = d.deadline + (period if d is current else 0.0)  # current: polled just now
            if t < due:
                t += math.ceil((due - t) / period) * period
            best = min(best, t)
        return best if best < math.inf else self._port_retry_at

    def _timed_out(self, dev: DeviceRuntime, exc: DeviceTimeout) -> None:
        """Count a timeout; open the breaker (logged once per backoff) when it trips.

        A late reply drained in the guard window is counted here: it is this device's, never
        the next one's.
        """
        self._counters.timeouts += 1
        self._late_reply()
        dead = sum(1 for d in self.devices if d.breaker.state is BreakerState.BACKOFF)
        if dev.breaker.state is BreakerState.OK:
            dead += 1  # this one, if it trips now
        delay = dev.breaker.failure(self._clock(), self._probe_ceiling(dev, dead))
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

    def _late_reply(self) -> None:
        """Count a late reply the link drained, for the device that timed out (by unit id)."""
        late = self.transport.take_late_reply()
        if late is None:
            return
        unit, seconds = late
        dev = next((d for d in self.devices if d.device.unit == unit), None)
        self._counters.late_replies += 1
        if dev is None:  # pragma: no cover - the link only reports units it asked
            return
        dev.late_replies += 1
        dev.last_lateness = seconds
        event(
            "device.late_reply",
            logging.INFO,
            bus=self.name,
            device=dev.device.name,
            unit=unit,
            late_ms=round(seconds * 1000, 1),
        )

    def _frame_discarded(self, dev: DeviceRuntime, exc: FrameError) -> None:
        """Count and log a reply that was discarded unread (CRC, unit id, function, format)."""
        self._counters.frame_errors += 1
        dev.frame_errors += 1
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
            t0 = self._clock()
            failed = await self._run_plan(dev, got, rejected)
            if not failed and dev.breaker.state is BreakerState.OK:
                self._measured(dev, self._clock() - t0)
        else:
            failed = True
        if failed:
            dev.failed_polls += 1
        now = self._wall()
        out: list[Reading] = []
        append = out.append
        for state in dev.points:
            name = state.point.name
            hit = got.get(name)
            if hit is not None:
                append(state.good(*hit))
            elif name in rejected:
                append(state.rejected(now))
            else:
                append(state.miss(now))
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
                self._late_reply()  # the previous device's, recognised ahead of this reply
            except DeviceTimeout as exc:
                self._timed_out(dev, exc)
                return True  # a dead device costs one timeout per cycle, not one per request
            except PortUnavailable as exc:
                await self._port_lost(exc)
                return True
            except FrameError as exc:
                self._late_reply()
                self._frame_discarded(dev, exc)
                answered = True  # something answered: the device is alive, keep going
                continue
            except DeviceException as exc:
                self._late_reply()
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
        bits = request.table in BIT_TABLES
        decoders = dev.decoders
        start = request.start
        for item in request.points:
            lo = item.address - start
            chunk = values[lo : lo + item.count]
            try:
                if bits:
                    value: Value = bool(chunk[0])
                else:
                    value = decoders[item.point.name](chunk)
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
