"""Operator commands (acknowledge, shelve, suppress, ...) as values, parsed from JSON.

They reach a running node through its local control socket (``edge alarm ...``) or its MQTT
command topic ``<prefix>/<node id>/cmd/<broker user>``. Parsing is strict and pure: a malformed
payload gives one line naming the field, and the node keeps running.

Payload::

    {"action": "ack", "rule": "tunnel-temp-high", "actor": "j.doe", "comment": "door left open"}
    {"action": "shelve", "rule": "fill-weight-rate", "duration": "30m"}
    {"action": "correct", "entry": "7155f822", "comment": "scale was off"}
    {"action": "prune_readings", "before": "2026-11-01T00:00:00Z", "comment": "disk full"}
    {"action": "status"}
    {"action": "health"}

Who acts is not what the payload says: the transport authenticates the sender (the Unix user
behind the control socket, from SO_PEERCRED; the broker user whose topic the command came on)
and :func:`authenticate` makes that identity the command's actor (``unix:alice``,
``mqtt:bob``). A payload ``actor`` is only a claim: kept, and recorded in the comment when it
differs from the authenticated name (a shared account signed by a person). :func:`authorize`
decides from the ``[operators]`` table whether the identity may do the action at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from edge.durations import parse_duration
from edge.ledger.entry import parse_ts

__all__ = [
    "ACTIONS",
    "ACTION_CLASSES",
    "CommandError",
    "Identity",
    "OperatorCommand",
    "action_class",
    "authenticate",
    "authorize",
    "parse_command",
]

#: action -> (does it need a rule id, its class in ``[operators]``: read | act | correct)
ACTIONS: dict[str, tuple[bool, str]] = {
    "ack": (True, "act"),
    "shelve": (True, "act"),
    "unshelve": (True, "act"),
    "suppress": (True, "act"),
    "unsuppress": (True, "act"),
    "out_of_service": (True, "act"),
    "in_service": (True, "act"),
    "correct": (False, "correct"),
    "prune_readings": (False, "correct"),  # it changes what the record holds, as a correction
    "status": (False, "read"),
    "health": (False, "read"),  # edge status: the node's metrics (edge.health)
    "sync": (False, "read"),  # sign and move the commit journal: readers see every entry
}
#: the classes of action an ``[operators]`` table grants, least to most
ACTION_CLASSES = ("read", "act", "correct")
_KEYS = ("action", "rule", "actor", "comment", "duration", "entry", "before")


class CommandError(ValueError):
    """A command payload is malformed; the message is one line naming the field."""


@dataclass(frozen=True, slots=True)
class OperatorCommand:
    """One operator action on one alarm, a correction of a ledger entry, or a status request."""

    action: str
    rule: str = ""
    actor: str = ""  #: after :func:`authenticate`: the authenticated identity (``unix:alice``)
    comment: str = ""
    duration: float = 0.0  #: shelve: seconds
    entry: str = ""  #: correct: the corrected entry's id or id prefix (the reason is ``comment``)
    before: float = 0.0  #: prune_readings: epoch s; blocks that ended before it (why: ``comment``)
    claimed_actor: str = ""  #: after :func:`authenticate`: the payload's ``actor``, if any


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sent a command, as its transport authenticated them.

    ``kind`` is ``unix`` (control socket: the peer's uid, from the kernel) or ``mqtt`` (the broker
    user, which the broker's ACL binds to the command topic). ``groups`` are the Unix user's
    group names (primary and supplementary); ``uid`` is -1 for MQTT.
    """

    kind: str
    name: str
    uid: int = -1
    groups: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


def action_class(action: str) -> str:
    """``read``, ``act`` or ``correct``: which ``[operators]`` list governs ``action``."""
    return ACTIONS[action][1]


def authenticate(cmd: OperatorCommand, who: Identity) -> OperatorCommand:
    """The command with the authenticated identity as its actor; the payload's actor a claim.

    The ledger keeps the claim in the comment (``... [claimed actor: j.doe]``) when it names
    someone else than the authenticated user: a person signing on a shared account.
    """
    claimed = cmd.actor.strip()
    comment = cmd.comment
    if claimed and claimed not in (who.name, str(who)):
        note = f"[claimed actor: {claimed}]"
        comment = f"{comment} {note}" if comment else note
    return replace(cmd, actor=str(who), claimed_actor=claimed, comment=comment)


def authorize(
    who: Identity,
    action: str,
    allowed: Iterable[str],
    *,
    node_uid: int,
) -> str | None:
    """None when ``who`` may do ``action``; else the one-line reason for the refusal.

    Args:
        who: the authenticated sender.
        action: the command's action.
        allowed: the ``[operators]`` list for the action's class: ``"alice"`` a local user,
            ``"@qa"`` members of a local group, ``"*"`` every local user, ``"mqtt:bob"`` a broker
            user, ``"mqtt:*"`` every broker user.
        node_uid: the node's own uid. Root and the node's own user may always act locally:
            they can write the ledger and its key directly, so refusing them protects nothing.
    """
    klass = action_class(action)
    entries = set(allowed)
    if who.kind == "unix":
        if who.uid in (0, node_uid) or "*" in entries or who.name in entries:
            return None
        if any(f"@{g}" in entries for g in who.groups):
            return None
    elif "mqtt:*" in entries or f"mqtt:{who.name}" in entries:
        return None
    return f"{who} may not {action}: not in [operators] {klass}"


def parse_command(payload: bytes | str) -> OperatorCommand:
    """Parse and check a JSON command.

    Raises:
        CommandError: with a one-line message (``command: duration: bad duration 'soon' ...``).
    """
    try:
        data: Any = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise CommandError(f"command: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CommandError("command: expected a JSON object")
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise CommandError(f"command: {unknown[0]}: unknown key (known: {', '.join(_KEYS)})")
    for key in _KEYS:
        if key in data and not isinstance(data[key], str):
            raise CommandError(f"command: {key}: expected a string, got {type(data[key]).__name__}")
    action = data.get("action", "")
    if action not in ACTIONS:
        raise CommandError(f"command: action: {action!r} is not one of {', '.join(ACTIONS)}")
    needs_rule = ACTIONS[action][0]
    if needs_rule and not data.get("rule"):
        raise CommandError(f"command: rule: missing (required for {action})")
    if action == "correct":
        if not data.get("entry"):
            raise CommandError("command: entry: missing (the id of the entry to correct)")
        if not data.get("comment", "").strip():
            raise CommandError("command: comment: missing (why the entry is wrong is recorded)")
    before = 0.0
    if action == "prune_readings":
        if not data.get("comment", "").strip():
            raise CommandError("command: comment: missing (why readings are pruned is recorded)")
        try:
            before = parse_ts(data.get("before", ""))
        except ValueError:
            raise CommandError(
                f"command: before: {data.get('before', '')!r} is not an RFC 3339 time"
            ) from None
    duration = 0.0
    if action == "shelve":
        if "duration" not in data:
            raise CommandError("command: duration: missing (required for shelve, e.g. '30m')")
        try:
            duration = parse_duration(data["duration"])
        except ValueError as exc:
            raise CommandError(f"command: duration: {exc}") from None
    return OperatorCommand(
        action=action,
        rule=data.get("rule", ""),
        actor=data.get("actor", ""),
        comment=data.get("comment", ""),
        duration=duration,
        entry=data.get("entry", ""),
        before=before,
    )
