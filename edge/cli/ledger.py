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
from edge.cli.ledger_export import export_command
from edge.cli.ledger_query import QUERY_COMMANDS, db_for
from edge.cli.ledger_report import report_command
from edge.cli.ledger_status import status_command
from edge.cli.options import DB_OPTION
from edge.cli.output import fail
from edge.cli.trust import resolve_trust, trust_options
from edge.config import NodeConfig
from edge.errors import EdgeError

#: Where a node keeps its ledger and key unless told otherwise (``node.data_dir`` defaults to ``var``).
DEFAULT_DATA_DIR = Path("var")


@click.group()
def ledger() -> None:
    """Verify, query, trace and export the ledger."""


for _command in QUERY_COMMANDS:
    ledger.add_command(_command)
ledger.add_command(export_command)
ledger.add_command(report_command)
ledger.add_command(status_command)


@ledger.command("verify")
@DB_OPTION
@trust_options
@click.option("--json", "as_json", is_flag=True, help="Print the report (or the error) as JSON.")
@click.option(
    "--merkle/--no-merkle",
    default=True,
    show_default=True,
    help="Recompute every checkpoint's Merkle root. Without, the hash chain and the "
    "checkpoint signatures still cover every entry (faster).",
)
@click.option(
    "--witnesses", type=click.IntRange(min=0), default=0, metavar="K",
    help="Also require each feed's last checkpoint to be cosigned by K distinct trusted "
    "other nodes (sync's witnesses).",
)  # fmt: skip
def verify_command(
    db: Path,
    trust_keys: tuple[str, ...],
    config_path: Path | None,
    as_json: bool,
    merkle: bool,
    witnesses: int,
) -> None:
    """Check every feed: hashes, links, checkpoints, signatures, truncation, readings, trust.

    Trust comes from --trust and -c, else from the trust list and node key in the database's
    directory; feeds signed by other keys are reported untrusted. --witnesses K also requires
    each feed's last checkpoint to be cosigned by K trusted other nodes. Exit status 0 when every feed
    verifies, 1 when any problem is found (each one is named with its feed, seq and kind), 2
    when the database cannot be read or a trust key is malformed.
    """
    from edge.ledger.store import connect
    from edge.ledger.verify import Report, verify_db

    err = Console(stderr=True)
    try:
        db = db_for(db, config_path)  # with -c and no --db: that node's ledger
        trust = resolve_trust(db, trust_keys, config_path)
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
                    conn,
                    progress=lambda n: progress.advance(task, n),
                    merkle=merkle,
                    trusted=trust.names,
                    node_feed=trust.node_feed,
                )
            if witnesses:
                _add_witness_problems(report, conn, witnesses, trust.names)
        finally:
            conn.close()
        journal_note, journal_ok = _journal_note(db)
    except EdgeError as exc:
        fail("; ".join(getattr(exc, "problems", None) or [str(exc)]), as_json=as_json, code=2)
    except Exception as exc:  # sqlite3 errors on a damaged schema: one line, no traceback
        fail(f"{db}: cannot verify: {exc}", as_json=as_json, code=2)
    ok = report.ok and journal_ok
    if as_json:
        payload: dict[str, Any] = {
            "ok": report.ok,
            "db": str(db),
            "owner": report.owner,
            "trust": {"checked": report.trust_checked, "source": trust.source},
            "feeds": [
                {
                    "feed": f.feed,
                    "trusted_as": f.trusted_as,
                    "entries": f.entries,
                    "checkpoints": f.checkpoints,
                    "signed": f.signed,
                    "pruned_blocks": f.pruned,
                    "ok": f.ok,
                }
                for f in report.feeds
            ],
            "problems": [p.as_dict() for p in report.problems],
            "journal": journal_note,
        }
        payload["ok"] = ok
        click.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())
    else:
        _print_report(report, db, trust.source)
        if journal_note is not None:
            Console().print(journal_note, highlight=False, soft_wrap=True)
    sys.exit(0 if ok else 1)


def _add_witness_problems(report: Any, conn: Any, k: int, names: dict[str, str] | None) -> None:
    """``--witnesses K``: a problem for each feed whose last checkpoint has fewer than K."""
    from edge.ledger.verify_report import FeedReport
    from edge.ledger.verify_witnesses import check_witnesses

    by_feed = {f.feed: f for f in report.feeds}
    for problem in check_witnesses(conn, k, names):
        feed = by_feed.get(problem.feed)
        if feed is None:
            feed = by_feed[problem.feed] = FeedReport(problem.feed)
            report.feeds.append(feed)
        feed.problems.append(problem)


def _journal_note(db: Path) -> tuple[str | None, bool]:
    """What the commit journal beside ``db`` holds that the database does not (yet).

    A running node moves it into the database when asked (:func:`sync_node`, done before this)
    or within ``journal_age``; a journal left by a killed node is moved by its next start.
    Verify reads, never moves: it may not be the writer.
    Returns (a note or None, False when the journal is damaged).
    """
    from edge.ledger.journal import journal_entries, journal_path, read_journal

    path = journal_path(db)
    try:
        entries = len(journal_entries(path))
        torn = read_journal(path).torn
    except EdgeError as exc:
        return f"{exc}", False
    notes = []
    if entries:
        notes.append(
            f"{entries} entries in the commit journal {path.name}, not yet moved into the "
            "database and not verified here: a running node moves them on a sync or within "
            "120 s, and first thing when it starts"
        )
    if torn:
        notes.append(
            f"the commit journal {path.name} ends in a torn record ({torn} bytes, a crash in "
            "the middle of an append: never acknowledged; dropped when the node starts)"
        )
    return ("; ".join(notes) or None), True


#: Columns the verify table needs to show every column whole (a feed id is 64 hex digits).
_TABLE_WIDTH = 136


def _print_report(report: Any, db: Path, trust_source: str) -> None:
    out = Console()
    if out.width < _TABLE_WIDTH:
        # Piped, or a narrow terminal: rich would squeeze every column but the 64-digit feed id
        # to nothing, and "UNTRUSTED" would not be shown at all. Long lines wrap; hidden ones lie.
        out = Console(width=_TABLE_WIDTH)
    feeds = Table(title=f"ledger {db}", title_justify="left")
    for column in ("feed", "trusted as", "entries", "checkpoints", "signed", "status"):
        feeds.add_column(
            column,
            justify="right" if column in ("entries", "checkpoints", "signed") else "left",
            no_wrap=column == "feed",
        )
    for f in report.feeds:
        feeds.add_row(
            f.feed,  # in full: a feed is its key, and a key is only as good as all its digits
            (f.trusted_as or "[red]UNTRUSTED[/red]") if report.trust_checked else "-",
            str(f.entries),
            str(f.checkpoints),
            str(f.signed),
            "[green]ok[/green]" if f.ok else f"[red]{len(f.problems)} problem(s)[/red]",
        )
    out.print(feeds, soft_wrap=True)
    for f in report.feeds:
        if f.pruned:
            pruned = ", ".join(f"{n} by {why}" for why, n in sorted(f.pruned.items()))
            out.print(
                f"readings blocks pruned on record ({f.feed[:16]}): {pruned}", highlight=False
            )
    if not report.trust_checked:
        out.print(
            "trust: not checked (no --trust, -c, or trust list beside the database): "
            "a feed's key is only its own word",
            highlight=False,
            soft_wrap=True,
        )
    else:
        out.print(f"trust: {trust_source}", highlight=False, soft_wrap=True)
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


@ledger.command("prune-readings")
@click.option(
    "-c", "--config", "config_path", required=True, type=click.Path(path_type=Path),
    help="The node's config file (its ledger, key and control socket).",
)  # fmt: skip
@click.option(
    "--before", required=True, metavar="TIME",
    help="Prune blocks whose last reading is before TIME (ISO 8601, or a duration ago: 90d).",
)  # fmt: skip
@click.option("--reason", required=True, help="Why; recorded on the ledger.")
@actor_option
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def prune_readings_command(
    config_path: Path, before: str, reason: str, actor: str, as_json: bool
) -> None:
    """Prune raw readings before a time, on an operator's request; the digests stay.

    The prune is recorded first (a readings.prune entry naming the blocks, who and why), then
    done: through the running node when there is one, else directly in the node's ledger.
    Exit status 1 when the time is malformed or in the future, or the node refuses.
    """
    import time
    from datetime import UTC, datetime

    from edge.errors import ConfigError
    from edge.ledger.entry import parse_ts
    from edge.ledger.query import parse_time

    if not reason.strip():
        fail("--reason: empty (why readings are pruned is recorded)", as_json=as_json)
    try:
        cutoff = parse_time(before, datetime.now(UTC), "--before")
    except ConfigError as exc:
        fail(exc.problems[0], as_json=as_json)
    if parse_ts(cutoff) > time.time():
        fail(f"--before: {cutoff} is in the future", as_json=as_json)
    command = {"action": "prune_readings", "before": cutoff, "actor": actor, "comment": reason}
    result = send_to_node(
        config_path,
        command,
        offline=lambda cfg: _prune_offline(cfg, parse_ts(cutoff), reason, actor),
        as_json=as_json,
    )
    if as_json:
        click.echo(orjson.dumps(result).decode())
        return
    how = result.get("offline") or "through the running node"
    click.echo(f"pruned {result['readings']} readings before {cutoff}, recorded {how}")


def _prune_offline(cfg: NodeConfig, before: float, reason: str, actor: str) -> dict[str, Any]:
    """Record and do an operator's prune with the node's key while the node is stopped."""
    import os

    from edge.commands import OperatorCommand, authenticate
    from edge.control import unix_identity
    from edge.ledger.keys import load_key
    from edge.ledger.store import Ledger

    # no node to ask: the actor is who runs this process (they can open the key and the ledger)
    cmd = authenticate(
        OperatorCommand("prune_readings", actor=actor, comment=reason),
        unix_identity(os.geteuid(), os.getegid()),
    )
    with Ledger.open(cfg.ledger_path, load_key(cfg.key_path)) as store:
        deleted = store.prune_readings(before, actor=cmd.actor, comment=cmd.comment)
    return {"readings": deleted, "offline": f"directly into {cfg.ledger_path} (no node running)"}


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
    import os
    import time

    from edge.commands import OperatorCommand, authenticate
    from edge.control import unix_identity
    from edge.ledger.correction import plan_correction
    from edge.ledger.keys import load_key
    from edge.ledger.store import Ledger

    # no node to ask: the actor is who runs this process (they can open the key and the ledger)
    cmd = authenticate(
        OperatorCommand("correct", actor=actor, comment=reason, entry=ref),
        unix_identity(os.geteuid(), os.getegid()),
    )
    with Ledger.open(cfg.ledger_path, load_key(cfg.key_path)) as store:
        plan = plan_correction(store.conn, ref, cmd.comment)
        entry = store.append(
            "correction", plan.body, ts=time.time(), lots=plan.lots, actor=cmd.actor,
            refs=plan.refs,
        )  # fmt: skip
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
