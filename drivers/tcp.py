"""Modbus TCP reads over an asyncio protocol: one connection per bus, one request at a time.

Our own MBAP framing (7-byte header: transaction id, protocol 0, length, unit; then the PDU),
as the serial buses use our own RTU framing: a read is a few dozen lines, and pymodbus's client put
a transaction manager, a framer and a logger between us and the socket on every poll, and 1.7 MB
of modules into a running node (docs/design.md, "Memory and CPU of a running node"). pymodbus
stays what the tests check our frames against and what ``edge write`` writes with.

Replies are matched by transaction id. One to a request that timed out (a slow device answering
late) is dropped and the wait goes on; any other mismatch (wrong id, unit or function, a length
that does not add up) is a :class:`FrameError`, and a header that cannot be a Modbus reply closes
the connection (the byte stream can no longer be trusted to be in step).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import deque
from collections.abc import Callable
from typing import cast

from edge.config import BusConfig, DeviceConfig
from edge.drivers.planner import ReadRequest
from edge.drivers.portlock import release_endpoint_lock, take_endpoint_lock
from edge.drivers.transport import ModbusTransport, where
from edge.errors import DeviceException, DeviceTimeout, FrameError, PortUnavailable

__all__ = ["TcpTransport"]

_FUNCTION = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
_MBAP = struct.Struct(">HHHB")  # transaction id, protocol id (0), length (unit + PDU), unit
_READ = struct.Struct(">BHH")  # function, start, count
_MAX_LENGTH = 254  # unit + the largest PDU (253)
_LATE_KEPT = 8  # ids of timed-out requests whose late replies are dropped quietly
_BUFFER_HIGH = 64 * 1024  # received bytes held before the peer is made to wait (streams' limit)


class _Receiver(asyncio.Protocol):
    """The connection's receiving side: a byte buffer and the one reader waiting on it.

    A plain protocol, not asyncio streams: a read waits on one future that arrival, the end of
    the connection or the transport's deadline watch resolves, where ``asyncio.timeout`` and two
    ``readexactly`` cost ~7 us a request (docs/design.md, "Memory and CPU of a running node").
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[bool] | None = None  # result: True when timed out
        self.ended = False
        self.error: Exception | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _BUFFER_HIGH and not self.paused and self.transport is not None:
            self.paused = True  # a peer that floods us waits, as a stream reader would make it
            self.transport.pause_reading()
        self.wake(False)

    def eof_received(self) -> bool:
        self.ended = True
        self.wake(False)
        return True  # half-open, as streams keep it: the read that meets the end closes it

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.error = exc
        self.wake(False)
        if not self.closed.done():
            self.closed.set_result(None)

    def wake(self, timed_out: bool) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(timed_out)

    def consumed(self) -> None:
        if self.paused and len(self.buffer) <= _BUFFER_HIGH // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()


class TcpTransport(ModbusTransport):
    """A Modbus TCP endpoint (a device, or a gateway with unit ids behind it)."""

    def __init__(self, bus: BusConfig) -> None:
        self.bus = bus
        host, _, port = bus.address.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self._conn: _Receiver | None = None
        self._tid = 0
        self._late: deque[int] = deque(maxlen=_LATE_KEPT)
        #: called with (sending, bytes) for every frame on the wire (``edge read --trace``)
        self.trace: Callable[[bool, bytes], None] | None = None
        self._lock_fd: int | None = None
        # The deadline watch: a read that has to wait sets it at its deadline (a later read
        # of the same burst finds it set and only moves the deadline: when it fires early it
        # is set again, deadlines only grow); an answered read cancels it, so no timer fires
        # between polls.
        self._deadline = 0.0
        self._watch: asyncio.TimerHandle | None = None

    @property
    def is_open(self) -> bool:
        """Whether the TCP connection is up."""
        conn = self._conn
        return conn is not None and conn.transport is not None and not conn.transport.is_closing()

    async def open(self) -> None:
        """Connect; raises PortUnavailable (also while ``edge write`` holds the endpoint)."""
        await self.close()
        if self._lock_fd is None:  # shared: readers coexist, edge write waits for them to end
            self._lock_fd = take_endpoint_lock(self.bus.address, exclusive=False)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(max(1.0, 5 * self.bus.timeout)):
                _, conn = await loop.create_connection(_Receiver, self.host, self.port)
        except ConnectionRefusedError:
            raise PortUnavailable(
                f"bus {self.bus.name} address {self.bus.address}: connection refused"
            ) from None
        except (TimeoutError, OSError) as exc:
            raise PortUnavailable(
                f"bus {self.bus.name} address {self.bus.address}: {exc or 'connect timed out'}"
            ) from exc
        self._conn = conn
        self._late.clear()

    async def close(self) -> None:
        """Drop the connection."""
        conn, self._conn = self._conn, None
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if conn is not None and conn.transport is not None:
            conn.transport.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1.0):  # the socket is released, not left to the GC
                    await asyncio.shield(conn.closed)

    def shutdown(self) -> None:
        """Release the endpoint lock (after close)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            release_endpoint_lock(fd, self.bus.address)

    def _expire(self) -> None:
        """The deadline watch fired: time the waiting read out, or wait on for a later one."""
        handle, self._watch = self._watch, None
        conn = self._conn
        if handle is None or conn is None or conn.waiter is None or conn.waiter.done():
            return  # no read waiting: the next one sets the watch again
        if handle.when() >= self._deadline:
            conn.wake(True)
        else:
            self._watch = asyncio.get_running_loop().call_at(self._deadline, self._expire)

    async def read(self, device: DeviceConfig, request: ReadRequest) -> list[int]:
        """One request/response, bounded by the bus timeout."""

        def label() -> str:  # formatted for an error only (~2 us: it was made every read)
            return where(self.bus, device, request)

        conn = self._conn
        if conn is None or conn.transport is None or conn.transport.is_closing():
            raise PortUnavailable(f"{label()}: not connected to {self.bus.address}")
        function = _FUNCTION[request.table]
        self._tid = tid = self._tid % 0xFFFF + 1
        frame = _MBAP.pack(tid, 0, 6, device.unit) + _READ.pack(function, request.start,
                                                                 request.count)  # fmt: skip
        if self.trace is not None:
            self.trace(True, frame)
        conn.transport.write(frame)
        loop = asyncio.get_running_loop()
        self._deadline = deadline = loop.time() + self.bus.timeout
        buffer = conn.buffer
        while True:
            if len(buffer) >= _MBAP.size:
                rtid, protocol, length, unit = _MBAP.unpack_from(buffer)
                if protocol != 0 or not 2 <= length <= _MAX_LENGTH:
                    head = bytes(buffer[: _MBAP.size])
                    await self.close()  # not a Modbus reply: the stream is out of step
                    raise FrameError(f"{label()}: reply discarded: bad MBAP header {head.hex()}")
                end = _MBAP.size - 1 + length
                if len(buffer) >= end:
                    reply = bytes(buffer[:end])
                    del buffer[:end]
                    conn.consumed()
                    if self.trace is not None:
                        self.trace(False, reply)
                    if rtid == tid:
                        break
                    if rtid not in self._late:
                        raise FrameError(
                            f"{label()}: reply discarded: transaction id {rtid}, expected {tid}"
                        )
                    continue
            if conn.ended:
                error = conn.error
                await self.close()
                raise PortUnavailable(f"{label()}: {error or 'connection closed'}") from error
            if loop.time() >= deadline or await self._wait(conn, loop):
                self._late.append(tid)
                raise DeviceTimeout(f"{label()}: no answer within {self.bus.timeout}s")
        watch = self._watch
        if watch is not None:
            # Answered: the watch would fire with nothing to time out, a wake-up of its own
            # half a timeout into a slow cycle (one a second at 1 s polls). A cancelled timer
            # costs no wake-up: the loop drops it when it reaches the head of its queue.
            watch.cancel()
            self._watch = None
        if unit != device.unit:
            raise FrameError(
                f"{label()}: reply discarded: device id {unit}, expected {device.unit}"
            )
        return _registers(label, function, request.count, reply[_MBAP.size :])

    async def _wait(self, conn: _Receiver, loop: asyncio.AbstractEventLoop) -> bool:
        """Wait for bytes, the end of the connection or the deadline; True when timed out."""
        if self._watch is None:
            self._watch = loop.call_at(self._deadline, self._expire)
        waiter: asyncio.Future[bool] = loop.create_future()
        conn.waiter = waiter
        try:
            return await waiter
        finally:
            conn.waiter = None


def _registers(label: Callable[[], str], function: int, count: int, pdu: bytes) -> list[int]:
    """The registers (or 0/1 per bit) of a reply PDU; exception replies raise."""
    if pdu[0] == function | 0x80 and len(pdu) == 2:
        raise DeviceException(f"{label()}: exception {pdu[1]:02d}", pdu[1])
    if pdu[0] != function:
        raise FrameError(f"{label()}: reply function {pdu[0]:#04x}, expected {function:#04x}")
    nbytes = (count + 7) // 8 if function in (1, 2) else 2 * count
    if len(pdu) != 2 + nbytes or pdu[1] != nbytes:
        raise FrameError(
            f"{label()}: byte count {pdu[1]} in a {len(pdu)}-byte reply, expected {nbytes}"
        )
    data = pdu[2:]
    if function in (1, 2):
        return [(data[i // 8] >> (i % 8)) & 1 for i in range(count)]
    return list(struct.unpack(f">{count}H", data))
