"""``edge readings summaries``: the per-minute and per-hour summaries kept beyond raw readings.

Each closed block adds its numeric ``good`` readings to per-point summaries of every minute and
hour (:mod:`edge.ledger.readings_summary`): count, min, max, mean and standard deviation. Raw
readings go after ``readings_retention`` (30 days), minute summaries after
``minute_summary_retention`` (90 days), hour summaries never: this command reads them back,
through :func:`edge.ledger.readings_read.read_summaries`, as CSV or JSON (one row per point and
period: point, start in ISO UTC, count, min, max, mean, std). The window selects periods by
their start, ``[since, until)``. Also the ``--db``/``-c``/``--since``/``--until`` options and
the opening of the file that ``edge readings export`` shares.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import click

from edge.cli.problems import fail, quiet_exit_on_closed_pipe
from edge.cli.read import POINT_OPTION
from edge.cli.record import open_csv_out

__all__ = [
    "COLUMNS",
    "CONFIG_OPTION",
    "DB_OPTION",
    "SINCE_OPTION",
    "UNTIL_OPTION",
    "open_store",
    "summaries",
    "summary_rows",
]

#: The columns, in order (CSV header, JSON keys).
COLUMNS = ("point", "start", "count", "min", "max", "mean", "std")
_SECONDS = {"minute": 60, "hour": 3600}


def open_store(
    db: Path | None, config_path: Path | None, since: str | None, until: str | None, as_json: bool
) -> tuple[Any, Path, str | None, str | None]:
    """The ledger file's read-only connection, its path and the window (exit 1/2 on error).

    A running node is asked first to move its commit journal, where its newest blocks may wait.
    """
    import datetime as dt

    from edge.errors import ConfigError, EdgeError
    from edge.ledger.database import connect
    from edge.ledger.query import parse_time

    try:
        from edge.cli.ledger_query import sync_node

        socket = None
        if db is None and config_path is not None:
            from edge.config import load_config

            cfg = load_config(config_path)
            db, socket = cfg.ledger_path, cfg.control_socket
        path = db if db is not None else Path("var") / "ledger.db"
        # a running node's newest readings may wait in its commit journal: it moves them first
        sync_node(path, socket if socket is not None else path.parent / "control.sock")
        now = dt.datetime.now(dt.UTC)
        lo = parse_time(since, now, "--since") if since else None
        hi = parse_time(until, now, "--until") if until else None
        conn = connect(path, readonly=True)
    except ConfigError as exc:
        fail(exc.problems, 2, as_json)
    except EdgeError as exc:
        fail(str(exc), 1, as_json)
    conn.execute("PRAGMA busy_timeout=5000")  # a running node may be committing a block
    tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not {"readings", "reading_blocks"} <= tables:
        conn.close()
        fail(f"{path}: not an edge ledger database (no readings table)", 1, as_json)
    return conn, path, lo, hi


DB_OPTION = click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="EDGE_LEDGER_DB",
    help="Ledger database file (env EDGE_LEDGER_DB) [the config's, else var/ledger.db].",
)
CONFIG_OPTION = click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="node.toml: read its ledger database.",
)
SINCE_OPTION = click.option(
    "--since", metavar="TIME", help="From this time on (ISO 8601, or a duration ago: 2h)."
)
UNTIL_OPTION = click.option(
    "--until", metavar="TIME", help="Before this time (exclusive; same forms)."
)


def summary_rows(
    conn: Any, seconds: int, points: tuple[str, ...], since: str | None, until: str | None
) -> Iterator[dict[str, Any]]:
    """One dict per stored summary (:data:`COLUMNS`), by point then start."""
    from edge.ledger.readings_read import read_summaries

    for s in read_summaries(conn, seconds=seconds, points=points, since=since, until=until):
        yield {
            "point": s.point,
            "start": s.start[:19] + "Z",  # whole seconds: periods start on them
            "count": s.count,
            "min": s.min,
            "max": s.max,
            "mean": s.mean,
            "std": s.std,
        }


def _write(out: IO[str], rows: Iterator[dict[str, Any]], fmt: str) -> int:
    count = 0
    if fmt == "csv":
        import csv

        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            # floats as Python writes them: the shortest decimal that reads back the same
            writer.writerow([row[c] for c in COLUMNS])
            count += 1
        return count
    import orjson

    out.write("[")
    for row in rows:
        out.write(("," if count else "") + "\n" + orjson.dumps(row).decode())
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


@click.command("summaries")
@DB_OPTION
@CONFIG_OPTION
@POINT_OPTION
@SINCE_OPTION
@UNTIL_OPTION
@click.option(
    "--per",
    type=click.Choice(["minute", "hour"]),
    default="hour",
    show_default=True,
    help="Summaries of each minute (kept minute_summary_retention) or hour (kept for ever).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json"]),
    default="csv",
    show_default=True,
    help="CSV with a header row, or a JSON array of objects.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=Path("-"),
    help="The file to write ('-': stdout) [-].",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Summary and errors as JSON (needs --out FILE)."
)
def summaries(
    db: Path | None,
    config_path: Path | None,
    points: tuple[str, ...],
    since: str | None,
    until: str | None,
    per: str,
    fmt: str,
    out_path: Path,
    as_json: bool,
) -> None:
    """Export per-point summaries (count, min, max, mean, std) of each minute or hour.

    They outlive raw readings: a trend over months needs no raw data. Columns: point, start
    (ISO UTC), count, min, max, mean, std (sample, n - 1). Exit 0 when summaries were
    exported, 1 when none matched or the file is not a ledger. With --json the summary is one
    JSON object on stdout (the rows go to --out).

    \b
    Examples:
      edge readings summaries -c node.toml --point temp --since 90d --out temp-hours.csv
      edge readings summaries --db var/ledger.db --per minute --since 2h --format json
    """  # noqa: D301
    import sqlite3

    if as_json and str(out_path) == "-":
        raise click.BadParameter("--json needs --out FILE: stdout carries the summary")
    conn, path, lo, hi = open_store(db, config_path, since, until, as_json)
    out: IO[str] = sys.stdout
    try:
        out = open_csv_out(out_path, as_json)
        count = _write(out, summary_rows(conn, _SECONDS[per], points, lo, hi), fmt)
        out.flush()
    except BrokenPipeError:
        quiet_exit_on_closed_pipe()
    except sqlite3.Error as exc:  # a damaged file, found while reading it
        fail(f"{path}: cannot read summaries: {exc}", 1, as_json)
    finally:
        if out is not sys.stdout:
            out.close()
        conn.close()
    where = "stdout" if out is sys.stdout else str(out_path)
    if as_json:
        import json

        click.echo(json.dumps({"ok": count > 0, "summaries": count, "per": per, "out": where}))
        sys.exit(0 if count else 1)
    click.echo(f"exported {count} {per} summaries to {where}", err=True)
    if not count:
        click.echo(
            f"edge: no {per} summaries matched"
            + ("" if per == "hour" else " (minute summaries are kept minute_summary_retention)"),
            err=True,
        )
    sys.exit(0 if count else 1)
