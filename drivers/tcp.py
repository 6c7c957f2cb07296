"""Modbus TCP reads over asyncio streams: one connection per bus, one request at a time.

Our own MBAP framing (7-byte header: transaction id, protocol 0, length, unit; then the PDU),
as the serial buses use our own RTU framing: a read is a dozen lines, and pymodbus's client put
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


class TcpTransport(ModbusTransport):
    """A Modbus TCP endpoint (a device, or a gateway with unit ids behind it)."""

    def __init__(self, bus: BusConfig) -> None:
        self.bus = bus
        host, _, port = bus.address.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tid = 0
        self._late: deque[int] = deque(maxlen=_LATE_KEPT)
        #: called with (sending, bytes) for every frame on the wire (``edge read --trace``)
        self.trace: Callable[[bool, bytes], None] | None = None
        self._lock_fd: int | None = None

    @property
    def is_open(self) -> bool:
        """Whether the TCP connection is up."""
        return self._writer is not None and not self._writer.is_closing()

    async def open(self) -> None:
        """Connect; raises PortUnavailable (also while ``edge write`` holds the endpoint)."""
        await self.close()
        if self._lock_fd is None:  # shared: readers coexist, edge write waits for them to end
            self._lock_fd = take_endpoint_lock(self.bus.address, exclusive=False)
        try:
            async with asyncio.timeout(max(1.0, 5 * self.bus.timeout)):
                reader, writer = await asyncio.open_connection(self.host, self.port)
        except ConnectionRefusedError:
            raise PortUnavailable(
                f"bus {self.bus.name} address {self.bus.address}: connection refused"
            ) from None
        except (TimeoutError, OSError) as exc:
            raise PortUnavailable(
                f"bus {self.bus.name} address {self.bus.address}: {exc or 'connect timed out'}"
            ) from exc
        self._reader, self._writer = reader, writer
        self._late.clear()

    async def close(self) -> None:
        """Drop the connection."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1.0):  # the socket is released, not left to the GC
                    await writer.wait_closed()

    def shutdown(self) -> None:
        """Release the endpoint lock (after close)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            release_endpoint_lock(fd, self.bus.address)

    async def read(self, device: DeviceConfig, request: ReadRequest) -> list[int]:
        """One request/response, bounded by the bus timeout."""

        def label() -> str:  # formatted for an error only (~2 us: it was made every read)
            return where(self.bus, device, request)

        reader, writer = self._reader, self._writer
        if reader is None or writer is None or writer.is_closing():
            raise PortUnavailable(f"{label()}: not connected to {self.bus.address}")
        function = _FUNCTION[request.table]
        self._tid = tid = self._tid % 0xFFFF + 1
        frame = _MBAP.pack(tid, 0, 6, device.unit) + _READ.pack(function, request.start,
                                                                 request.count)  # fmt: skip
        if self.trace is not None:
            self.trace(True, frame)
        try:
            writer.write(frame)
            async with asyncio.timeout(self.bus.timeout):
                while True:
                    head = await reader.readexactly(_MBAP.size)
                    rtid, protocol, length, unit = _MBAP.unpack(head)
                    if protocol != 0 or not 2 <= length <= _MAX_LENGTH:
                        await self.close()  # not a Modbus reply: the stream is out of step
                        raise FrameError(
                            f"{label()}: reply discarded: bad MBAP header {head.hex()}"
                        )
                    pdu = await reader.readexactly(length - 1)
                    if self.trace is not None:
                        self.trace(False, head + pdu)
                    if rtid == tid:
                        break
                    if rtid not in self._late:
                        raise FrameError(
                            f"{label()}: reply discarded: transaction id {rtid}, expected {tid}"
                        )
        except TimeoutError as exc:
            self._late.append(tid)
            raise DeviceTimeout(f"{label()}: no answer within {self.bus.timeout}s") from exc
        except (asyncio.IncompleteReadError, OSError) as exc:
            await self.close()
            raise PortUnavailable(f"{label()}: {exc or 'connection closed'}") from exc
        if unit != device.unit:
            raise FrameError(
                f"{label()}: reply discarded: device id {unit}, expected {device.unit}"
            )
        return _registers(label, function, request.count, pdu)


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
