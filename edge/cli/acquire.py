"""``edge read`` and ``edge probe``: the technician's commissioning tools."""

from __future__ import annotations

import asyncio
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from edge.config import BusConfig, DeviceConfig, PointConfig, load_config
from edge.errors import ConfigError, DeviceError
from edge.log import configure

if TYPE_CHECKING:
    from edge.drivers import BusPoller
    from edge.drivers.transport import ModbusTransport
    from edge.readings import Reading

# The drivers (numpy, pymodbus, pyserial) and orjson are imported inside the functions that use
# them: `edge read --help` must not load them (edge/cli/__init__.py, fast start).

__all__ = ["COMMANDS", "probe", "read"]


def _fail(message: str, code: int = 2) -> None:
    for line in message.splitlines():
        click.echo(f"error: {line}", err=True)
    sys.exit(code)


def _format_value(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)


def _json_line(r: Reading, now: float) -> bytes:
    import orjson

    return orjson.dumps(
        {
            "point": r.point,
            "value": r.value,
            "unit": r.unit,
            "quality": str(r.quality),
            "ts": r.ts,
            "age": round(r.age(now), 6),
            "latency": round(r.latency, 6),
        }
    )


async def _read(config_path: Path, once: bool, as_json: bool, points: tuple[str, ...]) -> None:
    from edge.drivers import build_pollers

    config = load_config(config_path)
    unknown = [p for p in points if p not in config.points]
    if unknown:
        raise ConfigError([f"{config_path}: --point {p}: no such point" for p in unknown])
    wanted = set(points) if points else None
    pollers = build_pollers(config, wanted)
    expected = set(points) if points else set(config.points)
    seen: set[str] = set()
    done = asyncio.Event()
    out = sys.stdout.buffer

    async def emit(readings: list[Reading]) -> None:
        now = time.time()
        for r in readings:
            if once and r.point in seen:
                continue
            seen.add(r.point)
            if as_json:
                out.write(_json_line(r, now) + b"\n")
            else:
                latency = f"{r.latency * 1000:.1f}ms" if r.latency else "-"
                value = _format_value(r.value)
                line = f"{r.point:<24} {value:>16} {r.unit:<6} {r.quality!s:<12} {latency}"
                out.write(line.encode() + b"\n")
        out.flush()
        if once and seen >= expected:
            done.set()

    if not pollers:
        return
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(p.run(emit), name=f"bus:{p.name}") for p in pollers]
            if once:
                await done.wait()
                for t in tasks:
                    t.cancel()
    finally:
        _lost_cycles(pollers)


def _lost_cycles(pollers: list[BusPoller]) -> None:
    """On exit, to stderr: each device that lost cycles (not polled) or answered late."""
    for p in pollers:
        for d in p.stats().devices.values():
            if d.skipped or d.deferred or d.late_replies or d.status != "ok":
                click.echo(
                    f"device {d.name}: {d.status}, polled {d.polls}, skipped {d.skipped},"
                    f" deferred {d.deferred} (kept {d.kept:.1%}), late replies {d.late_replies}",
                    err=True,
                )


@click.command("read")
@click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="node.toml",
)
@click.option("--once", is_flag=True, help="One poll cycle per device, then exit.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@click.option(
    "--point", "points", multiple=True, metavar="NAME", help="Only this point (repeatable)."
)
def read(config_path: Path, once: bool, as_json: bool, points: tuple[str, ...]) -> None:
    """Poll the configured points and print value, unit, quality and latency."""
    configure("warning")  # port and device trouble as key=value lines on stderr
    try:
        asyncio.run(_read(config_path, once, as_json, points))
    except ConfigError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        sys.exit(130)


def _probe_bus(port: str, baud: int, parity: str, timeout: float) -> BusConfig:
    target = port.removeprefix("tcp://")
    if target != port or (":" in target and not target.startswith("/")):
        return BusConfig("probe", "tcp", address=target, timeout=timeout)
    return BusConfig("probe", "rtu", port=port, baudrate=baud, parity=parity, timeout=timeout)


def probe_table(registers: list[int]) -> list[tuple[str, dict[str, str]]]:
    """Every interpretation of the first registers: (type, {order: decoded text})."""
    from edge.drivers.codec import NUMERIC_FORMATS, decode_registers

    rows: list[tuple[str, dict[str, str]]] = []
    for dtype, (_, width) in NUMERIC_FORMATS.items():
        if width > len(registers):
            continue
        orders = ("ABCD", "BADC") if width == 1 else ("ABCD", "CDAB", "BADC", "DCBA")
        rows.append(
            (
                dtype,
                {o: _format_value(decode_registers(registers[:width], dtype, o)) for o in orders},
            )
        )
    rows.append(
        ("string", {o: repr(decode_registers(registers, "string", o)) for o in ("ABCD", "BADC")})
    )
    bits = "".join("1" if registers[0] >> b & 1 else "0" for b in range(15, -1, -1))
    rows.append(("bits 15..0", {"ABCD": bits}))
    return rows


async def _probe(bus: BusConfig, unit: int, register: int, count: int, table: str) -> list[int]:
    from edge.drivers.planner import PlannedPoint, ReadRequest
    from edge.drivers.rtu import MinimalmodbusTransport
    from edge.drivers.tcp import TcpTransport

    transport: ModbusTransport = (
        MinimalmodbusTransport(bus) if bus.kind == "rtu" else TcpTransport(bus)
    )
    device = DeviceConfig("probe", bus.name, unit=unit)
    point = PointConfig("probe", "probe", register=register, table=table)
    request = ReadRequest(table, register, count, (PlannedPoint(point, register, count),))
    try:
        await transport.open()
        return await transport.read(device, request)
    finally:
        await transport.close()
        transport.shutdown()


@click.command("probe")
@click.option(
    "--port", required=True, help="Serial port (/dev/ttyUSB0) or host:port for Modbus TCP."
)
@click.option("--unit", type=click.IntRange(0, 247), default=1, show_default=True)
@click.option(
    "--register", type=click.IntRange(0, 65535), required=True, help="Wire address (0-based)."
)
@click.option("--count", type=click.IntRange(1, 125), default=4, show_default=True)
@click.option("--baud", type=int, default=19200, show_default=True)
@click.option("--parity", type=click.Choice(["N", "E", "O"]), default="N", show_default=True)
@click.option("--timeout", type=float, default=0.5, show_default=True, help="Seconds.")
@click.option(
    "--table", type=click.Choice(["holding", "input"]), default="holding", show_default=True
)
def probe(
    port: str,
    unit: int,
    register: int,
    count: int,
    baud: int,
    parity: str,
    timeout: float,
    table: str,
) -> None:
    """Read registers once and print them decoded in every data type and byte order."""
    bus = _probe_bus(port, baud, parity, timeout)
    try:
        registers = asyncio.run(_probe(bus, unit, register, count, table))
    except DeviceError as exc:
        _fail(str(exc), 1)
    click.echo(f"{table} registers {register}..{register + count - 1} of unit {unit}:")
    click.echo("  " + " ".join(f"{r:04X}" for r in registers))
    orders = ("ABCD", "CDAB", "BADC", "DCBA")
    click.echo(f"{'type':<11}" + "".join(f"{o:>24}" for o in orders))
    for dtype, values in probe_table(registers):
        click.echo(f"{dtype:<11}" + "".join(f"{values.get(o, ''):>24}" for o in orders))


COMMANDS: list[click.Command] = [read, probe]
