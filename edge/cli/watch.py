"""Links that watch every transaction for ``edge read`` and ``edge record``.

The pollers are the runtime's own (same scheduling, breaker and quality rules); only their
links are wrapped, so the tool can show what the runtime cannot put in a Reading: the raw
words behind each value, the frames on the wire, and why a device failed, diagnosed once per
device instead of as a stream of log lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from edge.cli.diagnose import Diagnosis, diagnose
from edge.config import BusConfig, DeviceConfig
from edge.drivers.build import default_link
from edge.drivers.line import LineTransport
from edge.drivers.planner import ReadRequest
from edge.drivers.rtu import RtuTransport
from edge.drivers.tcp import TcpTransport
from edge.drivers.transport import Link, ModbusTransport
from edge.errors import DeviceError, DeviceException, PortUnavailable

__all__ = ["Problem", "Watch", "WatchedLine", "WatchedModbus"]

#: trace sink: (bus name, request number, sending, frame bytes)
TraceSink = Callable[[str, int, bool, bytes], None]


@dataclass(frozen=True, slots=True)
class Problem:
    """A failure seen on a device (or on its whole bus): where and what."""

    diagnosis: Diagnosis
    where: str = ""  #: "holding 256..259" for a request, "" for the device or bus


@dataclass(slots=True)
class Watch:
    """What the watched links saw; read by the command between poll cycles."""

    trace: TraceSink | None = None
    raw: dict[str, tuple[int, ...]] = field(default_factory=dict)  #: point -> raw words/bits
    lines: dict[str, str] = field(default_factory=dict)  #: line bus -> last line heard
    cycle: dict[str, list[Problem]] = field(default_factory=dict)  #: device -> this cycle's
    bus_down: dict[str, Problem] = field(default_factory=dict)  #: bus -> why it cannot open
    requests: dict[str, int] = field(default_factory=dict)  #: bus -> requests sent

    def link(self, bus: BusConfig) -> Link:
        """The link for ``bus``, watched (use as ``build_pollers(links=watch.link)``)."""
        if bus.kind == "line":
            return WatchedLine(bus, self)
        inner = default_link(bus)
        if self.trace is not None and isinstance(inner, RtuTransport | TcpTransport):
            sink = self.trace
            inner.trace = lambda sending, data: sink(
                bus.name, self.requests.get(bus.name, 0), sending, data
            )
        assert isinstance(inner, ModbusTransport)
        return WatchedModbus(inner, self)

    def take(self, device: str) -> list[Problem]:
        """The problems of ``device``'s last cycle (and forget them)."""
        return self.cycle.pop(device, [])

    def _count(self, bus: str) -> None:
        self.requests[bus] = self.requests.get(bus, 0) + 1

    def _port_failed(self, bus: BusConfig, exc: PortUnavailable) -> None:
        self.bus_down[bus.name] = Problem(diagnose(exc, bus))

    def _failed(self, bus: BusConfig, device: DeviceConfig, exc: DeviceError, where: str) -> None:
        problem = Problem(diagnose(exc, bus, device.unit), where)
        if isinstance(exc, PortUnavailable):
            self.bus_down[bus.name] = problem
        self.cycle.setdefault(device.name, []).append(problem)


def _span(request: ReadRequest, device: DeviceConfig) -> str:
    first = request.start + device.address_base
    last = first + request.count - 1
    return f"{request.table} {first}" + (f"..{last}" if last > first else "")


class WatchedModbus(ModbusTransport):
    """A Modbus link that records raw words and failures in a :class:`Watch`."""

    def __init__(self, inner: ModbusTransport, watch: Watch) -> None:
        self.inner = inner
        self.bus: BusConfig = getattr(inner, "bus")  # noqa: B009 - every transport has one
        self.watch = watch

    @property
    def is_open(self) -> bool:
        """Whether the wrapped link is open."""
        return self.inner.is_open

    async def open(self) -> None:
        """Open the wrapped link, noting why it cannot be opened."""
        try:
            await self.inner.open()
        except PortUnavailable as exc:
            self.watch._port_failed(self.bus, exc)
            raise
        self.watch.bus_down.pop(self.bus.name, None)

    async def close(self) -> None:
        """Close the wrapped link."""
        await self.inner.close()

    def shutdown(self) -> None:
        """Release the wrapped link's threads and locks."""
        self.inner.shutdown()

    async def read(self, device: DeviceConfig, request: ReadRequest) -> list[int]:
        """One read through the wrapped link, watched."""
        self.watch._count(self.bus.name)
        try:
            values = await self.inner.read(device, request)
        except DeviceError as exc:
            where = _span(request, device) if isinstance(exc, DeviceException) else ""
            self.watch._failed(self.bus, device, exc, where)
            raise
        for item in request.points:
            lo = item.address - request.start
            self.watch.raw[item.point.name] = tuple(values[lo : lo + item.count])
        return values


class WatchedLine(LineTransport):
    """A serial-line link that records each line heard and why none came."""

    def __init__(self, bus: BusConfig, watch: Watch) -> None:
        super().__init__(bus)
        self.watch = watch

    async def open(self) -> None:
        """Open the port, noting why it cannot be opened."""
        try:
            await super().open()
        except PortUnavailable as exc:
            self.watch._port_failed(self.bus, exc)
            raise
        self.watch.bus_down.pop(self.bus.name, None)

    async def fetch(self, label: str) -> str:
        """The newest line, watched (the device is the bus's only one)."""
        self.watch._count(self.bus.name)
        device = DeviceConfig(label.rsplit(" device ", 1)[-1], self.bus.name, unit=0)
        try:
            text = await super().fetch(label)
        except DeviceError as exc:
            self.watch._failed(self.bus, device, exc, "")
            raise
        self.watch.lines[self.bus.name] = text
        if self.watch.trace is not None:
            self.watch.trace(
                self.bus.name, self.watch.requests[self.bus.name], False, text.encode()
            )
        return text
