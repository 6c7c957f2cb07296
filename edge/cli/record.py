"""``edge record``: record live readings as the CSV ``edge rules test --data`` reads.

The file is exactly :mod:`edge.rules.recorded`'s format: a header ``ts,point,value,quality``,
then one reading per row in arrival order; ``ts`` is RFC 3339 UTC with microseconds, numbers
are written in their shortest exact form (``repr``: they read back as the same float), booleans
``true``/``false``, no value (comm_fail, config_error) as an empty cell. Rows are flushed after
each device's poll cycle, so a recording cut short by Ctrl-C keeps what was read.
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from edge.cli.problems import PipeClosed, fail, quiet_exit_on_closed_pipe, quiet_logs, report
from edge.cli.read import (
    CONFIG_OPTION,
    LISTEN,
    POINT_OPTION,
    duration_option,
    format_value,
    polled_points,
)

if TYPE_CHECKING:
    from edge.cli.watch import Watch
    from edge.config import NodeConfig
    from edge.readings import Reading

__all__ = [
    "COMMANDS",
    "HEADER",
    "JSON_SUMMARY_OPTION",
    "OUT_OPTION",
    "csv_time",
    "csv_value",
    "open_csv_out",
    "record",
]

HEADER = ("ts", "point", "value", "quality")

#: ``--out FILE|-``, the CSV ``edge record`` and ``edge readings export`` write
OUT_OPTION = click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=Path("-"),
    help="The CSV to write ('-': stdout) [-].",
)
#: ``--json`` for those two: the summary takes stdout, so the CSV needs a file
JSON_SUMMARY_OPTION = click.option(
    "--json", "as_json", is_flag=True, help="Summary and errors as JSON (needs --out FILE)."
)


def open_csv_out(out_path: Path, as_json: bool) -> IO[str]:
    """The CSV's stream: stdout for ``-``, else the file, created (or exit 1 naming it)."""
    if str(out_path) == "-":
        return sys.stdout
    try:
        return out_path.open("w", newline="", encoding="utf-8")
    except OSError as exc:
        fail(f"{out_path}: cannot write: {exc.strerror}", 1, as_json)


def csv_time(ts: float) -> str:
    """``2026-11-23T10:00:00.250000Z``: UTC with microseconds (the rules tools read it)."""
    moment = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def csv_value(value: object) -> str:
    """A value as the rules tools read it back: exact numbers, true/false, empty for none.

    The text ``edge read`` shows (:func:`~edge.cli.read.format_value`) but for no value.
    """
    return "" if value is None else format_value(value)


class _Recorder:
    def __init__(
        self, config: NodeConfig, points: list[str], out: IO[str], watch: Watch, as_json: bool
    ) -> None:
        self.as_json = as_json
        self.config = config
        self.wanted = set(points)
        self.file = out
        self.writer = csv.writer(out, lineterminator="\n")
        try:
            self.writer.writerow(HEADER)
            out.flush()
        except BrokenPipeError as exc:
            raise PipeClosed from exc
        self.watch = watch
        self.rows = 0
        self.good = 0
        self.said: dict[str, str] = {}

    def emit(self, readings: list[Reading]) -> None:
        if not readings:
            return
        device = self.config.points[readings[0].point].device
        problems = self.watch.take(device)
        if any(r.quality != "good" for r in readings):
            bus = self.config.devices[device].bus
            problem = problems[-1] if problems else self.watch.bus_down.get(bus)
            if problem is not None and self.said.get(device) != problem.diagnosis.text():
                self.said[device] = problem.diagnosis.text()
                d = problem.diagnosis
                report(
                    f"device {device} (bus {bus}): {d.text()}",
                    self.as_json,
                    device=device,
                    bus=bus,
                    kind=d.kind,
                    reason=d.reason,
                    hint=d.hint,
                )
        try:
            for r in readings:
                self.writer.writerow((csv_time(r.ts), r.point, csv_value(r.value), str(r.quality)))
                self.rows += 1
                self.good += r.quality == "good"
            self.file.flush()
        except BrokenPipeError as exc:  # `edge record ... | head`: end quietly
            raise PipeClosed from exc


async def _record(
    config: NodeConfig, points: list[str], seconds: float, out: IO[str], as_json: bool
) -> Any:
    import asyncio

    from edge.cli.watch import Watch
    from edge.drivers import build_pollers

    watch = Watch()
    recorder = _Recorder(config, points, out, watch, as_json)
    pollers = build_pollers(config, set(points), links=watch.link)

    async def emit(readings: list[Reading]) -> None:
        recorder.emit(readings)

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(p.run(emit), name=f"bus:{p.name}") for p in pollers]
        await asyncio.sleep(seconds)
        for t in tasks:
            t.cancel()
    return recorder


@click.command("record")
@CONFIG_OPTION
@click.option("--seconds", type=float, required=True, help="How long to record.")
@OUT_OPTION
@POINT_OPTION
@click.option("--interval", metavar="DURATION", default=None, help="Poll every device this often.")
@JSON_SUMMARY_OPTION
def record(
    config_path: Path,
    seconds: float,
    out_path: Path,
    points: tuple[str, ...],
    interval: str | None,
    as_json: bool,
) -> None:
    """Record live readings for SECONDS into a CSV that `edge rules test --data` replays.

    Exit 0 when at least one good reading was recorded, 1 otherwise, 2 for a bad config.
    With --json the summary is one JSON object on stdout (the CSV goes to --out).

    \b
    Examples:
      edge record -c node.toml --seconds 60 --out rec.csv
      edge rules test rules.yaml --data rec.csv
    """  # noqa: D301
    import asyncio

    from edge.errors import ConfigError

    if seconds <= 0:
        raise click.BadParameter("must be positive", param_hint="--seconds")
    if as_json and str(out_path) == "-":
        raise click.BadParameter("--json needs --out FILE: stdout carries the summary")
    every = duration_option(interval, "--interval")
    config, wanted = polled_points(config_path, points, every, LISTEN, as_json)
    if not wanted:
        fail(f"{config_path}: no points to record", 1, as_json)
    started = time.monotonic()
    out = open_csv_out(out_path, as_json)
    try:
        with quiet_logs():  # failures are diagnosed per device, not as log lines
            recorder = asyncio.run(_record(config, wanted, seconds, out, as_json))
    except KeyboardInterrupt:
        sys.exit(130)
    except ConfigError as exc:
        fail(exc.problems, 2, as_json)
    except PipeClosed:
        quiet_exit_on_closed_pipe()
    except BaseExceptionGroup as group:
        if group.subgroup(PipeClosed) is not None:
            quiet_exit_on_closed_pipe()
        raise
    finally:
        if out is not sys.stdout:
            out.close()
    took = round(time.monotonic() - started, 3)
    where = "stdout" if out is sys.stdout else str(out_path)
    if as_json:
        import json

        summary = {"ok": recorder.good > 0, "readings": recorder.rows, "good": recorder.good}
        click.echo(json.dumps({**summary, "points": len(wanted), "seconds": took, "out": where}))
    else:
        click.echo(
            f"recorded {recorder.rows} readings ({recorder.good} good) of {len(wanted)} points"
            f" in {took:.1f} s to {where}",
            err=True,
        )
    sys.exit(0 if recorder.good else 1)


COMMANDS: list[click.Command] = [record]
