"""The four ISA-18.2 alarm states in plain words, for people at a terminal (alarm list, demo)."""

from __future__ import annotations

__all__ = ["STATE_LABEL", "STATE_MEANING"]

#: short label for a table column
STATE_LABEL: dict[str, str] = {
    "active_unack": "ACTIVE unacked",
    "active_ack": "active acked",
    "rtn_unack": "returned unacked",
    "normal": "normal",
}

#: what the state means and what to do about it
STATE_MEANING: dict[str, str] = {
    "active_unack": "the condition is present and nobody has acknowledged it yet "
    "(edge alarm ack RULE)",
    "active_ack": "someone acknowledged it; the condition is still present",
    "rtn_unack": "the condition has gone, but nobody acknowledged the alarm yet: it stays "
    "listed until someone does (edge alarm ack RULE)",
    "normal": "no condition, nothing to acknowledge",
}
