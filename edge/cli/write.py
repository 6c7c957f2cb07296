"""``edge write``: write coils (FC05/FC15) or holding registers (FC06/FC16), typed, confirmed.

Values are typed like probe's columns (``--type float32 --order CDAB 3.14159``); several values
go to consecutive addresses. The command shows the exact words it will send and asks for
confirmation unless ``--yes``.

A bus that a running node owns is refused: a serial port through its exclusive lock (every edge
program opens ports with ``flock(LOCK_EX)``), a Modbus TCP endpoint through the endpoint lock
(:mod:`edge.drivers.portlock`), and with ``-c node.toml`` also when that node is running (it
holds its ledger's lock). Writes run through minimalmodbus (RTU) and pymodbus (TCP), with their
errors mapped into edge's error tree here, at the boundary.
"""

from __future__ import annotations

import fcntl
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edge.cli.link import Target, bus_options, resolve_target
from edge.cli.probe import device_failure
from edge.cli.problems import fail

if TYPE_CHECKING:
    from edge.config import BusConfig

__all__ = ["COMMANDS", "Plan", "plan_write", "write"]

WRITE_TYPES = ("uint16", "int16", "uint32", "int32", "uint64", "int64", "float32", "float64")


@dataclass(frozen=True, slots=True)
class Plan:
    """What one write sends: function code, first wire address and the words or bits."""

    function: int
    table: str
    wire: int
    values: tuple[int, ...]  #: registers (0..65535) or bits (0/1)


def _bit(text: str) -> int:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "on"):
        return 1
    if lowered in ("0", "false", "off"):
        return 0
    raise ValueError(f"{text!r} is not a coil value (1/0, true/false, on/off)")


def _number(text: str, dtype: str) -> int | float:
    if dtype.startswith("float"):
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{text!r}: NaN and infinities are not written")
        return value
    return int(text, 0)  # 0x1A2B and 0b101 as well as decimal


def plan_write(
    table: str, dtype: str, order: str, texts: tuple[str, ...], wire: int, function: int | None
) -> Plan:
    """The words or bits for ``texts`` and the function code to send them.

    Raises:
        ValueError: a value does not parse or fit, or the function does not fit the values.
    """
    from edge.drivers.codec import encode_registers

    if table == "coil":
        values = [_bit(t) for t in texts]
        code = function or (5 if len(values) == 1 else 15)
        if code not in (5, 15) or (code == 5 and len(values) > 1):
            raise ValueError(f"FC{code:02d} cannot write {len(values)} coil(s): use 5 or 15")
    else:
        values = []
        for text in texts:
            try:
                values += encode_registers(_number(text, dtype), dtype, order)
            except OverflowError:
                raise ValueError(f"{text!r} does not fit {dtype}") from None
        code = function or (6 if len(values) == 1 else 16)
        if code not in (6, 16) or (code == 6 and len(values) > 1):
            raise ValueError(f"FC{code:02d} cannot write {len(values)} register(s): use 6 or 16")
    limit = 1968 if table == "coil" else 123  # the protocol's maximum per request
    if len(values) > limit:
        raise ValueError(f"{len(values)} values: at most {limit} per request")
    if wire + len(values) > 65536:
        raise ValueError("the values run past address 65535")
    return Plan(code, table, wire, tuple(values))


def node_running(config_path: Path) -> str | None:
    """Why a node with this config is running (its ledger lock is held), else None."""
    from edge.config import load_config

    config = load_config(config_path)
    lock = Path(f"{config.ledger_path}.lock")
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return None  # never run here, or no permission to know: the port locks still apply
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return f"node {config.node_id} is running with {config_path} (it holds {lock})"
    finally:
        os.close(fd)
    return None


def _write_rtu(bus: BusConfig, unit: int, plan: Plan) -> None:
    import minimalmodbus
    import serial

    from edge.drivers.rtu import exception_code
    from edge.errors import DeviceException, DeviceTimeout, FrameError, PortUnavailable

    where = f"bus {bus.name} unit {unit}"
    try:
        port = serial.Serial(
            port=bus.port,
            baudrate=bus.baudrate,
            bytesize=bus.bytesize,
            parity=bus.parity,
            stopbits=bus.stopbits,
            timeout=bus.timeout,
            write_timeout=max(1.0, bus.timeout),
            exclusive=True,  # the lock a running node holds: refused while it polls this port
        )
    except (serial.SerialException, OSError) as exc:
        raise PortUnavailable(f"bus {bus.name} port {bus.port}: {exc}") from exc
    try:
        inst = minimalmodbus.Instrument(port, unit)
        inst.handle_local_echo = bus.echo
        try:
            if plan.function == 5:
                inst.write_bit(plan.wire, plan.values[0], functioncode=5)
            elif plan.function == 15:
                inst.write_bits(plan.wire, list(plan.values))
            elif plan.function == 6:
                inst.write_register(plan.wire, plan.values[0], functioncode=6)
            else:
                inst.write_registers(plan.wire, list(plan.values))
        except minimalmodbus.SlaveReportedException as exc:
            code = exception_code(exc)
            raise DeviceException(f"{where}: exception {code:02d}", code) from exc
        except minimalmodbus.NoResponseError as exc:
            raise DeviceTimeout(f"{where}: no answer within {bus.timeout}s") from exc
        except (minimalmodbus.InvalidResponseError, minimalmodbus.LocalEchoError) as exc:
            raise FrameError(f"{where}: reply discarded: {exc}") from exc
        except (serial.SerialException, OSError) as exc:
            raise PortUnavailable(f"bus {bus.name} port {bus.port}: {exc}") from exc
    finally:
        port.close()


async def _write_tcp(bus: BusConfig, unit: int, plan: Plan) -> None:
    import asyncio

    from pymodbus.client import AsyncModbusTcpClient
    from pymodbus.exceptions import ModbusException
    from pymodbus.pdu import ExceptionResponse

    from edge.drivers.portlock import release_endpoint_lock, take_endpoint_lock
    from edge.errors import DeviceException, DeviceTimeout, FrameError, PortUnavailable

    where = f"bus {bus.name} unit {unit}"
    lock = take_endpoint_lock(bus.address, exclusive=True)  # refused while a node polls it
    host, _, port = bus.address.rpartition(":")
    client = AsyncModbusTcpClient(
        host.strip("[]"), port=int(port), timeout=bus.timeout, retries=0, reconnect_delay=0
    )
    try:
        try:
            async with asyncio.timeout(max(1.0, 5 * bus.timeout)):
                connected = await client.connect()
        except (TimeoutError, OSError, ModbusException) as exc:
            raise PortUnavailable(f"bus {bus.name} address {bus.address}: {exc}") from exc
        if not connected:
            raise PortUnavailable(f"bus {bus.name} address {bus.address}: connection refused")
        values = list(plan.values)
        try:
            async with asyncio.timeout(bus.timeout + 0.5):
                if plan.function == 5:
                    reply = await client.write_coil(plan.wire, bool(values[0]), device_id=unit)
                elif plan.function == 15:
                    bits = [bool(v) for v in values]
                    reply = await client.write_coils(plan.wire, bits, device_id=unit)
                elif plan.function == 6:
                    reply = await client.write_register(plan.wire, values[0], device_id=unit)
                else:
                    reply = await client.write_registers(plan.wire, values, device_id=unit)
        except TimeoutError as exc:
            raise DeviceTimeout(f"{where}: no answer within {bus.timeout}s") from exc
        except ModbusException as exc:
            if "timeout" in str(exc).lower() or "no response" in str(exc).lower():
                raise DeviceTimeout(f"{where}: no answer within {bus.timeout}s") from exc
            raise FrameError(f"{where}: {exc}") from exc
        if isinstance(reply, ExceptionResponse) or reply.isError():
            code = int(getattr(reply, "exception_code", 0))
            raise DeviceException(f"{where}: exception {code:02d}", code)
    finally:
        client.close()
        release_endpoint_lock(lock, bus.address)


def _describe(target: Target, plan: Plan, register: int, dtype: str, order: str) -> str:
    bus = target.bus
    at = bus.address if bus.kind == "tcp" else bus.port
    last = register + len(plan.values) - 1
    span = f"{register}" + (f"..{last}" if last > register else "")
    wire = f" (wire {plan.wire})" if target.address_base else ""
    if plan.table == "coil":
        shown = " ".join(str(v) for v in plan.values)
        return f"FC{plan.function:02d}: {plan.table} {span}{wire} of unit {target.unit} at {at} <- {shown}"
    words = " ".join(f"{v:04X}" for v in plan.values)
    return (
        f"FC{plan.function:02d}: holding {span}{wire} of unit {target.unit} at {at} <- {words}"
        f" ({dtype}{' ' + order if order != 'ABCD' else ''})"
    )


@click.command("write")
@bus_options
@click.option(
    "--unit", type=click.IntRange(0, 247), default=None, help="Unit id [1]; 0 broadcasts."
)
@click.option(
    "--register", type=click.IntRange(0, 65536), required=True, help="First address to write."
)
@click.option(
    "--table", type=click.Choice(["holding", "coil"]), default="holding", show_default=True
)
@click.option(
    "--type", "dtype", type=click.Choice(WRITE_TYPES), default="uint16", show_default=True
)
@click.option(
    "--order",
    type=click.Choice(["ABCD", "CDAB", "BADC", "DCBA"]),
    default="ABCD",
    show_default=True,
)
@click.option(
    "--fc",
    "function",
    type=click.Choice(["5", "6", "15", "16"]),
    default=None,
    help="Function code [5/15 for coils, 6/16 for registers, by count].",
)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Result and errors as JSON.")
@click.argument("values", nargs=-1, required=True)
def write(
    unit: int | None,
    register: int,
    table: str,
    dtype: str,
    order: str,
    function: str | None,
    yes: bool,
    as_json: bool,
    values: tuple[str, ...],
    **opts: Any,
) -> None:
    """Write VALUES to consecutive coils or holding registers.

    Refused on a bus that a running node owns. Exit 0 written, 1 refused or failed,
    2 usage.

    \b
    Examples:
      edge write --port /dev/ttyUSB0 --unit 3 --register 100 1500
      edge write --port /dev/ttyUSB0 --register 40 --type float32 --order CDAB -- -12.5
      edge write --port 10.0.0.5:502 --table coil --register 0 1 0 1 --yes
      edge write -c node.toml --device tunnel --register 40001 --address-base 1 7
    """  # noqa: D301
    import asyncio

    from edge.errors import ConfigError, DeviceError

    target = resolve_target(opts, unit)
    if target.unit == 0 and target.bus.kind == "tcp":
        raise click.BadParameter(
            "broadcast (unit 0) exists on serial lines only", param_hint="--unit"
        )
    wire = target.wire(register)
    if wire < 0:
        raise click.BadParameter("below the address base", param_hint="--register")
    try:
        plan = plan_write(table, dtype, order, values, wire, int(function) if function else None)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="VALUES") from None
    if opts["config_path"] is not None:
        try:
            running = node_running(opts["config_path"])
        except ConfigError as exc:
            fail(exc.problems, 2, as_json)
        if running:
            fail(f"refused: {running}; stop it first", 1, as_json)
    summary = _describe(target, plan, register, dtype, order)
    if not yes and not click.confirm(f"write {summary}?", err=True):
        fail("not written", 1, as_json)
    try:
        if target.bus.kind == "tcp":
            asyncio.run(_write_tcp(target.bus, target.unit, plan))
        else:
            _write_rtu(target.bus, target.unit, plan)
    except DeviceError as exc:
        device_failure(target, exc, as_json, final=True)
        sys.exit(1)
    if as_json:
        import orjson

        click.echo(
            orjson.dumps(
                {
                    "written": True,
                    "function": plan.function,
                    "table": plan.table,
                    "unit": target.unit,
                    "register": register,
                    "wire": plan.wire,
                    "values": list(plan.values),
                }
            ).decode()
        )
    else:
        click.echo(f"written {summary}")


COMMANDS: list[click.Command] = [write]
