"""``edge ledger query|trace``, which ``edge/cli/ledger.py`` registers into the ``ledger`` group.

``export`` is in edge/cli/ledger_export.py and shares this module's options and helpers.

Tables (rich) are for people; ``--json`` (JSON lines for query, one document for trace) and
``--csv`` are for programs. Every failure is one line on stderr and a non-zero exit: 1 when the
ledger has nothing to show (unknown lot), 1 for an unreadable database, 2 for bad options.
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import io
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from edge.cli.options import DB_OPTION
from edge.cli.trust import resolve_trust, trust_options
from edge.errors import ConfigError, EdgeError
from edge.ledger.owner import read_owner
from edge.ledger.query import (
    EntryFilter,
    Stations,
    StoredEntry,
    load_stations,
    open_ledger_db,
    parse_time,
    query_entries,
    summarize,
)
from edge.ledger.trace import LotTrace, trace_lot

_SORT_KEYS = ("ts", "node", "seq", "type", "lots", "summary")
_CSV_FIELDS = ("ts", "node", "site", "feed", "seq", "type", "lots", "actor", "summary", "id")


class _BadOption(click.ClickException):
    """A wrong option value: ``Error: <one line>``, exit 2 (like click's usage errors)."""

    exit_code = 2


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """Edge errors become ``Error: <one line>`` and exit 1, never a traceback."""
    try:
        yield
    except ConfigError as exc:
        raise _BadOption("; ".join(exc.problems)) from exc
    except EdgeError as exc:
        raise click.ClickException(str(exc).splitlines()[0] if str(exc) else repr(exc)) from exc


def _console() -> Console:
    """Rich console; piped output gets 160 columns (not 80) so tables stay readable in files."""
    console = Console(soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(soft_wrap=False, width=160)
    return console


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _row(entry: StoredEntry, stations: Stations) -> dict[str, Any]:
    station = stations.at(entry.feed, entry.ts)
    return {
        "ts": entry.ts,
        "node": station.node_id or entry.feed[:12],
        "site": station.site,
        "feed": entry.feed,
        "seq": entry.seq,
        "type": entry.type,
        "lots": " ".join(entry.lots),
        "actor": entry.actor,
        "summary": summarize(entry),
        "id": entry.id,
    }


@click.command("query")
@DB_OPTION
@click.option(
    "--type",
    "types",
    metavar="T",
    multiple=True,
    help="Only entries of this type (alarm, lot.end, ...); repeat for any of several.",
)
@click.option(
    "--lot",
    "lots",
    metavar="L",
    multiple=True,
    help="Only entries naming this lot; repeat for any of several.",
)
@click.option(
    "--node", "nodes", metavar="N", multiple=True,
    help="Only entries of this node (node id, site, or feed key prefix); repeatable.",
)  # fmt: skip
@click.option(
    "--since", metavar="TIME", help="From this time on (ISO 8601, or a duration ago: 2h)."
)
@click.option(
    "--until", metavar="TIME", help="Before this time (exclusive; same forms as --since)."
)
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="At most N entries.")
@click.option("--newest-first", is_flag=True, help="Newest first (with --limit: the newest N).")
@click.option(
    "--sort",
    "sort_key",
    type=click.Choice(_SORT_KEYS),
    default="ts",
    show_default=True,
    help="Column to sort the shown rows by.",
)
@click.option(
    "--checkpoints",
    is_flag=True,
    help="Also list checkpoint entries (hidden by default; --type checkpoint lists only them).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines: one entry per line.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row.")
def query_command(
    db: Path,
    types: tuple[str, ...],
    lots: tuple[str, ...],
    nodes: tuple[str, ...],
    since: str | None,
    until: str | None,
    limit: int | None,
    newest_first: bool,
    sort_key: str,
    checkpoints: bool,
    as_json: bool,
    as_csv: bool,
) -> None:
    """List ledger entries matching every given filter, oldest first.

    A repeated filter accumulates: --type alarm --type alarm.ack lists both types. A lot that
    no entry names is an error with the nearest lot names (a typo would otherwise show nothing).
    Checkpoint entries (signed Merkle roots, one per commit) are left out unless --checkpoints
    or --type checkpoint asks for them: they would be half of every table.
    """
    if as_json and as_csv:
        raise _BadOption("--json and --csv exclude each other")
    now = datetime.now(UTC)
    with _one_line_errors():
        flt_since = parse_time(since, now, "--since") if since else None
        flt_until = parse_time(until, now, "--until") if until else None
        sync_node(db, db.parent / "control.sock")  # a running node's journal first
        conn = open_ledger_db(db)
        try:
            stations = load_stations(conn, every_feed=bool(nodes))
            feeds: frozenset[str] | None = None
            if nodes:
                feeds = frozenset()
                for node in nodes:
                    matching = frozenset(stations.feeds_matching(node))
                    if not matching:
                        raise click.ClickException(
                            f"--node {node!r}: no node, site or feed key matches"
                        )
                    feeds |= matching
            for lot in lots:
                _check_lot(conn, db, lot)
            for type_ in types:
                _check_type(conn, type_)
            hidden: tuple[str, ...] = () if checkpoints or types else ("checkpoint",)
            flt = EntryFilter(
                types or None, lots or None, feeds, flt_since, flt_until, limit, newest_first,
                exclude_types=hidden,
            )  # fmt: skip
            entries = query_entries(conn, flt)
        finally:
            conn.close()
    rows = [_row(e, stations) for e in entries]
    if sort_key != "ts":
        order = sorted(range(len(rows)), key=lambda i: (rows[i][sort_key], rows[i]["ts"]))
        rows, entries = [rows[i] for i in order], [entries[i] for i in order]
    if as_json:
        for row, entry in zip(rows, entries, strict=True):
            click.echo(
                _json(
                    {
                        **entry.to_json(),
                        "node": row["node"],
                        "site": row["site"],
                        "summary": row["summary"],
                    }
                )
            )
    elif as_csv:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=_CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        click.echo(out.getvalue(), nl=False)
    else:
        note = " (checkpoints hidden: --checkpoints shows them)" if hidden else ""
        table = Table(title=f"{len(rows)} entries{note}", show_lines=False)
        for column in ("ts", "node", "seq", "type", "lots"):
            table.add_column(column, no_wrap=True)
        table.add_column("summary", overflow="fold", ratio=1)
        from edge.office.numbers import summary_numbers

        number = summary_numbers()
        for row, entry in zip(rows, entries, strict=True):
            table.add_row(
                *(Text(str(row[c])) for c in ("ts", "node", "seq", "type", "lots")),
                Text(summarize(entry, number)),
            )
        _console().print(table)


@dataclass(frozen=True, slots=True)
class _Shown:
    """Which feeds trace and export show: ``feeds`` (None: all) and their names."""

    feeds: frozenset[str] | None
    names: dict[str, str]
    hidden: int = 0  #: feeds naming the lot that were left out


def _all_feeds_option(func: Any) -> Any:
    func = click.option(
        "--all-feeds", is_flag=True,
        help="Show every feed in the file, trusted or not (each marked).",
    )(func)  # fmt: skip
    return trust_options(func)


def db_for(db: Path, config_path: Path | None) -> Path:
    """``--db``, or the ledger of ``-c`` when --db was not given.

    When a running node writes it, the node is asked first to move its commit journal into
    the database (:func:`sync_node`), so the reader sees every entry committed until now.
    """
    ctx = click.get_current_context()
    if config_path is not None and ctx.get_parameter_source("db") in (
        click.core.ParameterSource.DEFAULT,
        None,
    ):
        from edge.config import load_config

        cfg = load_config(config_path)
        sync_node(cfg.ledger_path, cfg.control_socket)
        return cfg.ledger_path
    sync_node(db, db.parent / "control.sock")
    return db


def sync_node(db: Path, socket: Path) -> bool:
    """Ask the node running on ``db`` to sign and move its commit journal (``sync``).

    Only when the journal beside ``db`` holds records (a stopped node leaves none) and the
    node's control socket is there. The node's small commits wait in the journal, unsigned, up
    to ``journal_age`` before they move into the database, which readers read. A node that
    does not answer leaves the reader with the database as it is (``verify`` says what the
    journal holds).

    Returns:
        True when a running node moved its journal.
    """
    from edge.ledger.journal import journal_path

    try:
        if journal_path(db).stat().st_size == 0 or not socket.exists():
            return False
    except OSError:
        return False
    import asyncio

    from edge.control import send_command
    from edge.errors import EdgeError

    def ask() -> dict[str, Any]:
        return asyncio.run(send_command(socket, {"action": "sync"}, patience=15.0))

    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            result = ask()
        else:  # called from inside an event loop (a program, a test): on a thread of its own
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(1) as pool:
                result = pool.submit(ask).result()
    except EdgeError:
        return False  # not running (a killed node's journal), or not answering
    return bool(result.get("ok"))


def _load_trace(
    db: Path,
    lot: str,
    trust_keys: Sequence[str] = (),
    config_path: Path | None = None,
    all_feeds: bool = False,
) -> tuple[LotTrace, _Shown]:
    with _one_line_errors():
        db = db_for(db, config_path)
        trust = resolve_trust(db, trust_keys, config_path)
        conn = open_ledger_db(db)
        try:
            names = dict(trust.names or {})
            if all_feeds:
                feeds = None
            elif trust.names is not None:
                feeds = frozenset(trust.names)
            else:  # no trust list anywhere: the file's own feed, by the file's word
                owner = read_owner(conn)
                feeds = frozenset({owner}) if owner is not None else None
            trace = trace_lot(conn, lot, feeds)
            hidden = 0
            if feeds is not None:
                naming = {
                    f
                    for (f,) in conn.execute(
                        "SELECT DISTINCT feed FROM entry_lots WHERE lot = ?", (lot,)
                    )
                }
                hidden = len(naming - feeds)
            if not trace.events and not hidden:
                _check_lot(conn, db, lot)  # a typo gets "did you mean"
        finally:
            conn.close()
    shown = _Shown(feeds, names, hidden)
    if hidden:
        click.echo(
            f"note: {hidden} untrusted feed(s) also name lot {lot!r} and are not shown "
            "(--all-feeds shows them; edge trust add trusts a key)",
            err=True,
        )
    if not trace.events:
        which = "of a trusted feed " if hidden else ""
        raise click.ClickException(f"lot {lot!r}: no entries {which}in {db}")
    return trace, shown


def _feed_label(feed: str, shown: _Shown) -> str:
    """A feed's trust-list name, else its full id (marked when trust was not applied)."""
    name = shown.names.get(feed)
    if name is not None:
        return name
    return feed if shown.feeds is not None or not shown.names else f"{feed} (untrusted)"


def _check_type(conn: sqlite3.Connection, type_: str) -> None:
    """Fail when no entry has ``type_`` but a stored type is close to it (``alarms``)."""
    if conn.execute("SELECT 1 FROM entries WHERE type = ? LIMIT 1", (type_,)).fetchone():
        return
    known = [
        name
        for (name,) in conn.execute(
            "WITH RECURSIVE t(type) AS (SELECT min(type) FROM entries UNION ALL "
            "SELECT (SELECT min(type) FROM entries WHERE type > t.type) FROM t "
            "WHERE t.type IS NOT NULL) SELECT type FROM t WHERE type IS NOT NULL"
        )
    ]
    near = difflib.get_close_matches(type_, known, n=3, cutoff=0.75)
    if near:  # a type that is merely absent (no correction yet) is an empty answer, not an error
        raise _BadOption(
            f"--type {type_!r}: no entries of this type "
            f"(did you mean {' or '.join(repr(n) for n in near)}?)"
        )


def _check_lot(conn: sqlite3.Connection, db: Path, lot: str) -> None:
    """Fail with the nearest lot names when no entry names ``lot`` (a typo, a wrong case)."""
    if conn.execute("SELECT 1 FROM entry_lots WHERE lot = ? LIMIT 1", (lot,)).fetchone():
        return
    # every distinct lot by a skip scan over the lot index: one seek per lot
    known = [
        name
        for (name,) in conn.execute(
            "WITH RECURSIVE l(lot) AS (SELECT min(lot) FROM entry_lots UNION ALL "
            "SELECT (SELECT min(lot) FROM entry_lots WHERE lot > l.lot) FROM l "
            "WHERE l.lot IS NOT NULL) SELECT lot FROM l WHERE lot IS NOT NULL"
        )
    ]
    # compared case-insensitively: lot codes are typed from labels in either case
    folded: dict[str, list[str]] = {}
    for k in known:
        folded.setdefault(k.casefold(), []).append(k)
    near = list(folded.get(lot.casefold(), []))
    for match in difflib.get_close_matches(lot.casefold(), folded, n=3, cutoff=0.75):
        near += [k for k in folded[match] if k not in near]
    hint = f" (did you mean {' or '.join(repr(n) for n in near[:3])}?)" if near else ""
    raise click.ClickException(f"lot {lot!r}: no entries in {db}{hint}")


def _print_trace(
    trace: LotTrace, shown: _Shown, resolutions: Mapping[str, float] | None = None
) -> None:
    console = _console()
    # the lot's own time (lot.start .. lot.end), not stretched by a later correction or ack
    first, last = trace.span or (trace.events[0].entry.ts, trace.events[-1].entry.ts)
    feeds = {e.entry.feed for e in trace.events}
    console.print(
        Text.assemble(
            ("Lot " + trace.lot, "bold"),
            f": {len(trace.events)} entries from {len(feeds)} feed(s), {first} .. {last}",
        )
    )
    stations = Table(title="Stations")
    for column in ("station", "node/site", "feed", "start", "end", "checks"):
        stations.add_column(column, overflow="fold")
    for visit in trace.visits:
        passed = sum(1 for c in visit.checks if c.get("passed") is True)
        checks = f"{passed}/{len(visit.checks)} passed" if visit.checks else "-"
        stations.add_row(
            *map(
                Text,
                (
                    visit.name or "-",
                    visit.station.name,
                    _feed_label(visit.station.feed, shown),
                    visit.start.ts if visit.start else visit.start_note or "-",
                    visit.end.ts if visit.end else visit.end_note or "-",
                    checks,
                ),
            )
        )
    console.print(stations)
    aggregates = Table(title="Aggregates at lot end")
    for column in ("station", "point", "count", "mean", "min", "max", "std", "unit"):
        aggregates.add_column(column, overflow="fold")
    from edge.office.numbers import fmt_number  # numbers for people (--json keeps them whole)

    for visit in trace.visits:
        for point, agg in sorted(visit.aggregates.items()):
            res = (resolutions or {}).get(point)
            cells = [
                fmt_number(agg.get("count")),
                fmt_number(agg.get("mean"), res, stat=True),
                *(fmt_number(agg.get(k), res) for k in ("min", "max")),
                fmt_number(agg.get("std"), res, stat=True),
                str(agg.get("unit", "")),
            ]
            aggregates.add_row(*map(Text, (visit.name or visit.station.name, point, *cells)))
    if aggregates.row_count:
        console.print(aggregates)
    rules = Table(title="Rule sets in force")
    for column in ("node/site", "since", "hash", "rules", "entry"):
        rules.add_column(column, overflow="fold")
    for rule_set in trace.rule_sets:
        count = str(len(rule_set.entry.body.get("rules") or ()))
        rules.add_row(
            *map(
                Text,
                (
                    rule_set.station.name,
                    rule_set.entry.ts,
                    rule_set.hash[:16],
                    count,
                    rule_set.entry.id[:16],
                ),
            )
        )
    if rules.row_count:
        console.print(rules)
    timeline = Table(title="Timeline")
    for column in ("ts", "node/site", "type", "summary", "entry"):
        timeline.add_column(column, overflow="fold", no_wrap=column == "ts")
    from edge.office.numbers import summary_numbers

    number = summary_numbers(resolutions)
    for event in trace.events:
        summary = Text(summarize(event.entry, number))
        if event.corrected_by:
            by = ", ".join(c[:12] for c in event.corrected_by)
            summary.append(f" (corrected by {by})", style="red")
        if event.refers_to:
            summary.append(f" (on activation {event.refers_to[:12]})")
        if event.note:
            summary.append(f" ({event.note})", style="yellow")
        timeline.add_row(
            Text(event.entry.ts),
            Text(event.station.name),
            Text(event.entry.type),
            summary,
            Text(event.entry.id[:16]),
        )
    console.print(timeline)


@click.command("trace")
@click.argument("lot")
@DB_OPTION
@_all_feeds_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of tables.")
def trace_command(
    lot: str,
    db: Path,
    trust_keys: tuple[str, ...],
    config_path: Path | None,
    all_feeds: bool,
    as_json: bool,
) -> None:
    """Show LOT's timeline across trusted feeds: stations, aggregates, alarms, acks, rule sets.

    Aggregates are rounded for reading: to each point's resolution with -c (an integer
    register's scale), else to 4 significant digits; --json keeps them as recorded.
    """
    trace, shown = _load_trace(db, lot, trust_keys, config_path, all_feeds)
    if as_json:
        document = trace.to_json()
        for station in document["stations"]:
            station["feed_name"] = shown.names.get(station["feed"])
        click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
    else:
        resolutions: dict[str, float] = {}
        if config_path is not None:  # the points' resolutions round the aggregates
            from edge.config import load_config
            from edge.office.numbers import point_resolutions

            with _one_line_errors():
                resolutions = point_resolutions(load_config(config_path))
        _print_trace(trace, shown, resolutions)


QUERY_COMMANDS: list[click.Command] = [query_command, trace_command]
