"""``edge readings export``: stored raw readings as the CSV ``edge rules test --data`` reads.

The node keeps raw readings in its ledger database, in compressed blocks
(:mod:`edge.ledger.readings_codec`); the export reads them through the one read interface,
:mod:`edge.ledger.readings_read`, and writes them in arrival order in
:mod:`edge.rules.recorded`'s format, the same as ``edge record``: numbers exactly as stored (the
shortest decimal that names the float), booleans ``true``/``false``, no value as an empty cell.
Blocks pruned inside the window (by retention, the disk budget or an operator) are counted and
reported, so a gap in an export is never silent.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from edge.cli.problems import fail, quiet_exit_on_closed_pipe
from edge.cli.read import POINT_OPTION
from edge.cli.readings_summaries import (
    CONFIG_OPTION,
    DB_OPTION,
    SINCE_OPTION,
    UNTIL_OPTION,
    open_store,
    summaries,
)
from edge.cli.record import HEADER, JSON_SUMMARY_OPTION, OUT_OPTION, open_csv_out

__all__ = ["COMMANDS", "export_rows", "readings"]


def _csv_value(value: Any) -> str:
    """A stored value as a CSV cell (numbers as their canonical decimal)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        from edge.ledger.canonical import decimal

        return decimal(value)
    return str(value)


def export_rows(
    conn: Any, points: tuple[str, ...], since: str | None, until: str | None
) -> Iterator[tuple[str, str, str, str]]:
    """``(ts, point, value, quality)`` per stored reading in the window, in arrival order.

    Args:
        conn: a ``sqlite3.Connection`` on a ledger file.
        points: only these points (all when empty).
        since: from this fixed-width UTC time on (``2026-11-23T10:00:00.000000Z``).
        until: before this time (exclusive).
    """
    from edge.ledger.readings_read import read_readings

    for r in read_readings(conn, points=points, since=since, until=until):
        yield r.ts, r.point, _csv_value(r.value), r.quality


@click.group("readings")
def readings() -> None:
    """The raw readings a node stores in its ledger database."""


@readings.command("export")
@DB_OPTION
@CONFIG_OPTION
@POINT_OPTION
@SINCE_OPTION
@UNTIL_OPTION
@OUT_OPTION
@JSON_SUMMARY_OPTION
def export(
    db: Path | None,
    config_path: Path | None,
    points: tuple[str, ...],
    since: str | None,
    until: str | None,
    out_path: Path,
    as_json: bool,
) -> None:
    """Export stored readings as a CSV that `edge rules test --data` replays.

    Exit 0 when readings were exported, 1 when none matched or the file is not a ledger.
    With --json the summary is one JSON object on stdout (the CSV goes to --out).

    \b
    Examples:
      edge readings export -c node.toml --point temp --since 2h --out rec.csv
      edge readings export --db var/ledger.db --since 2026-11-23T10:00Z --until 2026-11-23T11:00Z
    """  # noqa: D301
    import sqlite3

    from edge.errors import ReadingsDamaged

    if as_json and str(out_path) == "-":
        raise click.BadParameter("--json needs --out FILE: stdout carries the summary")
    conn, path, lo, hi = open_store(db, config_path, since, until, as_json)
    from edge.ledger.readings_read import pruned_in_window

    pruned = pruned_in_window(conn, lo, hi)
    out = open_csv_out(out_path, as_json)
    count = 0
    try:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        for row in export_rows(conn, points, lo, hi):
            writer.writerow(row)
            count += 1
        out.flush()
    except BrokenPipeError:
        quiet_exit_on_closed_pipe()
    except (sqlite3.Error, ReadingsDamaged) as exc:  # a damaged file, found while reading it
        fail(f"{path}: cannot read readings: {exc}", 1, as_json)
    finally:
        if out is not sys.stdout:
            out.close()
        conn.close()
    where = "stdout" if out is sys.stdout else str(out_path)
    if as_json:
        import json

        click.echo(
            json.dumps({"ok": count > 0, "readings": count, "pruned_blocks": pruned, "out": where})
        )
        sys.exit(0 if count else 1)
    click.echo(f"exported {count} readings to {where}", err=True)
    if pruned:
        click.echo(
            f"warning: {pruned} block(s) in the window were pruned (retention, disk budget or"
            " edge ledger prune-readings): their readings are no longer stored (their digests"
            " and the readings.prune entries saying why stay on the ledger)",
            err=True,
        )
    sys.exit(0 if count else 1)


readings.add_command(summaries)

COMMANDS: list[click.Command] = [readings]
