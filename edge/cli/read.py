"""``edge read``: poll a node's points and show each value with its register, raw words and quality.

Exit status: 0 when every reading printed was good; 1 when any requested point was not
(comm_fail, stale, config_error) or nothing could be read, or the reader of stdout went away
(``| head``: the command ends quietly); 2 for a bad config or usage; 130 on Ctrl-C. Each failing
device gets one line on stderr with the reason and what to check, printed again only when the
reason changes.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edge.cli.problems import (
    PipeClosed,
    Stdout,
    fail,
    quiet_exit_on_closed_pipe,
    quiet_logs,
    report,
)
from edge.durations import parse_duration

if TYPE_CHECKING:
    from edge.cli.watch import Problem, Watch
    from edge.config import NodeConfig, PointConfig
    from edge.drivers import BusPoller
    from edge.readings import Reading

__all__ = [
    "COMMANDS",
    "CONFIG_OPTION",
    "LISTEN",
    "POINT_OPTION",
    "format_value",
    "polled_points",
    "read",
]

#: how long ``edge read`` listens for a line from a device that talks by itself (at least)
LISTEN = 2.0

#: ``-c node.toml`` of the commands that poll a node's points (``edge read``, ``edge record``)
CONFIG_OPTION = click.option(
    "-c",
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="node.toml",
)
#: ``--point NAME`` (repeatable) of the commands that read points (read, record, readings export)
POINT_OPTION = click.option(
    "--point", "points", multiple=True, metavar="NAME", help="Only this point (repeatable)."
)


def format_value(value: object) -> str:
    """A value exactly as decoded: shortest round-trip repr for floats, ``-`` for none."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def duration_option(text: str | None, name: str) -> float | None:
    """A duration option ('500ms', '2s', '1.5') in seconds, or a usage error."""
    if text is None:
        return None
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None
    if seconds <= 0:
        raise click.BadParameter(f"{text!r} must be positive", param_hint=name)
    return seconds


def prepare(config: NodeConfig, interval: float | None, listen: float) -> NodeConfig:
    """The config as the tools poll it.

    ``interval`` (``--interval``) replaces every device's poll; line devices that talk by
    themselves get ``listen`` seconds to print a line: their own print interval is unknown to
    us, and the bus timeout (200 ms by default) is shorter than most scales' interval.
    """
    buses = {
        name: dataclasses.replace(bus, timeout=max(bus.timeout, listen))
        if bus.kind == "line" and not bus.query
        else bus
        for name, bus in config.buses.items()
    }
    devices = dict(config.devices)
    if interval is not None:
        devices = {n: dataclasses.replace(d, poll=interval) for n, d in devices.items()}
    return dataclasses.replace(config, buses=buses, devices=devices)


def polled_points(
    config_path: Path,
    points: tuple[str, ...],
    interval: float | None,
    listen: float,
    as_json: bool,
) -> tuple[NodeConfig, list[str]]:
    """The config as the tools poll it (:func:`prepare`) and the points asked for, in order.

    No ``--point``: every configured point. A config that does not load, or a ``--point`` it
    does not hold, ends the command with status 2 (``edge read`` and ``edge record`` alike).
    """
    from edge.config import load_config
    from edge.errors import ConfigError

    try:
        config = prepare(load_config(config_path), interval, listen)
        unknown = [p for p in points if p not in config.points]
        if unknown:
            raise ConfigError([f"{config_path}: --point {p}: no such point" for p in unknown])
    except ConfigError as exc:
        fail(exc.problems, 2, as_json)
    return config, list(dict.fromkeys(points)) if points else list(config.points)


def _where(p: PointConfig, config: NodeConfig) -> tuple[str, str]:
    """(register column, type column) of a point."""
    if config.buses[config.devices[p.device].bus].kind == "line":
        return f"field {p.field}", "line"
    kind = p.type
    if p.type == "bit":
        kind = f"bit {p.bit}"
    elif p.type == "string":
        kind = f"string[{p.length}]"
    elif p.table in ("holding", "input") and p.type not in ("int16", "uint16", "bool"):
        kind = f"{p.type} {p.order}"
    return f"{p.table} {p.register}", kind


def _raw(r: Reading, p: PointConfig, config: NodeConfig, watch: Watch) -> Any:
    bus = config.buses[config.devices[p.device].bus]
    if bus.kind == "line":
        return watch.lines.get(bus.name)
    words = watch.raw.get(r.point)
    return None if words is None else list(words)


class _Table:
    """The text table: a header once, then one row per reading."""

    def __init__(self, config: NodeConfig, points: Sequence[str]) -> None:
        self.config = config
        self.w = max([5, *(len(p) for p in points)])

    def header(self) -> str:
        return (
            f"{'point':<{self.w}} {'value':>20} {'unit':<6} {'quality':<12} {'device':<10} "
            f"{'register':<14} {'type':<14} {'raw':<19} latency"
        )

    def row(self, r: Reading, raw: Any) -> str:
        p = self.config.points[r.point]
        register, kind = _where(p, self.config)
        if raw is None or r.quality != "good":
            raw_text = "-"
        elif isinstance(raw, str):
            raw_text = repr(raw)
        elif p.table in ("coil", "discrete"):
            raw_text = " ".join(str(b) for b in raw)
        else:
            raw_text = " ".join(f"{w:04X}" for w in raw)
        latency = f"{r.latency * 1000:.1f}ms" if r.latency else "-"
        return (
            f"{r.point:<{self.w}} {format_value(r.value):>20} {r.unit or '-':<6} "
            f"{r.quality!s:<12} {p.device:<10} {register:<14} {kind:<14} {raw_text:<19} {latency}"
        )


def _json_row(r: Reading, p: PointConfig, config: NodeConfig, raw: Any, now: float) -> str:
    import orjson

    kind = _where(p, config)[1]
    return orjson.dumps(
        {
            "point": r.point,
            "value": r.value,
            "unit": r.unit,
            "quality": str(r.quality),
            "ts": r.ts,
            "age": round(r.age(now), 6),
            "latency": round(r.latency, 6),
            "device": p.device,
            "table": p.table if kind != "line" else "line",
            "register": p.register if kind != "line" else None,
            "type": kind,
            "raw": raw if r.quality == "good" else None,
        }
    ).decode()


def _trace_sink(as_json: bool) -> Any:
    def sink(bus: str, number: int, sending: bool, data: bytes) -> None:
        direction = "tx" if sending else "rx"
        if as_json:
            report_line = {"trace": direction, "bus": bus, "request": number, "hex": data.hex(" ")}
            import orjson

            text = orjson.dumps(report_line).decode()
        else:
            text = f"trace {bus} #{number} {direction} {data.hex(' ')}"
        print(text, file=sys.stderr, flush=True)

    return sink


class _Reader:
    """One ``edge read`` run: polls, prints, and keeps what the exit status needs."""

    def __init__(
        self, config: NodeConfig, points: Sequence[str], count: int | None, as_json: bool
    ) -> None:
        import asyncio

        self.config = config
        self.points = list(points)
        self.count = count
        self.as_json = as_json
        self.out = Stdout()
        self.table = _Table(config, self.points)
        self.cycles: dict[str, int] = {}
        self.devices = sorted({config.points[p].device for p in self.points})
        self.all_good = True
        self.said: dict[str, str] = {}  #: device -> the failure last printed
        self.done = asyncio.Event()

    def describe(self, device: str, problems: list[Problem], watch: Watch) -> None:
        dev = self.config.devices[device]
        bus = self.config.buses[dev.bus]
        problem = problems[-1] if problems else watch.bus_down.get(bus.name)
        if problem is None:
            return
        text = problem.diagnosis.text()
        if self.said.get(device) == text:
            return
        self.said[device] = text
        unit = f", unit {dev.unit}" if bus.kind != "line" else ""
        where = f" {problem.where}" if problem.where else ""
        report(
            f"device {device} (bus {bus.name}{unit}){where}: {text}",
            self.as_json,
            device=device,
            bus=bus.name,
            kind=problem.diagnosis.kind,
            reason=problem.diagnosis.reason,
            hint=problem.diagnosis.hint,
        )

    def emit(self, readings: list[Reading], watch: Watch) -> None:
        if not readings:
            return
        device = self.config.points[readings[0].point].device
        if self.count is not None and self.cycles.get(device, 0) >= self.count:
            watch.take(device)
            return  # this device is done; others are still finishing their cycles
        self.cycles[device] = self.cycles.get(device, 0) + 1
        now = time.time()
        problems = watch.take(device)
        bad = [r for r in readings if r.quality != "good"]
        if bad:
            self.all_good = False
            self.describe(device, problems, watch)
        elif device in self.said:
            del self.said[device]
            if not self.as_json:
                print(f"device {device}: answering again", file=sys.stderr, flush=True)
        for r in readings:
            p = self.config.points[r.point]
            raw = _raw(r, p, self.config, watch)
            if self.as_json:
                self.out.line(_json_row(r, p, self.config, raw, now))
            else:
                self.out.line(self.table.row(r, raw))
        if self.count is not None and all(
            self.cycles.get(d, 0) >= self.count for d in self.devices
        ):
            self.done.set()


async def _run(reader: _Reader, watch: Watch, trace: bool) -> None:
    import asyncio

    from edge.drivers import build_pollers

    pollers = build_pollers(reader.config, set(reader.points), links=watch.link)

    async def emit(readings: list[Reading]) -> None:
        reader.emit(readings, watch)

    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(p.run(emit), name=f"bus:{p.name}") for p in pollers]
            await reader.done.wait()
            for t in tasks:
                t.cancel()
    finally:
        _lost_cycles(pollers, reader.as_json)
        if trace:
            for p in pollers:
                s = p.stats()
                print(
                    f"bus {s.bus}: {s.requests} requests, {s.responses} responses, "
                    f"{s.timeouts} timeouts, {s.frame_errors} bad replies, "
                    f"{s.exceptions} exceptions, {s.port_errors} port errors",
                    file=sys.stderr,
                    flush=True,
                )


def _lost_cycles(pollers: Sequence[BusPoller], as_json: bool) -> None:
    """On exit, on stderr: each device that lost cycles (not polled) or answered late."""
    for p in pollers:
        for d in p.stats().devices.values():
            if not (d.skipped or d.deferred or d.late_replies or d.status != "ok"):
                continue
            if as_json:
                import orjson

                line = orjson.dumps(
                    {
                        "device": d.name,
                        "status": d.status,
                        "polled": d.polls,
                        "skipped": d.skipped,
                        "deferred": d.deferred,
                        "kept": round(d.kept, 4),
                        "late_replies": d.late_replies,
                    }
                ).decode()
            else:
                line = (
                    f"device {d.name}: {d.status}, polled {d.polls}, skipped {d.skipped},"
                    f" deferred {d.deferred} (kept {d.kept:.1%}), late replies {d.late_replies}"
                )
            print(line, file=sys.stderr, flush=True)


def _unwrap(group: BaseException) -> BaseException:
    """The first leaf of an exception group (a TaskGroup wraps what its tasks raise)."""
    while isinstance(group, BaseExceptionGroup):
        group = group.exceptions[0]
    return group


@click.command("read")
@CONFIG_OPTION
@click.option("--once", is_flag=True, help="One poll cycle per device, then exit.")
@click.option(
    "--cycles",
    type=click.IntRange(min=1),
    default=None,
    help="Poll cycles per device, then exit (--once is --cycles 1).",
)
@click.option(
    "--interval",
    metavar="DURATION",
    default=None,
    help="Poll every device this often (e.g. 500ms, 2s) instead of its configured poll.",
)
@click.option(
    "--listen",
    metavar="DURATION",
    default="2s",
    show_default=True,
    help="How long to wait for a line from a device that talks by itself.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@click.option("--trace", is_flag=True, help="Frames in hex and request counts on stderr.")
@POINT_OPTION
def read(
    config_path: Path,
    once: bool,
    cycles: int | None,
    interval: str | None,
    listen: str,
    as_json: bool,
    trace: bool,
    points: tuple[str, ...],
) -> None:
    """Poll the configured points; print value, unit, quality, register, type and raw words.

    \b
    Exit status: 0 every reading good; 1 a requested point was not good
    (or nothing was read); 2 bad config or usage; 130 Ctrl-C.
    \b
    Examples:
      edge read -c node.toml --once
      edge read -c node.toml --point temp --interval 500ms --trace
      edge read -c node.toml --json | head -1
    """  # noqa: D301
    import asyncio

    from edge.cli.watch import Watch
    from edge.errors import ConfigError

    every = duration_option(interval, "--interval")
    listen_s = duration_option(listen, "--listen") or LISTEN
    config, wanted = polled_points(config_path, points, every, listen_s, as_json)
    if not wanted:
        fail(f"{config_path}: no points to read (add [points.NAME] sections)", 1, as_json)
    reader = _Reader(config, wanted, 1 if once else cycles, as_json)
    watch = Watch(trace=_trace_sink(as_json) if trace else None)
    try:
        if not as_json:
            reader.out.line(reader.table.header())
        with quiet_logs():  # failures are diagnosed per device, not as log lines
            asyncio.run(_run(reader, watch, trace))
    except PipeClosed:
        quiet_exit_on_closed_pipe()
    except KeyboardInterrupt:
        sys.exit(130)
    except ConfigError as exc:
        fail(exc.problems, 2, as_json)
    except BaseExceptionGroup as group:
        leaf = _unwrap(group)
        if isinstance(leaf, PipeClosed):
            quiet_exit_on_closed_pipe()
        if isinstance(leaf, KeyboardInterrupt):
            sys.exit(130)
        raise
    sys.exit(0 if reader.all_good else 1)


COMMANDS: list[click.Command] = [read]
