"""What went wrong with a device, in one line a technician can act on: the reason and a hint.

The drivers' errors name bus, device, unit and register and carry the third-party error as
their cause; a commissioning tool says it once, in plain words, with what to check next
(unit id, baud rate, parity, A/B wiring, the ``dialout`` group, the gateway's unit id ...).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from edge.config import BusConfig
from edge.errors import DeviceError, DeviceException, DeviceTimeout, FrameError, PortUnavailable

__all__ = ["EXCEPTION_MEANINGS", "Diagnosis", "diagnose"]

#: Modbus exception codes (Modbus Application Protocol v1.1b3, section 7) and what to check.
EXCEPTION_MEANINGS: dict[int, tuple[str, str]] = {
    1: ("illegal function", "the device does not support this function: try another --table"),
    2: (
        "illegal data address",
        "the register does not exist on this device: check the register map and"
        " address_base (manuals often count from 1)",
    ),
    3: ("illegal data value", "the device refuses this count or value: read fewer registers"),
    4: ("server device failure", "the device failed while answering: check the device"),
    5: ("acknowledge", "the device accepted a long request: ask again later"),
    6: ("server device busy", "the device is busy: ask again later or poll less often"),
    8: ("memory parity error", "the device reports a memory fault: check the device"),
    10: (
        "gateway path unavailable",
        "the gateway has no route to this unit id: check the unit id and the gateway setup",
    ),
    11: (
        "gateway target device failed to respond",
        "nothing answered behind the gateway: check the unit id and the gateway's serial"
        " settings and wiring",
    ),
}


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """One failure: a short kind, the reason and what to check."""

    kind: str  #: no_answer | exception | port_missing | permission | port_busy | refused | ...
    reason: str
    hint: str

    def text(self) -> str:
        """``reason: hint`` as one line."""
        return f"{self.reason} -- {self.hint}" if self.hint else self.reason


def _os_error(exc: BaseException) -> OSError | None:
    """The first OSError with an errno in the cause chain (pyserial errors are OSErrors)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _serial_settings(bus: BusConfig) -> str:
    return f"{bus.baudrate} baud {bus.bytesize}{bus.parity}{bus.stopbits}"


def _port(bus: BusConfig, exc: PortUnavailable) -> Diagnosis:
    if bus.kind == "tcp":
        text = str(exc)
        if "in use by" in text:
            return Diagnosis("port_busy", text.split(": ", 1)[-1], "stop it first")
        if "refused" in text.lower():
            return Diagnosis(
                "refused",
                f"connection to {bus.address} refused",
                "is the device on, and is the port right (Modbus TCP is usually 502)?",
            )
        if "not connected" in text or "closed" in text.lower():
            return Diagnosis(
                "connection_lost",
                f"connection to {bus.address} lost",
                "the device or the network dropped it; it is re-opened",
            )
        return Diagnosis(
            "unreachable",
            f"cannot connect to {bus.address}",
            "check the address, the network and any firewall",
        )
    cause = _os_error(exc)
    code = cause.errno if cause is not None else None
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return Diagnosis(
            "port_missing",
            f"port {bus.port} does not exist",
            "is the adapter plugged in? ls /dev/serial/by-id/ lists the ones present",
        )
    if code in (errno.EACCES, errno.EPERM):
        return Diagnosis(
            "permission",
            f"permission denied on port {bus.port}",
            "add your user to the dialout group (sudo usermod -aG dialout $USER,"
            " then log in again)",
        )
    if code in (errno.EAGAIN, errno.EBUSY):
        return Diagnosis(
            "port_busy",
            f"port {bus.port} is in use by another program",
            "a running edge node owns it: stop the node, or read through it",
        )
    if code == errno.EIO or "not open" in str(exc):
        return Diagnosis(
            "port_lost", f"port {bus.port} went away", "unplugged? it is re-opened when it returns"
        )
    detail = cause.strerror if cause is not None and cause.strerror else str(exc).split(": ")[-1]
    return Diagnosis("port_error", f"port {bus.port}: {detail}", "")


def diagnose(exc: DeviceError, bus: BusConfig, unit: int | None = None) -> Diagnosis:
    """The reason and the hint for ``exc`` raised talking to ``unit`` on ``bus``."""
    if isinstance(exc, PortUnavailable):
        return _port(bus, exc)
    who = "the device" if unit is None else f"unit {unit}"
    if isinstance(exc, DeviceTimeout):
        if bus.kind == "line":
            return Diagnosis(
                "no_answer",
                f"no line within {bus.timeout:g}s",
                f"check {_serial_settings(bus)}, the cable (TX/RX crossed?) and whether the"
                " device sends by itself or needs a query",
            )
        if bus.kind == "tcp":
            return Diagnosis(
                "no_answer",
                f"no answer from {who} at {bus.address} within {bus.timeout:g}s",
                "check the unit id (a gateway needs the id of the device behind it)",
            )
        return Diagnosis(
            "no_answer",
            f"no answer from {who} within {bus.timeout:g}s",
            f"check the unit id, baud rate and parity ({_serial_settings(bus)}) and the A/B"
            " wiring (swap A and B if unsure)",
        )
    if isinstance(exc, DeviceException):
        meaning, hint = EXCEPTION_MEANINGS.get(exc.code, ("unknown exception", ""))
        return Diagnosis("exception", f"{who} answered exception {exc.code:02d} ({meaning})", hint)
    if isinstance(exc, FrameError):
        detail = str(exc).rsplit(": ", 1)[-1]
        return Diagnosis(
            "bad_reply",
            f"replies from {who} discarded ({detail})",
            "check baud rate and parity, and that no other master shares the bus"
            if bus.kind != "tcp"
            else "check the unit id and that nothing else answers on this address",
        )
    return Diagnosis("device_error", str(exc), "")
