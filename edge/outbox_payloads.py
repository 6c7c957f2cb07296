"""The MQTT messages of ledger entries: stream, topic and standalone payload (pure, no I/O).

Every message the outbox publishes is derived from one ledger entry and nothing else (plus the
node's id, which names the topic tree), so a message replayed from the ledger after an outage or
a restart is byte-for-byte the message a live subscriber got. Payloads are versioned JSON
(``"v": 1``) and carry the entry's ``id``, ``feed`` and ``seq``: subscribers de-duplicate by
``id`` (delivery is at least once) and can fetch or verify the entry by it.

Streams (each delivered in ledger order, with its own cursor):

- ``alarms``: ``alarm``, ``alarm.ack``, ``alarm.shelve``, ``alarm.unshelve`` entries, on
  ``alarms/<rule>``; the latest of each rule also goes, retained, to ``alarm_states/<rule>``.
- ``lots``: ``lot.start`` and ``lot.end``, on ``lots/lot_start`` and ``lots/lot_end``.
- ``actions``: ``correction`` and ``readings.prune`` (what operators, or the retention, did to
  the record), on ``actions/<entry type>``.

docs/reference/mqtt.md documents every topic with an example payload.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edge.ledger.entry import Entry

__all__ = [
    "PAYLOAD_VERSION",
    "STREAMS",
    "STREAM_OF",
    "alarm_state_payload",
    "message_of",
    "status_payload",
]

#: The payload format's version: a field is only ever added within a version.
PAYLOAD_VERSION = 1

#: Entry types per stream, in the order the streams are served.
STREAMS: dict[str, tuple[str, ...]] = {
    "alarms": ("alarm", "alarm.ack", "alarm.shelve", "alarm.unshelve"),
    "lots": ("lot.start", "lot.end"),
    "actions": ("correction", "readings.prune"),
}
#: entry type -> stream
STREAM_OF: dict[str, str] = {t: name for name, types in STREAMS.items() for t in types}

#: what an old alarm entry's value is when it predates the ``statistic`` field, per rule kind
_STATISTIC = {"rate": "rate", "stale": "age", "quality": "quality"}


def _head(entry: Entry, node: str) -> dict[str, Any]:
    return {
        "v": PAYLOAD_VERSION,
        "node": node,
        "type": entry.type,
        "id": entry.id,
        "feed": entry.feed,
        "seq": entry.seq,
        "ts": entry.ts,
    }


def _alarm(entry: Entry, node: str) -> dict[str, Any]:
    b = entry.body
    kind = b.get("kind", "")
    out = _head(entry, node)
    out.update(
        rule=b.get("rule"),
        kind=kind,
        statistic=b.get("statistic") or _STATISTIC.get(kind, "value"),
        point=b.get("point"),
        event=b.get("event"),
        # "from"/"to" as in the entry body: the ISA-18.2 states
        **{"from": b.get("from"), "to": b.get("to")},
        value=b.get("value"),
        limit=b.get("limit"),
        unit=b.get("unit", ""),
        severity=b.get("severity"),
        lot=entry.lots[0] if entry.lots else None,
        message=b.get("message", ""),
        actor=entry.actor or None,
    )
    if "comment" in b:
        out["comment"] = b["comment"]
    return out


def _lot(entry: Entry, node: str) -> dict[str, Any]:
    b = entry.body
    out = _head(entry, node)
    out.update(lot=b.get("lot"), station=b.get("station"))
    if entry.type == "lot.end":
        checks = list(b.get("checks", []))
        out["passed"] = all(bool(c.get("passed")) for c in checks)
        out["failed"] = [c.get("rule") for c in checks if not c.get("passed")]
        out["checks"] = checks
        out["aggregates"] = b.get("aggregates", {})
    return out


def _action(entry: Entry, node: str) -> dict[str, Any]:
    out = _head(entry, node)
    out["actor"] = entry.actor or None
    out["refs"] = list(entry.refs)
    out["lots"] = list(entry.lots)
    out["body"] = dict(entry.body)
    return out


def message_of(entry: Entry, prefix: str) -> tuple[str, dict[str, Any]]:
    """The topic (under ``prefix``, i.e. ``<topic_prefix>/<node>``) and payload of ``entry``.

    Raises:
        KeyError: the entry's type belongs to no stream.
    """
    node = prefix.rpartition("/")[2]
    stream = STREAM_OF[entry.type]
    if stream == "alarms":
        return f"{prefix}/alarms/{entry.body.get('rule')}", _alarm(entry, node)
    if stream == "lots":
        return f"{prefix}/lots/{entry.type.replace('.', '_')}", _lot(entry, node)
    return f"{prefix}/actions/{entry.type}", _action(entry, node)


def alarm_state_payload(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """The retained ``alarm_states/<rule>`` message of an alarm payload; None: delete (normal).

    An alarm back to ``normal`` has nothing to show: its retained message is deleted (an empty
    retained payload), so a late subscriber to ``alarm_states/#`` gets exactly the alarms that
    are not normal.
    """
    if payload.get("to") == "normal":
        return None
    return dict(payload)


def status_payload(node: str, state: str, **extra: Any) -> dict[str, Any]:
    """The retained ``status`` message: ``online`` or ``offline`` (the last will's payload)."""
    return {"v": PAYLOAD_VERSION, "node": node, "state": state, **extra}
