"""``edge ledger ...`` and ``edge keys ...``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from edge.cli.alarm import actor_option, send_to_node
from edge.cli.ledger_query import DB_OPTION, QUERY_COMMANDS
from edge.cli.output import fail
from edge.config import NodeConfig
from edge.errors import EdgeError

#: Where a node keeps its ledger and key unless told otherwise (``node.data_dir`` defaults to ``var``).
DEFAULT_DATA_DIR = Path("var")


@click.group()
def ledger() -> None:
    """Verify, query, trace and export the ledger."""


for _command in QUERY_COMMANDS:
    ledger.add_command(_command)


@ledger.command("verify")
@DB_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the report (or the error) as JSON.")
@click.option(
    "--merkle/--no-merkle",
    default=True,
    show_default=True,
    help="Recompute every checkpoint's Merkle root. Without, the hash chain and the "
    "checkpoint signatures still cover every entry (faster).",
)
def verify_command(db: Path, as_json: bool, merkle: bool) -> None:
    """Check every feed: hashes, links, checkpoints, signatures, truncation.

    Exit status 0 when every feed verifies, 1 when any problem is found (each one is named
    with its feed, seq and kind), 2 when the database cannot be read.
    """
    from edge.ledger.store import connect
    from edge.ledger.verify import Report, verify_db

    err = Console(stderr=True)
    try:
        conn = connect(db, readonly=True)
        try:
            total = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
            show = not as_json and err.is_terminal and total > 50_000
            with Progress(
                TextColumn("verifying"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
                disable=not show,
            ) as progress:
                task = progress.add_task("verify", total=total)
                report: Report = verify_db(
                    conn, progress=lambda n: progress.advance(task, n), merkle=merkle
                )
        finally:
            conn.close()
    except EdgeError as exc:
        fail(str(exc), as_json=as_json, code=2)
    except Exception as exc:  # sqlite3 errors on a damaged schema: one line, no traceback
        fail(f"{db}: cannot verify: {exc}", as_json=as_json, code=2)
    if as_json:
        payload: dict[str, Any] = {
            "ok": report.ok,
            "db": str(db),
            "feeds": [
                {
                    "feed": f.feed,
                    "entries": f.entries,
                    "checkpoints": f.checkpoints,
                    "signed": f.signed,
                    "ok": f.ok,
                }
                for f in report.feeds
            ],
            "problems": [p.as_dict() for p in report.problems],
        }
        click.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
    else:
        _print_report(report, db)
    sys.exit(0 if report.ok else 1)


def _print_report(report: Any, db: Path) -> None:
    out = Console()
    feeds = Table(title=f"ledger {db}", title_justify="left")
    for column in ("feed", "entries", "checkpoints", "signed", "status"):
        feeds.add_column(
            column, justify="right" if column in ("entries", "checkpoints", "signed") else "left"
        )
    for f in report.feeds:
        feeds.add_row(
            f.feed[:16],
            str(f.entries),
            str(f.checkpoints),
            str(f.signed),
            "[green]ok[/green]" if f.ok else f"[red]{len(f.problems)} problem(s)[/red]",
        )
    out.print(feeds)
    if report.ok:
        out.print(
            f"[green]ok[/green]: {len(report.feeds)} feed(s), {report.entries} entries verified"
        )
        return
    # One line per problem, never wrapped: people read it, grep and mail it.
    for p in report.problems:
        out.print(
            f"[red]{p.kind}[/red]: feed {p.feed[:16]} seq {p.seq}: {p.detail}",
            highlight=False,
            soft_wrap=True,
        )
    out.print(f"[red]FAILED[/red]: {len(report.problems)} problem(s)", highlight=False)


@ledger.command("correct")
@click.argument("entry")
@click.option(
    "-c", "--config", "config_path", required=True, type=click.Path(path_type=Path),
    help="The node's config file (its ledger, key and control socket).",
)  # fmt: skip
@click.option("--reason", required=True, help="Why the entry is wrong; recorded on the ledger.")
@actor_option
@click.option("--json", "as_json", is_flag=True, help="Print what was recorded as JSON.")
def correct_command(entry: str, config_path: Path, reason: str, actor: str, as_json: bool) -> None:
    """Record a correction of ENTRY (its id, or its first 8+ hex digits); nothing is edited.

    Through the running node when there is one (it holds the ledger), else directly into the
    node's ledger. Exit status 1 when the entry is unknown or cannot be corrected.
    """
    command = {"action": "correct", "entry": entry, "actor": actor, "comment": reason}
    result = send_to_node(
        config_path,
        command,
        offline=lambda cfg: _correct_offline(cfg, entry, reason, actor),
        as_json=as_json,
    )
    if as_json:
        click.echo(orjson.dumps(result).decode())
        return
    how = result.get("offline") or "through the running node"
    click.echo(
        f"correction {result['entry'][:16]} (seq {result['seq']}) of {result['type']} entry "
        f"{result['corrects'][:16]} recorded {how}"
        + ("" if result.get("durable", True) else "; not yet committed (disk slow)")
    )


def _correct_offline(cfg: NodeConfig, ref: str, reason: str, actor: str) -> dict[str, Any]:
    """Append and commit a correction with the node's key while the node is stopped."""
    import time

    from edge.ledger.correction import plan_correction
    from edge.ledger.keys import load_key
    from edge.ledger.store import Ledger

    with Ledger.open(cfg.ledger_path, load_key(cfg.key_path)) as store:
        plan = plan_correction(store.conn, ref, reason)
        entry = store.append(
            "correction", plan.body, ts=time.time(), lots=plan.lots, actor=actor, refs=plan.refs
        )
        store.commit()
    return {"entry": entry.id, "seq": entry.seq, "corrects": plan.target.id,
            "type": plan.target.type, "durable": True,
            "offline": f"directly into {cfg.ledger_path} (no node running)"}  # fmt: skip


@click.group()
def keys() -> None:
    """Manage the node's signing key."""


@keys.command("init")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="The node's data directory (node.data_dir).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the key's files and feed as JSON.")
def keys_init(data_dir: Path, as_json: bool) -> None:
    """Create the node's Ed25519 key pair (private key mode 0600; never overwrites)."""
    from edge.ledger.keys import KEY_FILE, create_key_file

    path = data_dir / KEY_FILE
    try:
        key = create_key_file(path)
    except EdgeError as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        click.echo(orjson.dumps({"ok": True, "key": str(path), "public_key": f"{path}.pub",
                                 "feed": key.feed}).decode())  # fmt: skip
        return
    click.echo(f"created {path} (mode 0600) and {path}.pub")
    click.echo(f"feed {key.feed}")


COMMANDS: list[click.Command] = [ledger, keys]
