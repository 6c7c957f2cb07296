"""``edge ledger status``: per feed, how far we hold it, what peers announced, witnesses, forks."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from edge.cli.ledger_query import db_for
from edge.cli.options import DB_OPTION
from edge.cli.output import fail
from edge.cli.trust import resolve_trust, trust_options
from edge.errors import EdgeError

__all__ = ["status_command"]


@click.command("status")
@DB_OPTION
@trust_options
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status_command(
    db: Path, trust_keys: tuple[str, ...], config_path: Path | None, as_json: bool
) -> None:
    """Per feed: our head, the heads peers announced, lag, cosigners, forked or not.

    Read-only: works on a running node's database. Exit status 1 when a feed is forked, 2 when
    the database cannot be read.
    """
    from rich.console import Console
    from rich.table import Table

    from edge.ledger.database import connect
    from edge.ledger.owner import read_owner
    from edge.ledger.replica_status import feed_status

    try:
        db = db_for(db, config_path)
        trust = resolve_trust(db, trust_keys, config_path)
        conn = connect(db, readonly=True)
        try:
            own = trust.node_feed or read_owner(conn)
            rows = feed_status(conn, trust.names or {}, own=own)
        finally:
            conn.close()
    except EdgeError as exc:
        fail("; ".join(getattr(exc, "problems", None) or [str(exc)]), as_json=as_json, code=2)
    except Exception as exc:  # sqlite3 errors on a damaged file: one line, no traceback
        fail(f"{db}: cannot read: {exc}", as_json=as_json, code=2)
    forked = any(r.forked_at is not None for r in rows)
    if as_json:
        payload = {
            "ok": not forked,
            "db": str(db),
            "own": own,
            "feeds": [r.as_dict() for r in rows],
        }
        click.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
        sys.exit(1 if forked else 0)
    out = Console(width=max(Console().width, 120))
    table = Table(title=f"ledger {db}", title_justify="left")
    for column in ("feed", "name", "entries", "peers announced", "lag", "cosigners", "forked"):
        table.add_column(column, justify="right" if column in ("entries", "lag") else "left")
    for r in rows:
        peers = ", ".join(f"{p.peer[:16]} {p.end}" for p in r.peers) or "-"
        name = (r.name or "[red]UNTRUSTED[/red]") if trust.names is not None else "-"
        if r.feed == own:
            name += " (this node)"
        table.add_row(
            r.feed[:16],
            name,
            str(r.end),
            peers,
            str(r.lag),
            ", ".join(c[:16] for c in r.cosigners) or "-",
            "-" if r.forked_at is None else f"[red]FORKED at seq {r.forked_at}[/red]",
        )
    out.print(table, soft_wrap=True)
    if not rows:
        out.print("no feeds", highlight=False)
    sys.exit(1 if forked else 0)
