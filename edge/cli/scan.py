"""``edge scan``: which unit ids answer on a bus.

Each id in the range is asked for one register (``--register``, ``--table``) with a short
timeout (``--timeout``, 0.1 s by default: a whole 1..247 scan takes about 25 s when nothing
answers). A device answers even when it refuses the register (an exception reply), so both
count as found; silence is not found, nor a gateway's exception 10/11 (it answers for a unit
that did not); a garbled reply is reported (two devices sharing an id, or a wrong baud rate).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from edge.cli.link import TABLES, Session, bus_options, resolve_target
from edge.cli.probe import device_failure, trace_printer
from edge.cli.problems import PipeClosed, Stdout, quiet_exit_on_closed_pipe

__all__ = ["COMMANDS", "parse_units", "scan"]


def parse_units(text: str) -> list[int]:
    """``1-10,20,30-32`` -> the ids, in order, each once.

    Raises:
        ValueError: not that form, or an id outside 0..247.
    """
    ids: list[int] = []
    for part in text.replace(" ", "").split(","):
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"bad unit range {part!r} (expected like 1-247 or 1,5,10-12)")
        a, b = int(lo), int(hi) if sep else int(lo)
        if not 0 <= a <= b <= 247:
            raise ValueError(f"unit ids {part!r} outside 0..247 or reversed")
        ids.extend(range(a, b + 1))
    return list(dict.fromkeys(ids))


async def _scan(
    target: Any, units: list[int], table: str, register: int, as_json: bool, trace: Any
) -> list[int]:
    from edge.cli.diagnose import diagnose
    from edge.errors import DeviceException, DeviceTimeout, FrameError, PortUnavailable

    out = Stdout()
    found: list[int] = []
    wire = target.wire(register)
    try:
        async with Session(target.bus, trace) as link:
            for unit in units:
                status: str
                detail: dict[str, Any] = {}
                try:
                    values = await link.read(unit, table, wire, 1)
                except DeviceTimeout:
                    continue
                except DeviceException as exc:
                    if exc.code in (10, 11):  # a gateway saying nobody answered behind it
                        continue
                    d = diagnose(exc, target.bus, unit)
                    status, detail = "exception", {"code": exc.code, "reason": d.reason}
                    text = f"unit {unit:>3}: answers ({d.reason})"
                except FrameError as exc:
                    d = diagnose(exc, target.bus, unit)
                    status, detail = "garbled", {"reason": d.reason}
                    text = f"unit {unit:>3}: garbled reply ({d.text()})"
                except PortUnavailable as exc:
                    device_failure(target, exc, as_json, final=True)
                    return found
                else:
                    status, detail = "answers", {"value": values[0]}
                    text = f"unit {unit:>3}: answers ({table} {register} = {values[0]})"
                found.append(unit)
                if as_json:
                    import orjson

                    out.line(orjson.dumps({"unit": unit, "status": status, **detail}).decode())
                else:
                    out.line(text)
    except PortUnavailable as exc:
        device_failure(target, exc, as_json, final=True)
        return found
    if not as_json:
        listed = ", ".join(map(str, found)) if found else "none"
        out.line(f"{len(found)} of {len(units)} unit ids answer: {listed}")
    return found


@click.command("scan")
@bus_options
@click.option(
    "--units", default="1-247", show_default=True, help="Unit ids to try: 1-247, 1,5,10-12."
)
@click.option(
    "--register",
    type=click.IntRange(0, 65536),
    default=None,
    help="Address asked for (from --address-base) [its first].",
)
@click.option("--table", type=click.Choice(TABLES), default="holding", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per unit found.")
@click.option("--trace", is_flag=True, help="Frames in hex on stderr.")
def scan(
    units: str, register: int | None, table: str, as_json: bool, trace: bool, **opts: Any
) -> None:
    """List the unit ids that answer on a bus (exit 1 when none does).

    \b
    Examples:
      edge scan --port /dev/ttyUSB0 --baud 9600 --parity E
      edge scan --port /dev/ttyUSB0 --units 1-20 --timeout 0.05
      edge scan --port 192.168.1.20:502 --units 1-10
    """  # noqa: D301
    import asyncio

    try:
        ids = parse_units(units)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--units") from None
    target = resolve_target(opts, 1, default_timeout=0.1)
    first = target.address_base if register is None else register
    if target.wire(first) < 0:
        raise click.BadParameter("below the address base", param_hint="--register")
    try:
        found = asyncio.run(
            _scan(target, ids, table, first, as_json, trace_printer(as_json) if trace else None)
        )
    except PipeClosed:
        quiet_exit_on_closed_pipe()
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0 if found else 1)


COMMANDS: list[click.Command] = [scan]
