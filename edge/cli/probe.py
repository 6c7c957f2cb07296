"""``edge probe``: read raw registers or bits and show them decoded every possible way.

For finding out what an undocumented (or badly documented) device holds: every numeric type in
every byte/word order, exactly as decoded (float32 as the shortest decimal naming that float32,
float64 and integers in full), a string and the bits of the first register. Coils and discrete
inputs are shown as bits.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from edge.cli.link import TABLES, Session, Target, bus_options, resolve_target
from edge.cli.problems import PipeClosed, Stdout, quiet_exit_on_closed_pipe, report
from edge.cli.read import duration_option, format_value

if TYPE_CHECKING:
    from edge.errors import DeviceError

__all__ = ["COMMANDS", "exact", "probe", "probe_table"]

ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")


def exact(registers: list[int], dtype: str, order: str) -> Any:
    """The value of ``registers`` as ``dtype`` in ``order``, exactly (no rounding for show)."""
    from edge.drivers.codec import decode_registers, float32_decimal

    value = decode_registers(registers, dtype, order)
    if dtype == "float32" and isinstance(value, float):
        return float32_decimal(value)
    return value


def probe_table(registers: list[int]) -> list[tuple[str, dict[str, Any]]]:
    """Every interpretation of the registers: (type, {order: exact value})."""
    from edge.drivers.codec import NUMERIC_FORMATS, decode_registers

    rows: list[tuple[str, dict[str, Any]]] = []
    for dtype, (_, width) in NUMERIC_FORMATS.items():
        if width > len(registers):
            continue
        orders = ("ABCD", "BADC") if width == 1 else ORDERS
        rows.append((dtype, {o: exact(registers[:width], dtype, o) for o in orders}))
    rows.append(("string", {o: decode_registers(registers, "string", o) for o in ("ABCD", "BADC")}))
    rows.append(("bits 15..0", {"ABCD": format(registers[0], "016b")}))
    return rows


def _cell(dtype: str, value: Any) -> str:
    if dtype == "string":
        return repr(value)
    return value if isinstance(value, str) else format_value(value)


def _text(target: Target, table: str, register: int, values: list[int]) -> list[str]:
    bus = target.bus
    where = (
        bus.address
        if bus.kind == "tcp"
        else (f"{bus.port} ({bus.baudrate} {bus.bytesize}{bus.parity}{bus.stopbits})")
    )
    last = register + len(values) - 1
    wire = target.wire(register)
    many = len(values) > 1
    numbering = (
        f" (wire {wire}" + (f"..{wire + len(values) - 1})" if many else ")")
        if target.address_base
        else ""
    )
    span = f"{register}..{last}" if many else f"{register}"
    head = f"{table} {span}{numbering} of unit {target.unit} at {where}:"
    if table in ("coil", "discrete"):
        return [head, "  " + " ".join(str(v) for v in values)] + [
            f"  {register + i:>6} {v}" for i, v in enumerate(values)
        ]
    lines = [head, "  raw " + " ".join(f"{r:04X}" for r in values)]
    lines.append(f"{'type':<11}" + "".join(f"{o:>24}" for o in ORDERS))
    for dtype, cells in probe_table(values):
        row = f"{dtype:<11}" + "".join(
            f"{_cell(dtype, cells[o]) if o in cells else '':>24}" for o in ORDERS
        )
        lines.append(row.rstrip())
    return lines


def _json(target: Target, table: str, register: int, values: list[int]) -> str:
    import orjson

    body: dict[str, Any] = {
        "ts": time.time(),
        "unit": target.unit,
        "table": table,
        "register": register,
        "wire": target.wire(register),
        "raw": values,
    }
    if table not in ("coil", "discrete"):
        body["decoded"] = dict(probe_table(values))
    return orjson.dumps(body).decode()


def device_failure(target: Target, exc: DeviceError, as_json: bool, *, final: bool) -> None:
    """One line: the reason and the hint (``final``: the command ends with it)."""
    from edge.cli.diagnose import diagnose

    d = diagnose(exc, target.bus, target.unit)
    report(
        d.text(), as_json, final=final, kind=d.kind, reason=d.reason, hint=d.hint, unit=target.unit
    )


async def _poll(
    target: Target,
    table: str,
    register: int,
    count: int,
    every: float | None,
    polls: int | None,
    as_json: bool,
    trace: Any,
) -> bool:
    import asyncio

    from edge.errors import DeviceError, PortUnavailable

    out = Stdout()
    ok = True
    done = 0
    try:
        async with Session(target.bus, trace) as link:
            while True:
                try:
                    values = await link.read(target.unit, table, target.wire(register), count)
                except PortUnavailable as exc:
                    device_failure(target, exc, as_json, final=True)
                    return False
                except DeviceError as exc:
                    ok = False
                    device_failure(target, exc, as_json, final=every is None)
                else:
                    if as_json:
                        out.line(_json(target, table, register, values))
                    else:
                        for line in _text(target, table, register, values):
                            out.line(line)
                done += 1
                if every is None or (polls is not None and done >= polls):
                    return ok
                await asyncio.sleep(every)
    except PortUnavailable as exc:  # the port or connection could not be opened
        device_failure(target, exc, as_json, final=True)
        return False


def trace_printer(as_json: bool) -> Any:
    """A link trace callback printing each frame on stderr."""

    def sink(sending: bool, data: bytes) -> None:
        direction = "tx" if sending else "rx"
        if as_json:
            import orjson

            text = orjson.dumps({"trace": direction, "hex": data.hex(" ")}).decode()
        else:
            text = f"trace {direction} {data.hex(' ')}"
        print(text, file=sys.stderr, flush=True)

    return sink


@click.command("probe")
@bus_options
@click.option("--unit", type=click.IntRange(0, 247), default=None, help="Unit id [1].")
@click.option(
    "--register",
    type=click.IntRange(0, 65536),
    required=True,
    help="First address (counted from --address-base).",
)
@click.option("--count", type=click.IntRange(1, 2000), default=4, show_default=True)
@click.option("--table", type=click.Choice(TABLES), default="holding", show_default=True)
@click.option("--interval", metavar="DURATION", default=None, help="Poll again this often.")
@click.option("--cycles", type=click.IntRange(min=1), default=None, help="With --interval: polls.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per poll.")
@click.option("--trace", is_flag=True, help="Frames in hex on stderr.")
def probe(
    unit: int | None,
    register: int,
    count: int,
    table: str,
    interval: str | None,
    cycles: int | None,
    as_json: bool,
    trace: bool,
    **opts: Any,
) -> None:
    """Read registers or bits and print them decoded in every data type and byte order.

    \b
    Examples:
      edge probe --port /dev/ttyUSB0 --baud 9600 --parity E --unit 3 --register 100
      edge probe --port /dev/ttyUSB0 --stop-bits 2 --table coil --register 0 --count 16
      edge probe -c node.toml --device tunnel --register 40001 --address-base 1
      edge probe --port 192.168.1.20:502 --register 0 --interval 1s
    """  # noqa: D301
    import asyncio

    target = resolve_target(opts, unit)
    wire = target.wire(register)
    limit = 2000 if table in ("coil", "discrete") else 125
    if count > limit:
        raise click.BadParameter(f"at most {limit} for {table}", param_hint="--count")
    if wire < 0 or wire + count > 65536:
        raise click.BadParameter(
            f"{register}..{register + count - 1} with address base {target.address_base} is"
            " outside 0..65535 on the wire",
            param_hint="--register",
        )
    every = duration_option(interval, "--interval")
    try:
        ok = asyncio.run(
            _poll(
                target,
                table,
                register,
                count,
                every,
                cycles,
                as_json,
                trace_printer(as_json) if trace else None,
            )
        )
    except PipeClosed:
        quiet_exit_on_closed_pipe()
    except KeyboardInterrupt:
        sys.exit(130)
    if not ok:
        sys.exit(1)


COMMANDS: list[click.Command] = [probe]
