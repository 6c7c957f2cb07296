"""The bus options ``edge probe``, ``scan`` and ``write`` share, and one link to talk through.

A bus is given either on the command line (``--port /dev/ttyUSB0 --baud 9600 --parity E
--stop-bits 2``, or ``--port host:502`` for Modbus TCP) or taken from a node config
(``-c node.toml --device NAME``: the device's bus, unit id and address base); options given
explicitly override the config's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from edge.config import BusConfig
    from edge.drivers.transport import ModbusTransport

__all__ = ["TABLES", "Session", "Target", "bus_options", "resolve_target"]

TABLES = ("holding", "input", "coil", "discrete")


@dataclass(frozen=True, slots=True)
class Target:
    """Where to talk: the bus, the unit id and how register numbers are counted."""

    bus: BusConfig
    unit: int
    address_base: int
    device: str = ""  #: the config's device name, if taken from a config

    def wire(self, register: int) -> int:
        """The address on the wire of ``register`` as the user counts it."""
        return register - self.address_base


def bus_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the bus options (all default to None: 'not given')."""
    options = [
        click.option(
            "--port", default=None, help="Serial port (/dev/ttyUSB0) or host:port for Modbus TCP."
        ),
        click.option(
            "-c",
            "--config",
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="node.toml to take the bus settings from (with --device).",
        ),
        click.option("--device", default=None, help="Device in --config: its bus, unit, base."),
        click.option("--baud", type=click.IntRange(50, 4_000_000), default=None, help="[19200]"),
        click.option("--parity", type=click.Choice(["N", "E", "O"]), default=None, help="[N]"),
        click.option("--data-bits", type=click.IntRange(5, 8), default=None, help="[8]"),
        click.option("--stop-bits", type=click.Choice(["1", "2"]), default=None, help="[1]"),
        click.option("--timeout", type=float, default=None, help="Answer timeout, seconds [0.5]."),
        click.option(
            "--address-base",
            type=click.Choice(["0", "1"]),
            default=None,
            help="0: addresses as on the wire; 1: as manuals count them (register 1 is wire 0) [0].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _tcp_address(port: str) -> str | None:
    target = port.removeprefix("tcp://")
    if target != port or (":" in target and not target.startswith("/")):
        return target
    return None


def resolve_target(opts: dict[str, Any], unit: int | None, default_timeout: float = 0.5) -> Target:
    """The target from the bus options (a click.UsageError when they do not add up)."""
    from edge.config import BusConfig, load_config
    from edge.errors import ConfigError

    port, config_path, device_name = opts["port"], opts["config_path"], opts["device"]
    if port is not None and not port.strip():
        raise click.BadParameter("empty", param_hint="--port")
    base = int(opts["address_base"]) if opts["address_base"] is not None else None
    if config_path is not None or device_name is not None:
        if config_path is None or device_name is None:
            raise click.UsageError("-c/--config and --device go together")
        try:
            config = load_config(config_path)
        except ConfigError as exc:
            raise click.UsageError("; ".join(exc.problems)) from None
        device = config.devices.get(device_name)
        if device is None:
            known = ", ".join(config.devices) or "none"
            raise click.UsageError(f"{config_path}: no device {device_name!r} (devices: {known})")
        bus = config.buses[device.bus]
        if bus.kind == "line":
            raise click.UsageError(f"device {device_name} is on a serial-line bus, not Modbus")
        if port is not None:
            address = _tcp_address(port)
            bus = dataclasses.replace(
                bus,
                kind="tcp" if address else "rtu",
                address=address or "",
                port="" if address else port,
            )
        unit = device.unit if unit is None else unit
        base = device.address_base if base is None else base
    elif port is None:
        raise click.UsageError("give --port, or -c node.toml --device NAME")
    else:
        address = _tcp_address(port)
        bus = (
            BusConfig("cli", "tcp", address=address, timeout=default_timeout)
            if address
            else BusConfig("cli", "rtu", port=port, timeout=default_timeout)
        )
    changes: dict[str, Any] = {}
    for key, field_name in (("baud", "baudrate"), ("parity", "parity"), ("data_bits", "bytesize")):
        if opts[key] is not None:
            changes[field_name] = opts[key]
    if opts["stop_bits"] is not None:
        changes["stopbits"] = int(opts["stop_bits"])
    if opts["timeout"] is not None:
        if opts["timeout"] <= 0:
            raise click.BadParameter("must be positive", param_hint="--timeout")
        changes["timeout"] = opts["timeout"]
    bus = dataclasses.replace(bus, **changes)
    if bus.kind == "tcp":
        host, _, number = bus.address.rpartition(":")
        if not host or not number.isdigit() or not 0 < int(number) < 65536:
            raise click.BadParameter(f"{bus.address!r} is not host:port", param_hint="--port")
    return Target(bus, 1 if unit is None else unit, base or 0, device_name or "")


class Session:
    """One open Modbus link for the commissioning commands (reads through the drivers)."""

    def __init__(self, bus: BusConfig, trace: Callable[[bool, bytes], None] | None = None) -> None:
        from edge.drivers.rtu import RtuTransport
        from edge.drivers.tcp import TcpTransport

        self.bus = bus
        transport: RtuTransport | TcpTransport = (
            TcpTransport(bus) if bus.kind == "tcp" else RtuTransport(bus)
        )
        transport.trace = trace
        self.transport: ModbusTransport = transport
        self.requests = 0

    async def __aenter__(self) -> Session:
        await self.transport.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.transport.close()
        self.transport.shutdown()

    async def read(self, unit: int, table: str, start: int, count: int) -> list[int]:
        """Registers (or 0/1 bits) ``start..start+count-1`` of ``table`` at ``unit``.

        Raises:
            DeviceError: timeout, exception reply, bad frame, port trouble.
        """
        from edge.config import DeviceConfig, PointConfig
        from edge.drivers.planner import PlannedPoint, ReadRequest

        device = DeviceConfig("probe", self.bus.name, unit=unit)
        point = PointConfig("probe", "probe", register=start, table=table)
        request = ReadRequest(table, start, count, (PlannedPoint(point, start, count),))
        self.requests += 1
        return await self.transport.read(device, request)
