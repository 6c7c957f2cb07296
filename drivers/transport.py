"""What the bus scheduler needs from a Modbus link, and the helpers every link shares."""

from __future__ import annotations

import abc

from edge.config import BusConfig, DeviceConfig
from edge.drivers.planner import ReadRequest

__all__ = [
    "Link",
    "ModbusTransport",
    "default_guard",
    "frame_time",
    "guard_window",
    "silent_interval",
    "where",
]

#: the shortest default guard: USB-RS485 adapters hold received bytes up to their latency
#: timer (1-16 ms, often 1 ms on FTDI set up for Modbus) before the host sees them
GUARD_FLOOR = 0.01
#: default guard in character times at the bus's framing
GUARD_CHARS = 32


def where(bus: BusConfig, device: DeviceConfig, request: ReadRequest | None = None) -> str:
    """The message prefix naming bus, device, unit id and register (in the device's numbering)."""
    text = f"bus {bus.name} device {device.name} unit {device.unit}"
    if request is not None:
        first = request.start + device.address_base
        span = f"{first}..{first + request.count - 1}" if request.count > 1 else f"{first}"
        text += f" {request.table} register {span}"
    return text


def _bits_per_char(bus: BusConfig) -> int:
    return 1 + bus.bytesize + (0 if bus.parity == "N" else 1) + bus.stopbits


def silent_interval(bus: BusConfig) -> float:
    """The Modbus RTU t3.5 frame gap: 3.5 characters, fixed 1.75 ms above 19200 baud."""
    if bus.baudrate > 19200:
        return 0.00175
    return 3.5 * 11 / bus.baudrate


def frame_time(bus: BusConfig, nbytes: int) -> float:
    """Seconds ``nbytes`` take on the line at the bus's framing."""
    return nbytes * _bits_per_char(bus) / bus.baudrate


def default_guard(bus: BusConfig) -> float:
    """The guard after a timeout when the bus does not set one: 32 character times, >= 10 ms.

    32 characters is 16.7 ms at 19200 8N1, 33.3 ms at 9600, 10 ms (the floor) at 115200.
    """
    return max(GUARD_FLOOR, frame_time(bus, GUARD_CHARS))


def guard_window(bus: BusConfig) -> float:
    """The bus's guard: ``guard`` when set (0 = none), else :func:`default_guard`."""
    return default_guard(bus) if bus.guard is None else bus.guard


class Link(abc.ABC):
    """A port or connection owned by exactly one scheduler.

    Implementations translate every third-party error into :mod:`edge.errors` types whose
    message starts with :func:`where`.
    """

    @property
    @abc.abstractmethod
    def is_open(self) -> bool:
        """Whether the link is usable now."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Open the port/connection. Raises PortUnavailable."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close it; idempotent, never raises."""

    def shutdown(self) -> None:  # noqa: B027 - optional hook, most links have nothing to release
        """Release worker threads, if any (after close)."""

    def take_late_reply(self) -> tuple[int, float] | None:
        """(unit id, seconds past its timeout) of a late reply drained since the last call.

        Drained in the guard window after the timeout, or recognised ahead of the next
        device's reply; None when there was none. Links that match replies to requests
        otherwise (TCP transaction ids) always answer None.
        """
        return None


class ModbusTransport(Link):
    """One Modbus link (a serial line or a TCP connection)."""

    @abc.abstractmethod
    async def read(self, device: DeviceConfig, request: ReadRequest) -> list[int]:
        """Perform one read transaction; registers, or 0/1 per bit for coils/discrete inputs.

        Raises:
            DeviceTimeout, FrameError, DeviceException, PortUnavailable.
        """
