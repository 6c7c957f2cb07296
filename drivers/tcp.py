"""Modbus TCP through pymodbus's asyncio client: one connection per bus, one request at a time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ExceptionResponse

from edge.config import BusConfig, DeviceConfig
from edge.drivers.planner import ReadRequest
from edge.drivers.portlock import release_endpoint_lock, take_endpoint_lock
from edge.drivers.transport import ModbusTransport, where
from edge.errors import DeviceException, DeviceTimeout, FrameError, PortUnavailable

__all__ = ["TcpTransport"]

# pymodbus logs every timeout at ERROR level; our counters and qualities already say it.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class TcpTransport(ModbusTransport):
    """A Modbus TCP endpoint (a device, or a gateway with unit ids behind it)."""

    def __init__(self, bus: BusConfig) -> None:
        self.bus = bus
        host, _, port = bus.address.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self._client: AsyncModbusTcpClient | None = None
        #: called with (sending, bytes) for every frame on the wire (``edge read --trace``)
        self.trace: Callable[[bool, bytes], None] | None = None
        self._lock_fd: int | None = None

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if self.trace is not None:
            self.trace(sending, data)
        return data

    @property
    def is_open(self) -> bool:
        """Whether the TCP connection is up."""
        return self._client is not None and self._client.connected

    async def open(self) -> None:
        """Connect; raises PortUnavailable (also while ``edge write`` holds the endpoint)."""
        await self.close()
        if self._lock_fd is None:  # shared: readers coexist, edge write waits for them to end
            self._lock_fd = take_endpoint_lock(self.bus.address, exclusive=False)
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            timeout=self.bus.timeout,
            retries=0,
            reconnect_delay=0,  # we reconnect ourselves, with our own backoff and counters
            trace_packet=self._trace_packet if self.trace is not None else None,
        )
        try:
            async with asyncio.timeout(max(1.0, 5 * self.bus.timeout)):
                ok = await client.connect()
        except (TimeoutError, OSError, ModbusException) as exc:
            client.close()
            raise PortUnavailable(
                f"bus {self.bus.name} address {self.bus.address}: {exc or 'connect timed out'}"
            ) from exc
        if not ok:
            client.close()
            raise PortUnavailable(
                f"bus {self.bus.name} address {self.bus.address}: connection refused"
            )
        self._client = client

    async def close(self) -> None:
        """Drop the connection."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def shutdown(self) -> None:
        """Release the endpoint lock (after close)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            release_endpoint_lock(fd, self.bus.address)

    async def read(self, device: DeviceConfig, request: ReadRequest) -> list[int]:
        """One request/response, bounded by the bus timeout."""
        label = where(self.bus, device, request)
        client = self._client
        if client is None or not client.connected:
            raise PortUnavailable(f"{label}: not connected to {self.bus.address}")
        calls = {
            "holding": client.read_holding_registers,
            "input": client.read_input_registers,
            "coil": client.read_coils,
            "discrete": client.read_discrete_inputs,
        }
        try:
            async with asyncio.timeout(self.bus.timeout + 0.5):
                reply = await calls[request.table](
                    request.start, count=request.count, device_id=device.unit
                )
        except TimeoutError as exc:
            raise DeviceTimeout(f"{label}: no answer within {self.bus.timeout}s") from exc
        except ConnectionException as exc:
            await self.close()
            raise PortUnavailable(f"{label}: {exc}") from exc
        except ModbusIOException as exc:
            text = str(exc)
            if "device id" in text or "transaction id" in text:
                raise FrameError(f"{label}: reply discarded: {text}") from exc
            if "CLOSING CONNECTION" in text:
                await self.close()
            raise DeviceTimeout(f"{label}: no answer within {self.bus.timeout}s") from exc
        except ModbusException as exc:
            raise FrameError(f"{label}: {exc}") from exc
        except OSError as exc:
            await self.close()
            raise PortUnavailable(f"{label}: {exc}") from exc
        if isinstance(reply, ExceptionResponse) or reply.isError():
            code = int(getattr(reply, "exception_code", 0))
            raise DeviceException(f"{label}: exception {code:02d}", code)
        if request.table in ("coil", "discrete"):
            return [int(b) for b in reply.bits[: request.count]]
        if len(reply.registers) != request.count:
            raise FrameError(
                f"{label}: asked for {request.count} registers, got {len(reply.registers)}"
            )
        return list(reply.registers)
