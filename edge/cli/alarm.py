"""``edge alarm ...``: operator actions on a running node, through its control socket."""

from __future__ import annotations

import getpass
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edge.cli.output import dump_json, fail, local_time, timezone_name

if TYPE_CHECKING:
    from edge.config import NodeConfig

# asyncio, the control client, the config loader and rich are imported where they are used:
# `edge alarm --help` stays fast (edge/cli/__init__.py).

_config_option = click.option(
    "-c", "--config", "config_path", required=True, type=click.Path(path_type=Path),
    help="The running node's config file (locates its control socket).",
)  # fmt: skip
actor_option = click.option(
    "--actor", default=getpass.getuser, show_default="your login name",
    help="Your name, when it is not your login; the node records your login (unix:USER) as the "
    "actor and this name beside it as a claim.",
)  # fmt: skip
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the result as JSON (errors too)."
)


def send_to_node(
    config_path: Path,
    command: dict[str, Any],
    offline: Callable[[NodeConfig], dict[str, Any]] | None = None,
    *,
    as_json: bool = False,
) -> dict[str, Any]:
    """Send ``command`` to the node running with this config; exit 1 with one line on failure.

    Args:
        config_path: the node's config file (locates its control socket).
        command: the command as JSON-ready data (see :mod:`edge.commands`).
        offline: what to do instead when no node runs (its result is returned as is, with
            ``ok`` added); None: that is a failure too.
        as_json: a failure is printed as a JSON object (``--json``), not as a text line.
    """
    import asyncio

    from edge.config import load_config
    from edge.control import send_command
    from edge.errors import EdgeError, NodeNotRunning

    try:
        cfg = load_config(config_path)
        try:
            result = asyncio.run(send_command(cfg.control_socket, command))
        except NodeNotRunning:
            if offline is None:
                raise
            result = {"ok": True, **offline(cfg)}
    except EdgeError as exc:
        fail(str(exc), as_json=as_json)
    if not result.get("ok"):
        fail(str(result.get("error", "refused")), as_json=as_json)
    return result


@click.group()
def alarm() -> None:
    """Acknowledge, shelve, suppress alarms of a running node; list their states."""


_STATE_ORDER = {"active_unack": 0, "rtn_unack": 1, "active_ack": 2, "normal": 3}


@alarm.command("list")
@_config_option
@click.option("--json", "as_json", is_flag=True, help="The raw figures as one JSON object.")
def list_(config_path: Path, as_json: bool) -> None:
    """Show every alarm: state, since when, value and message (times local), flags.

    The table fits 80 columns; long rule ids wrap rather than being cut. States needing
    attention come first and are explained under the table. --json gives the raw values
    (epoch seconds, unrounded values) keyed by rule id.
    """
    result = send_to_node(config_path, {"action": "status"}, as_json=as_json)
    alarms: dict[str, dict[str, Any]] = result["alarms"]
    _since_from_ledger(config_path, result.get("node", ""), alarms)
    if as_json:
        click.echo(dump_json(alarms, indent=True))
        return
    import shutil

    width = shutil.get_terminal_size((80, 24)).columns if sys.stdout.isatty() else 80
    for line in render_alarm_list(alarms, time.time(), width, node=result.get("node", "")):
        click.echo(line)


def render_alarm_list(
    alarms: dict[str, dict[str, Any]], now: float, width: int = 80, *, node: str = ""
) -> list[str]:
    """The alarm list for people, no line wider than ``width`` (at least 40).

    One line per alarm (rule, state, since, value), its message and notes indented on the next
    lines. A rule id is never cut: one too long for its column gets a line of its own.
    """
    import textwrap

    from edge.alarm_words import STATE_LABEL, STATE_MEANING

    width = max(width, 40)
    rows = sorted(alarms.items(), key=lambda kv: (_STATE_ORDER.get(kv[1]["state"], 9), kv[0]))
    states = [STATE_LABEL.get(a["state"], a["state"]) for _, a in rows]
    sinces = [local_time(a.get("since"), now) for _, a in rows]
    values = [_value(a) for _, a in rows]
    w_state = max(map(len, ["state", *states]))
    w_since = max(map(len, ["since", *sinces]))
    w_value = max(map(len, ["value", *values]))
    room = width - (w_state + w_since + w_value + 6)
    # too narrow for columns (a long unit, a small terminal): each alarm as a stack of lines
    stacked = room < 4
    w_rule = max(min(max(map(len, ["rule", *(r for r, _ in rows)])), room), 4)
    where = f" on {node}" if node else ""
    out = textwrap.wrap(
        f"{len(alarms)} alarms{where}; times are local ({timezone_name(now)})", width
    )
    out.append("")
    if not stacked:
        out.append(
            f"{'rule':<{w_rule}}  {'state':<{w_state}}  {'since':<{w_since}}  {'value':>{w_value}}"
        )
    for (rule, a), state, since, value in zip(rows, states, sinces, values, strict=True):
        tail = f"{state:<{w_state}}  {since:<{w_since}}  {value:>{w_value}}"
        if stacked:
            out.extend(rule[i : i + width] for i in range(0, len(rule), width))
            facts = f"{state}; since {since}; value {value}"
            out.extend(textwrap.wrap(facts, width, initial_indent="    ", subsequent_indent="    "))
        elif len(rule) > w_rule:  # never cut a rule id: it gets its own line(s)
            out.extend(rule[i : i + width] for i in range(0, len(rule), width))
            out.append(f"{'':<{w_rule}}  {tail}".rstrip())
        else:
            out.append(f"{rule:<{w_rule}}  {tail}".rstrip())
        text = "; ".join(x for x in (a.get("message") or "", _notes(a, now)) if x)
        if text:
            out.extend(textwrap.wrap(text, width, initial_indent="    ", subsequent_indent="    "))
    shown = [
        s for s in _STATE_ORDER if s != "normal" and any(a["state"] == s for a in alarms.values())
    ]
    if shown:
        out.append("")
    for state in shown:
        out.extend(
            textwrap.wrap(
                f"{STATE_LABEL[state]}: {STATE_MEANING[state]}", width, subsequent_indent="  "
            )
        )
    return out


def _since_from_ledger(config_path: Path, node: str, alarms: dict[str, dict[str, Any]]) -> None:
    """Fill in since/value/message of alarms that changed state before the node's last start.

    The node knows what happened during its run; an alarm still active from an earlier run
    has its last state change on the ledger: the newest ``alarm``/``alarm.ack`` entry of this
    node's feed for that rule whose state changed. Best effort (read-only; a ledger that cannot
    be read leaves the fields empty).
    """
    import sqlite3

    from edge.config import load_config
    from edge.errors import EdgeError
    from edge.ledger.query import open_ledger_db

    wanted = {r for r, a in alarms.items() if a["state"] != "normal" and a.get("since") is None}
    if not wanted or not node:
        return
    try:
        conn = open_ledger_db(load_config(config_path).ledger_path)
    except EdgeError:
        return
    try:
        row = conn.execute(
            "SELECT feed FROM entries WHERE type = 'node.start' AND "
            "json_extract(CAST(raw AS TEXT), '$.body.node_id') = ? ORDER BY ts DESC LIMIT 1",
            (node,),
        ).fetchone()
        if row is None:
            return
        # through the type index (+feed keeps the planner off the feed's primary key, which
        # would walk every readings digest of a long-running feed to find a few alarms)
        rows = conn.execute(
            "SELECT raw, ts FROM entries WHERE +feed = ? AND type IN ('alarm', 'alarm.ack') "
            "ORDER BY seq DESC",
            (row[0],),
        )
        for raw, ts in rows:
            body = json.loads(raw).get("body") or {}
            rule = body.get("rule")
            if rule not in wanted or body.get("from") == body.get("to"):
                continue
            wanted.discard(rule)
            a = alarms[rule]
            a["since"] = _epoch(ts)
            a["value"] = None if body.get("value") is None else float(body["value"])
            a["limit"] = None if body.get("limit") is None else float(body["limit"])
            a["unit"], a["message"] = body.get("unit", ""), body.get("message", "")
            if not wanted:
                break
    except (sqlite3.Error, ValueError, TypeError):
        return  # best effort: the list itself came from the node
    finally:
        conn.close()


def _epoch(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _value(a: dict[str, Any]) -> str:
    value = a.get("value")
    if value is None:
        return "-"
    text = f"{value:.5g}" if isinstance(value, float) else str(value)
    return f"{text} {a['unit']}" if a.get("unit") else text


def _notes(a: dict[str, Any], now: float) -> str:
    notes = []
    if a.get("shelved_until") is not None:
        notes.append(f"shelved until {local_time(a['shelved_until'], now)}")
    if a.get("suppressed"):
        notes.append("suppressed")
    if a.get("out_of_service"):
        notes.append("out of service")
    if a.get("activations_10min"):
        notes.append(f"{a['activations_10min']}x in 10 min")
    if a.get("flood"):
        notes.append("FLOOD")
    if a.get("chattering"):
        notes.append("chattering")
    return "; ".join(notes)


def _action(name: str, action: str, doc: str, *, duration: bool = False) -> click.Command:
    @click.command(name, help=doc)
    @click.argument("rule")
    @_config_option
    @actor_option
    @click.option("--comment", default="", help="Why; recorded on the ledger.")
    @json_option
    def command(rule: str, config_path: Path, actor: str, comment: str, **kw: Any) -> None:
        payload: dict[str, Any] = {
            "action": action,
            "rule": rule,
            "actor": actor,
            "comment": comment,
        }
        if duration:
            payload["duration"] = kw["for_"]
        result = send_to_node(config_path, payload, as_json=kw.get("as_json", False))
        if kw.get("as_json"):
            click.echo(dump_json({"ok": True, "rule": rule, "events": result.get("events", [])}))
            return
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
