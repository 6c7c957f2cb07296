"""The ``config:rules`` alarm: a rule reload was rejected and the previous set stays in force.

It follows the same ISA-18.2 lifecycle as a rule's alarm (:mod:`edge.rules.alarms`), driven by
reloads instead of readings: a rejected reload activates it, the next valid reload clears it
(returned, still to be acknowledged unless it already was), ``edge alarm ack config:rules``
acknowledges it. Pure: every method takes ``now`` and returns the new value and the transition
to record (None when nothing changes). A second rejection while it is active is no new
transition; the message names the latest problem.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from edge.rules.alarms import AlarmState, Transition, cleared_state
from edge.system_alarm import SystemAlarm

__all__ = ["CONFIG_RULE", "ConfigAlarm"]

#: the id it is listed, recorded and acknowledged under
CONFIG_RULE = "config:rules"


@dataclass(frozen=True, slots=True)
class ConfigAlarm(SystemAlarm):
    """State of the ``config:rules`` alarm (fields: :class:`~edge.system_alarm.SystemAlarm`)."""

    RULE = CONFIG_RULE
    KIND = "config"
    SEVERITY = "high"

    def rejected(self, problem: str, now: float) -> tuple[ConfigAlarm, Transition | None]:
        """A reload was rejected because of ``problem`` (its first line)."""
        message = f"rule files rejected, previous set stays in force: {problem}"
        if self.active:
            return replace(self, message=message), None
        return self._move(AlarmState.ACTIVE_UNACK, "activated", message, now)

    def accepted(self, now: float) -> tuple[ConfigAlarm, Transition | None]:
        """A reload was valid (whether or not it changed the rule set)."""
        if not self.active:
            return self, None
        message = "rule files valid again; the reloaded set is in force"
        return self._move(cleared_state(self.state), "cleared", message, now)
