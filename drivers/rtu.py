"""Modbus RTU over a serial line: one owner per port, one transaction at a time.

The bus scheduler issues one request at a time, so the line carries one transaction at a time,
shared by every device on it. Blocking calls (opening the port, which may take the exclusive
lock and set termios; closing it) run in the bus's own worker thread (:class:`BusThread`).

Two transaction engines share the port handling:

- :class:`RtuTransport` (the pollers): frames reads itself (:mod:`edge.drivers.rtu_frame`) and
  waits for the reply on the event loop with the port's non-blocking descriptor, bounded by the
  bus timeout (cancellation is immediate). minimalmodbus spends ~1-2 ms of Python per
  transaction (argument checks, a fixed sleep) plus two thread hand-offs: at 115200 baud that
  is a quarter of a 10-register exchange and capped a bus at ~75 % of the line limit
  (measured against firmware-sim); this engine reaches 90-98 % (``make bench``).
- :class:`MinimalmodbusTransport` (``edge probe``, and a cross-check in the tests): the same
  reads through minimalmodbus in the worker thread, an independent implementation.

Pacing: the next request goes out ``inter_frame`` (default 0) after the previous reply arrived.
With the default, the t3.5 frame gap is left to the time between reading a reply and writing
the next request (our processing, and a USB adapter's latency timer, typically 1-16 ms); a slave
that needs more silence gets it from ``inter_frame`` (e.g. ``"2ms"`` at 19200 baud). The
firmware simulator delivers a reply only after the silence that ends it, so with it the default
reaches the line limit without breaking the protocol.

Guard after a timeout: a device that answers just after the timeout would otherwise put its
reply on the line as the next request goes out, and that reply would be read as the next
device's (on a real wire the two would collide). So after a timeout the line must be quiet for
the bus's ``guard`` (:func:`~edge.drivers.transport.guard_window`) before anything is sent; any
input restarts the quiet time (bounded by two guards plus one longest frame), is drained unread
and is reported as the timed-out device's late reply (:meth:`take_late_reply`), never as the
next device's. A reply later still, arriving ahead of the next device's reply, is recognised by
the timed-out request's unit id, length and CRC, and is drained and reported the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import minimalmodbus
import serial

from edge.config import BusConfig, DeviceConfig
from edge.drivers.planner import BIT_TABLES, ReadRequest
from edge.drivers.portlock import port_reason
from edge.drivers.rtu_frame import (
    EXCEPTION_LENGTH,
    BadFrameError,
    ExceptionReplyError,
    build_read,
    crc16,
    parse_reply,
    reply_length,
)
from edge.drivers.transport import (
    ModbusTransport,
    frame_time,
    guard_window,
    where,
)
from edge.drivers.worker import BusThread
from edge.errors import (
    DeviceException,
    DeviceTimeout,
    EdgeError,
    FrameError,
    PortUnavailable,
    map_exceptions,
)

__all__ = ["MinimalmodbusTransport", "RtuTransport", "exception_code"]

_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}
_CODES = {
    "illegal function": 1,
    "illegal data address": 2,
    "illegal data value": 3,
    "device failure": 4,
    "device busy": 6,
    "negative acknowledge": 7,
    "memory parity": 8,
    "gateway path": 10,
    "gateway target": 11,
}

# minimalmodbus errors derive from OSError: list them before the OS/serial errors.
_MAPPING: dict[type[BaseException], type[EdgeError]] = {
    minimalmodbus.NoResponseError: DeviceTimeout,
    minimalmodbus.LocalEchoError: FrameError,
    minimalmodbus.InvalidResponseError: FrameError,
    minimalmodbus.MasterReportedException: FrameError,
    serial.SerialTimeoutException: PortUnavailable,
    serial.SerialException: PortUnavailable,
    OSError: PortUnavailable,
}


def exception_code(exc: BaseException) -> int:
    """The Modbus exception code behind a minimalmodbus SlaveReportedException's message."""
    text = str(exc).lower()
    for phrase, code in _CODES.items():
        if phrase in text:
            return code
    match = re.search(r"error code (\d+)", text)
    return int(match.group(1)) if match else 0


@dataclass(frozen=True, slots=True)
class _Missed:
    """The last request that timed out with nothing arriving in its guard window."""

    unit: int
    function: int
    count: int
    expired: float  #: monotonic time of the timeout


class RtuTransport(ModbusTransport):
    """One serial port shared by every device on the bus."""

    def __init__(self, bus: BusConfig) -> None:
        self.bus = bus
        self._worker = BusThread(f"bus-{bus.name}")
        self._serial: serial.Serial | None = None
        self._instruments: dict[int, minimalmodbus.Instrument] = {}
        self._last_end = 0.0
        self._gap = bus.inter_frame
        self._guard = guard_window(bus)
        self._late: tuple[int, float] | None = None
        self._missed: _Missed | None = None
        self.discarded_bytes = 0
        #: called with (sending, bytes) for every frame on the wire (``edge read --trace``);
        #: a reply is passed whole, or as far as it came when the wait timed out
        self.trace: Callable[[bool, bytes], None] | None = None
        self._rx = bytearray()

    @property
    def is_open(self) -> bool:
        """Whether the serial port is open."""
        return self._serial is not None

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await self._worker.call(fn, *args)

    async def open(self) -> None:
        """Open the port in the worker thread; raises PortUnavailable."""
        await self._call(self._open_sync)

    async def close(self) -> None:
        """Close the port after any transaction in flight (bounded by the bus timeout)."""
        if self._serial is None:
            return
        try:
            await self._call(self._close_sync)
        except RuntimeError:  # executor already shut down
            self._close_sync()

    def shutdown(self) -> None:
        """Stop the worker thread (after close)."""
        self._worker.shutdown()

    async def read(self, device: DeviceConfig, request: ReadRequest) -> list[int]:
        """One transaction, on the event loop with the port's non-blocking descriptor."""
        label = where(self.bus, device, request)
        port = self._serial
        if port is None:
            raise PortUnavailable(f"{label}: port {self.bus.port} is not open")
        wait = self._gap - (time.monotonic() - self._last_end)
        if wait > 0:
            await asyncio.sleep(wait)
        self._rx.clear()
        try:
            async with asyncio.timeout(self.bus.timeout):
                return await self._transact_async(port.fileno(), device, request, label)
        except TimeoutError:
            expired = time.monotonic()
            try:
                late = await self._quiet(port.fileno(), expired)
            except OSError as exc:
                raise PortUnavailable(f"{label}: {exc.strerror or exc}") from exc
            if late is not None:
                self._late = (device.unit, late)
            else:
                self._missed = _Missed(device.unit, request.function, request.count, expired)
            raise DeviceTimeout(f"{label}: no answer within {self.bus.timeout}s") from None
        except OSError as exc:  # EIO/ENXIO: the device node went away (unplugged)
            raise PortUnavailable(f"{label}: {exc.strerror or exc}") from exc
        finally:
            self._last_end = time.monotonic()
            if self.trace is not None and self._rx:
                self.trace(False, bytes(self._rx))

    async def _transact_async(
        self, fd: int, device: DeviceConfig, request: ReadRequest, label: str
    ) -> list[int]:
        unit, function = device.unit, request.function
        frame = build_read(unit, function, request.start, request.count)
        self._drain(fd)
        os.write(fd, frame)
        if self.trace is not None:
            self.trace(True, frame)
        if self.bus.echo:
            echo = await self._recv(fd, len(frame))
            if echo != frame:
                raise FrameError(
                    f"{label}: local echo {echo.hex()} differs from request {frame.hex()}"
                )
        data = await self._recv(fd, EXCEPTION_LENGTH)
        missed, self._missed = self._missed, None
        if missed is not None and data[0] == missed.unit != unit:
            data = await self._drop_late_reply(fd, data, missed, label)
        if data[1] != function | 0x80:
            data += await self._recv(fd, reply_length(function, request.count) - EXCEPTION_LENGTH)
        try:
            return parse_reply(unit, function, request.count, data)
        except ExceptionReplyError as exc:
            raise DeviceException(f"{label}: exception {exc.code:02d}", exc.code) from None
        except BadFrameError as exc:
            raise FrameError(f"{label}: reply discarded: {exc}") from None

    def take_late_reply(self) -> tuple[int, float] | None:
        """(unit id, seconds past its timeout) of the late reply drained last (None: none)."""
        late, self._late = self._late, None
        return late

    async def _drop_late_reply(self, fd: int, head: bytes, missed: _Missed, label: str) -> bytes:
        """The reply starting with ``head`` is the timed-out device's: drain it and report it.

        Returns the first bytes of the reply that follows (the one this transaction awaits).
        """
        if head[1] == missed.function | 0x80:
            length = EXCEPTION_LENGTH
        else:
            length = reply_length(missed.function, missed.count)
        frame = head + await self._recv(fd, length - len(head))
        if crc16(frame[:-2]) != int.from_bytes(frame[-2:], "little"):
            raise FrameError(f"{label}: reply discarded: reply from unit {head[0]}, CRC mismatch")
        self.discarded_bytes += length
        self._late = (missed.unit, time.monotonic() - missed.expired)
        return await self._recv(fd, EXCEPTION_LENGTH)

    async def _quiet(self, fd: int, expired: float) -> float | None:
        """Wait for ``guard`` of silence after a timeout at ``expired``, draining what arrives.

        Returns how late (seconds after the timeout) the first drained byte came, or None.
        """
        if self._guard <= 0:
            return None
        limit = expired + 2 * self._guard + frame_time(self.bus, 256)
        quiet_until = expired + self._guard
        first: float | None = None
        while True:
            if self._drain(fd):
                now = time.monotonic()
                first = now if first is None else first
                quiet_until = now + self._guard  # more input: the quiet time starts again
            remaining = min(quiet_until, limit) - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await _readable(fd)
        return None if first is None else first - expired

    def _drain(self, fd: int) -> int:
        """Drop bytes left on the line (a late reply, noise): they are never decoded."""
        dropped = 0
        while True:
            try:
                stale = os.read(fd, 4096)
            except BlockingIOError:
                break
            if not stale:
                break
            dropped += len(stale)
        self.discarded_bytes += dropped
        return dropped

    async def _recv(self, fd: int, n: int) -> bytes:
        """Exactly ``n`` bytes (the caller bounds the wait with the bus timeout)."""
        buf = b""
        while len(buf) < n:
            try:
                chunk = os.read(fd, n - len(buf))
            except BlockingIOError:
                chunk = b""
            if chunk:
                buf += chunk
                if self.trace is not None:
                    self._rx += chunk
                continue
            await _readable(fd)
        return buf

    # --- worker thread -------------------------------------------------------------------

    def _open_sync(self) -> None:
        if self._serial is not None:
            return
        try:
            port = serial.Serial(
                port=self.bus.port,
                baudrate=self.bus.baudrate,
                bytesize=self.bus.bytesize,
                parity=_PARITY[self.bus.parity],
                stopbits=self.bus.stopbits,
                timeout=self.bus.timeout,
                write_timeout=max(1.0, self.bus.timeout),
                exclusive=True,
            )
        except (serial.SerialException, OSError) as exc:
            raise PortUnavailable(
                f"bus {self.bus.name} port {self.bus.port}: {port_reason(exc)}"
            ) from exc
        self._serial = port
        for inst in self._instruments.values():
            inst.serial = port

    def _close_sync(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            # the device node is already gone (unplugged): nothing left to release
            with contextlib.suppress(OSError, serial.SerialException):
                port.close()

    def _read_sync(self, device: DeviceConfig, request: ReadRequest) -> list[int]:
        label = where(self.bus, device, request)
        port = self._serial
        if port is None:
            raise PortUnavailable(f"{label}: port {self.bus.port} is not open")
        wait = self._gap - (time.monotonic() - self._last_end)
        if wait > 0:
            time.sleep(wait)
        try:
            with map_exceptions(_MAPPING, label):
                return self._transact(port, device, request, label)
        finally:
            self._last_end = time.monotonic()

    def _transact(
        self, port: serial.Serial, device: DeviceConfig, request: ReadRequest, label: str
    ) -> list[int]:
        raise NotImplementedError  # pragma: no cover - engines override it


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, _wake, fut)
    try:
        await fut
    finally:
        loop.remove_reader(fd)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class MinimalmodbusTransport(RtuTransport):
    """The same link, with each transaction done by minimalmodbus in the worker thread."""

    async def read(self, device: DeviceConfig, request: ReadRequest) -> list[int]:
        """One blocking minimalmodbus transaction in the bus's worker thread."""
        result: list[int] = await self._call(self._read_sync, device, request)
        return result

    def _instrument(self, device: DeviceConfig) -> minimalmodbus.Instrument:
        inst = self._instruments.get(device.unit)
        if inst is None:
            inst = minimalmodbus.Instrument(self._serial, device.unit)
            inst.handle_local_echo = self.bus.echo
            inst.clear_buffers_before_each_transaction = True
            self._instruments[device.unit] = inst
        inst.serial = self._serial
        return inst

    def _transact(
        self, port: serial.Serial, device: DeviceConfig, request: ReadRequest, label: str
    ) -> list[int]:
        inst = self._instrument(device)
        try:
            if request.table in BIT_TABLES:
                values = inst.read_bits(request.start, request.count, request.function)
            else:
                values = inst.read_registers(request.start, request.count, request.function)
        except minimalmodbus.SlaveReportedException as exc:
            code = exception_code(exc)
            raise DeviceException(f"{label}: exception {code:02d}: {exc}", code) from exc
        return [int(v) for v in values]
