"""Serial-line instruments (scales, analysers that print text lines) over pyserial.

A device either talks by itself (``query = ""``: the driver keeps the newest complete line) or
answers a query string per poll. The line is parsed by the bus's parser
(:mod:`edge.drivers.parsers`) and each point takes one field. Blocking reads run in the bus's one
worker thread, bounded by the bus timeout.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import serial

from edge.config import BusConfig
from edge.drivers.codec import scale_value
from edge.drivers.parsers import LineParseError, Parser, make_parser
from edge.drivers.portlock import port_reason
from edge.drivers.rtu import _PARITY
from edge.drivers.scheduler import BusScheduler, DeviceRuntime
from edge.drivers.transport import Link
from edge.drivers.worker import BusThread
from edge.errors import DeviceTimeout, FrameError, PortUnavailable, map_exceptions
from edge.readings import Value

__all__ = ["LinePoller", "LineTransport"]

_MAX_LINE = 4096  # a line longer than this is noise (wrong baud rate): drop it


class LineTransport(Link):
    """One serial port delivering text lines."""

    def __init__(self, bus: BusConfig) -> None:
        self.bus = bus
        self._worker = BusThread(f"bus-{bus.name}")
        self._serial: serial.Serial | None = None
        self._buffer = b""
        self._eol = bus.line_ending.encode() or b"\n"

    @property
    def is_open(self) -> bool:
        """Whether the port is open."""
        return self._serial is not None

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await self._worker.call(fn, *args)

    async def open(self) -> None:
        """Open the port; raises PortUnavailable."""
        await self._call(self._open_sync)

    async def close(self) -> None:
        """Close the port after a read in flight."""
        if self._serial is not None:
            try:
                await self._call(self._close_sync)
            except RuntimeError:
                self._close_sync()

    def shutdown(self) -> None:
        """Stop the worker thread."""
        self._worker.shutdown()

    async def fetch(self, label: str) -> str:
        """The newest complete line (query mode: the answer to the query)."""
        line: str = await self._call(self._fetch_sync, label)
        return line

    def _open_sync(self) -> None:
        if self._serial is not None:
            return
        b = self.bus
        try:
            self._serial = serial.Serial(
                b.port, b.baudrate, bytesize=b.bytesize, parity=_PARITY[b.parity],
                stopbits=b.stopbits, timeout=b.timeout, write_timeout=max(1.0, b.timeout),
                exclusive=True,  # one reader per line: a second one would steal its bytes
            )  # fmt: skip
        except (serial.SerialException, OSError) as exc:
            raise PortUnavailable(f"bus {b.name} port {b.port}: {port_reason(exc)}") from exc
        self._buffer = b""

    def _close_sync(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            # already gone (unplugged)
            with contextlib.suppress(OSError, serial.SerialException):
                port.close()

    def _fetch_sync(self, label: str) -> str:
        port = self._serial
        if port is None:
            raise PortUnavailable(f"{label}: port {self.bus.port} is not open")
        with map_exceptions(
            {serial.SerialException: PortUnavailable, OSError: PortUnavailable}, label
        ):
            if self.bus.query:
                port.reset_input_buffer()
                self._buffer = b""
                port.write(self.bus.query.encode() + self._eol)
            deadline = time.monotonic() + self.bus.timeout
            newest: bytes | None = None
            while True:
                waiting = port.in_waiting
                chunk = port.read(waiting) if waiting else b""
                if not chunk and newest is None:
                    # nothing buffered: block (bounded) for the next bytes
                    port.timeout = max(0.0, deadline - time.monotonic())
                    chunk = port.read(1)
                self._buffer += chunk
                *lines, self._buffer = self._buffer.split(self._eol)
                if len(self._buffer) > _MAX_LINE:
                    self._buffer = b""
                complete = [ln for ln in lines if ln.strip()]
                if complete:
                    newest = complete[-1]
                # Caught up, or the deadline passed while a device kept streaming: a worker
                # call must end within the timeout, or a Ctrl-C (which closes the port in this
                # worker, after this call) waits for ever behind a fast talker on a slow host.
                if newest is not None and (not port.in_waiting or time.monotonic() >= deadline):
                    return newest.decode("ascii", errors="replace").strip()
                if newest is None and time.monotonic() >= deadline:
                    raise DeviceTimeout(f"{label}: no line within {self.bus.timeout}s")


class LinePoller(BusScheduler):
    """Polls the devices of one serial-line bus."""

    def __init__(
        self, bus: BusConfig, devices: Sequence[DeviceRuntime], transport: LineTransport
    ) -> None:
        super().__init__(bus, devices, transport)
        self.line = transport
        self.parser: Parser = make_parser(bus)

    async def _run_plan(
        self, dev: DeviceRuntime, got: dict[str, tuple[Value, float, float]], rejected: set[str]
    ) -> bool:
        label = f"bus {self.bus.name} device {dev.device.name}"
        self._counters.requests += 1
        t0 = self._clock()
        try:
            text = await self.line.fetch(label)
        except DeviceTimeout as exc:
            self._timed_out(dev, exc)
            return True
        except PortUnavailable as exc:
            await self._port_lost(exc)
            return True
        latency = self._clock() - t0
        try:
            fields = self.parser(text)
        except LineParseError as exc:
            self._frame_discarded(dev, FrameError(f"{label}: {exc}"))
            dev.breaker.success()
            return False
        self._counters.responses += 1
        dev.breaker.success()
        ts = self._wall()
        for state in dev.points:
            p = state.point
            raw = fields.get(p.field)
            if raw is None:
                continue  # missing from this line: the point misses this poll
            value: Value = scale_value(raw, p.scale, p.offset) if isinstance(raw, float) else raw
            got[p.name] = (value, ts, latency)
        return False
