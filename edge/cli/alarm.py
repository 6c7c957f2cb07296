"""``edge alarm ...``: operator actions on a running node, through its control socket."""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from edge.config import NodeConfig, load_config
from edge.control import send_command
from edge.errors import EdgeError, NodeNotRunning

_config_option = click.option(
    "-c", "--config", "config_path", required=True, type=click.Path(path_type=Path),
    help="The running node's config file (locates its control socket).",
)  # fmt: skip
actor_option = click.option(
    "--actor", default=getpass.getuser, show_default="your login name",
    help="Who does it; recorded on the ledger.",
)  # fmt: skip


def send_to_node(
    config_path: Path,
    command: dict[str, Any],
    offline: Callable[[NodeConfig], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Send ``command`` to the node running with this config; exit 1 with one line on failure.

    Args:
        config_path: the node's config file (locates its control socket).
        command: the command as JSON-ready data (see :mod:`edge.commands`).
        offline: what to do instead when no node runs (its result is returned as is, with
            ``ok`` added); None: that is a failure too.
    """
    try:
        cfg = load_config(config_path)
        try:
            result = asyncio.run(send_command(cfg.control_socket, command))
        except NodeNotRunning:
            if offline is None:
                raise
            result = {"ok": True, **offline(cfg)}
    except EdgeError as exc:
        click.echo(f"edge: {exc}", err=True)
        sys.exit(1)
    if not result.get("ok"):
        click.echo(f"edge: {result.get('error', 'refused')}", err=True)
        sys.exit(1)
    return result


@click.group()
def alarm() -> None:
    """Acknowledge, shelve, suppress alarms of a running node; list their states."""


@alarm.command("list")
@_config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of a table.")
def list_(config_path: Path, as_json: bool) -> None:
    """Show every alarm's ISA-18.2 state, flood and chatter counts."""
    result = send_to_node(config_path, {"action": "status"})
    if as_json:
        import orjson

        click.echo(orjson.dumps(result["alarms"], option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(
        "rule", "state", "last 10 min", "total", "flood", "chattering", "shelved until", "flags"
    )
    for rule, s in sorted(result["alarms"].items()):
        flags = ", ".join(f for f in ("suppressed", "out_of_service") if s[f])
        until = "" if s["shelved_until"] is None else str(s["shelved_until"])
        table.add_row(rule, s["state"], str(s["activations_10min"]), str(s["total"]),
                      "yes" if s["flood"] else "", "yes" if s["chattering"] else "", until, flags)  # fmt: skip
    Console().print(table)


def _action(name: str, action: str, doc: str, *, duration: bool = False) -> click.Command:
    @click.command(name, help=doc)
    @click.argument("rule")
    @_config_option
    @actor_option
    @click.option("--comment", default="", help="Why; recorded on the ledger.")
    def command(rule: str, config_path: Path, actor: str, comment: str, **kw: Any) -> None:
        payload: dict[str, Any] = {
            "action": action,
            "rule": rule,
            "actor": actor,
            "comment": comment,
        }
        if duration:
            payload["duration"] = kw["for_"]
        result = send_to_node(config_path, payload)
        events = result.get("events") or ["nothing to do"]
        click.echo(f"{rule}: {', '.join(events)}")

    if duration:
        command = click.option(
            "--for", "for_", required=True, help="How long, e.g. 30m (capped by the node)."
        )(command)
    return command


for _name, _act, _doc, _dur in (
    ("ack", "ack", "Acknowledge an alarm (active -> acknowledged, returned -> normal).", False),
    ("shelve", "shelve", "Shelve an alarm for a time; it unshelves by itself.", True),
    ("unshelve", "unshelve", "Unshelve an alarm now.", False),
    ("suppress", "suppress", "Suppress by design (e.g. line stopped): a rule id or a tag.", False),
    ("unsuppress", "unsuppress", "End a suppression.", False),
    (
        "out-of-service",
        "out_of_service",
        "Take an alarm out of service (still evaluated and logged).",
        False,
    ),
    ("in-service", "in_service", "Return an alarm to service.", False),
):
    alarm.add_command(_action(_name, _act, _doc, duration=_dur))

COMMANDS: list[click.Command] = [alarm]
