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

from edge.rules.alarms import AlarmState, Transition, acknowledged_state, cleared_state

__all__ = ["CONFIG_RULE", "ConfigAlarm"]

#: the id it is listed, recorded and acknowledged under
CONFIG_RULE = "config:rules"

_ACTIVE = (AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK)


@dataclass(frozen=True, slots=True)
class ConfigAlarm:
    """State of the ``config:rules`` alarm.

    Attributes:
        state: its ISA-18.2 state.
        since: when it entered that state (None: never left normal).
        message: what the last transition said.
    """

    state: AlarmState = AlarmState.NORMAL
    since: float | None = None
    message: str = ""

    def rejected(self, problem: str, now: float) -> tuple[ConfigAlarm, Transition | None]:
        """A reload was rejected because of ``problem`` (its first line)."""
        message = f"rule files rejected, previous set stays in force: {problem}"
        if self.state in _ACTIVE:
            return replace(self, message=message), None
        return self._move(AlarmState.ACTIVE_UNACK, "activated", message, now)

    def accepted(self, now: float) -> tuple[ConfigAlarm, Transition | None]:
        """A reload was valid (whether or not it changed the rule set)."""
        if self.state not in _ACTIVE:
            return self, None
        message = "rule files valid again; the reloaded set is in force"
        return self._move(cleared_state(self.state), "cleared", message, now)

    def acknowledge(self, actor: str, now: float) -> tuple[ConfigAlarm, Transition | None]:
        """An operator acknowledged it; None when there was nothing to acknowledge."""
        to = acknowledged_state(self.state)
        if to is None:
            return self, None
        return self._move(to, "acknowledged", self.message, now, actor)

    def _move(
        self, to: AlarmState, event: str, message: str, now: float, actor: str = ""
    ) -> tuple[ConfigAlarm, Transition]:
        transition = Transition(
            rule=CONFIG_RULE, kind="config", point="", severity="high",
            from_state=self.state, to_state=to, event=event, value=None, limit=None,
            lot=None, ts=now, message=message, actor=actor,
        )  # fmt: skip
        return ConfigAlarm(to, now, message), transition
