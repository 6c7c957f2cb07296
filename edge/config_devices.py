"""The acquisition half of node.toml: buses, devices and points, their dataclasses and checks.

Moved out of :mod:`edge.config` (which re-exports every public name here) because it stands
alone: a bus, a device and a point are read from their own tables and checked against each
other, while the rest of the file (node, rules, ledger, mqtt, sync, ...) never looks inside them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.durations import parse_duration
from edge.toml_reader import _in_range, _one_of, _positive, _Reader

__all__ = [
    "BUS_KEYS",
    "BUS_KINDS",
    "DATA_TYPES",
    "DEVICE_KEYS",
    "ORDERS",
    "PARITIES",
    "PARSERS",
    "POINT_KEYS",
    "TABLES",
    "BusConfig",
    "DeviceConfig",
    "PointConfig",
]

BUS_KINDS = ("rtu", "tcp", "line")
TABLES = ("holding", "input", "coil", "discrete")
DATA_TYPES = (
    "int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float32", "float64", "bit", "bool", "string",
)  # fmt: skip
ORDERS = ("ABCD", "DCBA", "BADC", "CDAB")
PARITIES = ("N", "E", "O")
PARSERS = ("scale", "kv", "csv", "regex")


@dataclass(frozen=True, slots=True)
class BusConfig:
    """One physical line (RS-485 port), TCP endpoint, or serial-line port; one owner polls it."""

    name: str
    kind: str  #: rtu | tcp | line
    port: str = ""  #: serial device path (rtu, line)
    address: str = ""  #: host:port (tcp)
    baudrate: int = 19200
    bytesize: int = 8
    parity: str = "N"
    stopbits: int = 1
    timeout: float = 0.2  #: per-transaction answer timeout, seconds
    inter_frame: float = 0.0  #: extra silence between transactions, seconds
    echo: bool = False  #: RS-485 adapter echoes our own frames back (discard them)
    parser: str = "scale"  #: line buses: scale | kv | csv | regex
    pattern: str = ""  #: line buses: regex with named groups (parser = regex)
    columns: tuple[str, ...] = ()  #: line buses: names of CSV columns (parser = csv)
    query: str = ""  #: line buses: command sent to ask for a line ("" = device talks by itself)
    line_ending: str = "\r\n"
    #: rtu buses: quiet time after a timeout before the next request; input arriving in it is
    #: drained and counted as the timed-out device's late reply. None: derived from the baud
    #: rate (:func:`edge.drivers.transport.default_guard`); 0 disables it.
    guard: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One device on a bus (a Modbus unit id, or the device at the end of a serial line)."""

    name: str
    bus: str
    unit: int = 1
    poll: float = 1.0  #: poll interval, seconds
    address_base: int = (
        0  #: 0: registers as on the wire; 1: as in "40001-style" manuals (minus one)
    )
    max_registers: int = 125  #: most registers one request may read (coalescing limit)
    max_bits: int = 2000  #: most coils/discrete inputs one request may read
    max_gap: int = 16  #: unused registers a merged request may read to save a round trip
    forbidden: tuple[tuple[int, int], ...] = ()  #: inclusive register ranges never to read
    stale_after: int = 3  #: missed polls in a row after which a stale value becomes comm_fail
    #: at coinciding deadlines the higher priority is served first, then config order
    priority: int = 0
    backoff_cap: float = 30.0  #: longest a dead device waits between probes on a busy line, s


@dataclass(frozen=True, slots=True)
class PointConfig:
    """One named value on a device."""

    name: str
    device: str
    register: int = 0  #: address in the device's address base
    table: str = "holding"  #: holding (FC03) | input (FC04) | coil (FC01) | discrete (FC02)
    type: str = "uint16"
    order: str = "ABCD"
    bit: int = 0  #: type = bit: bit index in the register, 0 = least significant
    length: int = 1  #: type = string: number of registers (2 characters each)
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    field: str = ""  #: line devices: which parsed field this point takes
    #: smallest step of the value, for numbers shown to people (None: |scale| of an integer
    #: register, else significant digits); stored readings are never rounded
    resolution: float | None = None


#: The keys of a bus, device and point table: every field but the name (the table's own name).
BUS_KEYS: tuple[str, ...] = tuple(BusConfig.__slots__)[1:]
DEVICE_KEYS: tuple[str, ...] = tuple(DeviceConfig.__slots__)[1:]
POINT_KEYS: tuple[str, ...] = tuple(PointConfig.__slots__)[1:]


def _bus(r: _Reader, name: str, s: Mapping[str, Any], base: Path) -> BusConfig:
    p = f"buses.{name}"
    r.table(s, p, BUS_KEYS)
    kind = r.get(s, p, "kind", str, "rtu", required=True, check=_one_of(BUS_KINDS))
    port = r.get(s, p, "port", str, "")
    address = r.get(s, p, "address", str, "")
    if kind in ("rtu", "line") and not port and "port" not in s:
        r.problem(f"{p}.port", f"missing required key for a {kind} bus")
    if kind == "tcp":
        if not address and "address" not in s:
            r.problem(f"{p}.address", "missing required key for a tcp bus (host:port)")
        elif address and not _host_port_ok(address):
            r.problem(f"{p}.address", f"expected host:port, got {address!r}")
    columns = r.get(s, p, "columns", list, [])
    if not all(isinstance(c, str) for c in columns):
        r.problem(f"{p}.columns", "expected an array of strings")
        columns = []
    return BusConfig(
        name=name,
        kind=kind,
        # a relative port path (a simulator's symlink) is relative to the config file
        port=str(base / port) if port and not port.startswith("/") else port,
        address=address,
        baudrate=r.get(s, p, "baudrate", int, 19200, check=_positive),
        bytesize=r.get(s, p, "bytesize", int, 8, check=_in_range(5, 8)),
        parity=r.get(s, p, "parity", str, "N", check=_one_of(PARITIES)),
        stopbits=r.get(s, p, "stopbits", int, 1, check=_in_range(1, 2)),
        timeout=r.duration(s, p, "timeout", 0.2),
        inter_frame=r.duration(s, p, "inter_frame", 0.0) if "inter_frame" in s else 0.0,
        echo=r.get(s, p, "echo", bool, False),
        parser=r.get(s, p, "parser", str, "scale", check=_one_of(PARSERS)),
        pattern=r.get(s, p, "pattern", str, ""),
        columns=tuple(columns),
        query=r.get(s, p, "query", str, ""),
        line_ending=r.get(s, p, "line_ending", str, "\r\n"),
        guard=_guard(r, s, p),
    )


def _guard(r: _Reader, s: Mapping[str, Any], p: str) -> float | None:
    """``guard``: a duration, "0" (no guard) allowed; absent: None (derived from the baud rate)."""
    raw = r.get(s, p, "guard", str, None)
    if raw is None:
        return None
    try:
        seconds = parse_duration(raw)
    except ValueError as exc:
        r.problem(f"{p}.guard", str(exc))
        return None
    if seconds < 0 or seconds > 10:
        r.problem(f"{p}.guard", f"must be within 0..10s, got {raw!r}")
        return None
    return seconds


def _host_port_ok(address: str) -> bool:
    host, _, port = address.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def _device(
    r: _Reader, name: str, s: Mapping[str, Any], buses: Mapping[str, BusConfig]
) -> DeviceConfig:
    p = f"devices.{name}"
    r.table(s, p, DEVICE_KEYS)
    bus = r.get(s, p, "bus", str, "", required=True)
    if bus and bus not in buses:
        near = difflib.get_close_matches(bus, list(buses), n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        r.problem(f"{p}.bus", f"no bus named {bus!r}{hint}")
    forbidden: list[tuple[int, int]] = []
    for i, rng in enumerate(r.get(s, p, "forbidden", list, [])):
        if (
            isinstance(rng, list)
            and len(rng) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in rng)
            and rng[0] <= rng[1]
        ):
            forbidden.append((rng[0], rng[1]))
        else:
            r.problem(
                f"{p}.forbidden[{i}]", f"expected [first, last] register numbers, got {rng!r}"
            )
    return DeviceConfig(
        name=name,
        bus=bus,
        unit=r.get(s, p, "unit", int, 1, check=_in_range(0, 247)),
        poll=r.duration(s, p, "poll", 1.0),
        address_base=r.get(s, p, "address_base", int, 0, check=_in_range(0, 1)),
        max_registers=r.get(s, p, "max_registers", int, 125, check=_in_range(1, 125)),
        max_bits=r.get(s, p, "max_bits", int, 2000, check=_in_range(1, 2000)),
        max_gap=r.get(s, p, "max_gap", int, 16, check=_in_range(0, 125)),
        forbidden=tuple(forbidden),
        stale_after=r.get(s, p, "stale_after", int, 3, check=_positive),
        priority=r.get(s, p, "priority", int, 0, check=_in_range(-1000, 1000)),
        backoff_cap=r.duration(s, p, "backoff_cap", 30.0),
    )


def _point(
    r: _Reader,
    name: str,
    s: Mapping[str, Any],
    devices: Mapping[str, DeviceConfig],
    buses: Mapping[str, BusConfig],
) -> PointConfig:
    p = f"points.{name}"
    r.table(s, p, POINT_KEYS)
    device = r.get(s, p, "device", str, "", required=True)
    dev = devices.get(device)
    if device and dev is None:
        near = difflib.get_close_matches(device, list(devices), n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        r.problem(f"{p}.device", f"no device named {device!r}{hint}")
    line = dev is not None and dev.bus in buses and buses[dev.bus].kind == "line"
    if line and "field" not in s:
        r.problem(f"{p}.field", "missing required key for a point on a line bus")
    if not line and dev is not None and "register" not in s:
        r.problem(f"{p}.register", "missing required key")
    base = dev.address_base if dev is not None else 0
    register = r.get(s, p, "register", int, base, check=_in_range(base, 65535 + base))
    dtype = r.get(s, p, "type", str, "uint16", check=_one_of(DATA_TYPES))
    table = r.get(s, p, "table", str, "holding", check=_one_of(TABLES))
    if table in ("coil", "discrete") and dtype not in ("bool", "uint16"):
        r.problem(f"{p}.type", f"a {table} point holds one bit: use type 'bool', not {dtype!r}")
    return PointConfig(
        name=name,
        device=device,
        register=register,
        table=table,
        type="bool" if table in ("coil", "discrete") else dtype,
        order=r.get(s, p, "order", str, "ABCD", check=_one_of(ORDERS)),
        bit=r.get(s, p, "bit", int, 0, check=_in_range(0, 15)),
        length=r.get(s, p, "length", int, 1, check=_in_range(1, 125)),
        scale=float(r.get(s, p, "scale", (int, float), 1.0)),
        offset=float(r.get(s, p, "offset", (int, float), 0.0)),
        unit=r.get(s, p, "unit", str, ""),
        field=r.get(s, p, "field", str, ""),
        resolution=_resolution(r.get(s, p, "resolution", (int, float), None, check=_positive)),
    )


def _resolution(value: float | int | None) -> float | None:
    return None if value is None else float(value)
