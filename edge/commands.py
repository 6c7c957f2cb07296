"""Operator commands (acknowledge, shelve, suppress, ...) as values, parsed from JSON.

They reach a running node through its local control socket (``edge alarm ...``) or its MQTT
command topic ``<prefix>/<node id>/cmd``. Parsing is strict and pure: a malformed payload gives
one line naming the field, and the node keeps running.

Payload::

    {"action": "ack", "rule": "tunnel-temp-high", "actor": "j.doe", "comment": "door left open"}
    {"action": "shelve", "rule": "fill-weight-rate", "actor": "j.doe", "duration": "30m"}
    {"action": "correct", "entry": "7155f822", "actor": "qa.jane", "comment": "scale was off"}
    {"action": "prune_readings", "before": "2026-11-01T00:00:00Z", "actor": "qa.jane",
     "comment": "disk full"}
    {"action": "status"}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from edge.durations import parse_duration
from edge.ledger.entry import parse_ts

__all__ = ["ACTIONS", "CommandError", "OperatorCommand", "parse_command"]

#: action -> does it need a rule id, does it need an actor
ACTIONS: dict[str, tuple[bool, bool]] = {
    "ack": (True, True),
    "shelve": (True, True),
    "unshelve": (True, True),
    "suppress": (True, False),
    "unsuppress": (True, False),
    "out_of_service": (True, True),
    "in_service": (True, True),
    "correct": (False, True),
    "prune_readings": (False, True),
    "status": (False, False),
}
_KEYS = ("action", "rule", "actor", "comment", "duration", "entry", "before")


class CommandError(ValueError):
    """A command payload is malformed; the message is one line naming the field."""


@dataclass(frozen=True, slots=True)
class OperatorCommand:
    """One operator action on one alarm, a correction of a ledger entry, or a status request."""

    action: str
    rule: str = ""
    actor: str = ""
    comment: str = ""
    duration: float = 0.0  #: shelve: seconds
    entry: str = ""  #: correct: the corrected entry's id or id prefix (the reason is ``comment``)
    before: float = 0.0  #: prune_readings: epoch s; blocks that ended before it (why: ``comment``)


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
    needs_rule, needs_actor = ACTIONS[action]
    if needs_rule and not data.get("rule"):
        raise CommandError(f"command: rule: missing (required for {action})")
    if needs_actor and not data.get("actor"):
        raise CommandError("command: actor: missing (who does it is recorded on the ledger)")
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
