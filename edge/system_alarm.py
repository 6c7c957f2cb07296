"""The shape every system alarm shares: ISA-18.2 state, since, message, acknowledge.

A system alarm (``config:rules``, ``storage:readings``) is raised by the node itself rather than
by a rule over readings, yet goes through the same lifecycle (:mod:`edge.rules.alarms`), ledger
entries and MQTT alerts as a rule's alarm. What differs between them is only what raises and
clears them (the subclass's own methods) and the id, kind and severity their transitions carry
(class constants). Pure: every method takes ``now`` and returns the new value and the transition
to record (None when nothing changes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from edge.rules.alarms import AlarmState, Transition, acknowledged_state

__all__ = ["SystemAlarm"]

_ACTIVE = (AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK)


@dataclass(frozen=True, slots=True)
class SystemAlarm:
    """State of one system alarm.

    Attributes:
        state: its ISA-18.2 state.
        since: when it entered that state (None: never left normal).
        message: what the last transition said.
    """

    #: the id it is listed, recorded and acknowledged under; the kind and severity it reports
    RULE: ClassVar[str]
    KIND: ClassVar[str]
    SEVERITY: ClassVar[str]

    state: AlarmState = AlarmState.NORMAL
    since: float | None = None
    message: str = ""

    @property
    def active(self) -> bool:
        """Whether the condition it reports is (still) there."""
        return self.state in _ACTIVE

    def acknowledge(self, actor: str, now: float) -> tuple[Self, Transition | None]:
        """An operator acknowledged it; None when there was nothing to acknowledge."""
        to = acknowledged_state(self.state)
        if to is None:
            return self, None
        return self._move(to, "acknowledged", self.message, now, actor)

    def _move(
        self, to: AlarmState, event: str, message: str, now: float, actor: str = ""
    ) -> tuple[Self, Transition]:
        transition = Transition(
            rule=self.RULE, kind=self.KIND, point="", severity=self.SEVERITY,
            from_state=self.state, to_state=to, event=event, value=None, limit=None,
            lot=None, ts=now, message=message, actor=actor,
        )  # fmt: skip
        return type(self)(to, now, message), transition
