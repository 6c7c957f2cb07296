"""Modbus TCP server (MBAP framing) on a loopback port, serving the same devices as RTU.

Each connection is served in order (one request at a time per connection). The unit id in the
MBAP header picks the device; 0 and 255 reach the only device of an endpoint that has one
(the usual convention for a TCP device that is not a gateway). Unknown units get exception 0x0B
(gateway target failed to respond), as a Modbus gateway answers.

Faults: ``corrupt_crc`` spoils the transaction id (TCP has no CRC; a wrong id is the
equivalent frame error); ``port_gone`` is :meth:`TcpServer.unplug`: the listener and every
connection close, and :meth:`TcpServer.plug` listens again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Callable, Iterable

from edge.firmware_sim.device import ModbusDevice
from edge.firmware_sim.pdu import exception_pdu

__all__ = ["TcpServer"]

GATEWAY_TARGET_FAILED = 0x0B


class TcpServer:
    """A Modbus TCP endpoint.

    Args:
        devices: the units behind the endpoint.
        host: address to listen on.
        port: TCP port; 0 picks a free one (kept across :meth:`unplug`/:meth:`plug`).
        clock: simulation clock handed to devices.
    """

    def __init__(
        self,
        devices: Iterable[ModbusDevice],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.devices = {d.unit: d for d in devices}
        self.host = host
        self.port = port
        self.clock = clock
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) the server listens on."""
        return self.host, self.port

    async def plug(self) -> None:
        """Start listening (again, on the same port)."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._connection, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def unplug_now(self) -> None:
        """Stop listening and drop every connection at once, as a device losing power."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # Aborting the transports ends each handler by a read error; cancelling the handler
        # tasks instead would make asyncio's streams log the cancellation as an error.
        for writer in list(self._writers):
            writer.transport.abort()

    async def unplug(self) -> None:
        """:meth:`unplug_now`, then wait until the connections are gone."""
        server = self._server
        self.unplug_now()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def serve(self) -> None:
        """Listen until cancelled."""
        await self.plug()
        try:
            await asyncio.Event().wait()
        finally:
            await self.unplug()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            while True:
                header = await reader.readexactly(7)
                tid, pid, length, unit = struct.unpack(">HHHB", header)
                if pid != 0 or not 2 <= length <= 254:
                    return  # not Modbus: drop the connection, as real devices do
                pdu = await reader.readexactly(length - 1)
                reply = self._dispatch(unit, pdu)
                if reply is None:
                    continue
                out_unit, out_pdu, corrupt, delay = reply
                if delay:
                    await asyncio.sleep(delay)
                if corrupt:
                    tid ^= 0x5A5A
                writer.write(struct.pack(">HHHB", tid, 0, len(out_pdu) + 1, out_unit) + out_pdu)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _dispatch(self, unit: int, pdu: bytes) -> tuple[int, bytes, bool, float] | None:
        self.requests += 1
        device = self.devices.get(unit)
        if device is None and unit in (0, 255) and len(self.devices) == 1:
            device = next(iter(self.devices.values()))
        if device is None:
            return unit, exception_pdu(pdu[0] if pdu else 0, GATEWAY_TARGET_FAILED), False, 0.0
        reply = device.handle(pdu, self.clock())
        if reply.pdu is None:
            return None
        out_unit = reply.unit if reply.unit != device.unit else unit
        return out_unit, reply.pdu, reply.corrupt, reply.delay if reply.at is None else reply.at
