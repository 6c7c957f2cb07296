"""The ``storage:readings`` alarm: the disk budget is pruning raw readings before their retention.

With ``ledger.readings_max_bytes`` or ``ledger.readings_min_free_bytes`` set, the node prunes the
oldest raw blocks when the store reaches the budget (:func:`edge.ledger.readings_store.plan_budget_prune`,
recorded on the ledger as every prune is). Raw data then lives shorter than
``readings_retention`` says, which a quality manager must know: the first such prune raises this
warning (severity ``medium``) through the same ISA-18.2 lifecycle, ledger entries and MQTT alerts
as a rule's alarm; it clears once the store is back under 90 % of its budget (and the free space
above 110 % of its floor), and ``edge alarm ack storage:readings`` acknowledges it. Pure: every
method takes ``now`` and returns the new value and the transition to record (None: no change).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from edge.rules.alarms import AlarmState, Transition, acknowledged_state, cleared_state

__all__ = ["STORAGE_RULE", "StorageAlarm"]

#: the id it is listed, recorded and acknowledged under
STORAGE_RULE = "storage:readings"

_ACTIVE = (AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK)


@dataclass(frozen=True, slots=True)
class StorageAlarm:
    """State of the ``storage:readings`` alarm (``since``: when it entered ``state``)."""

    state: AlarmState = AlarmState.NORMAL
    since: float | None = None
    message: str = ""

    @property
    def active(self) -> bool:
        """Whether the budget is (still) cutting raw readings short."""
        return self.state in _ACTIVE

    def pruned(self, what: str, now: float) -> tuple[StorageAlarm, Transition | None]:
        """The budget pruned raw readings (``what``: which and why, one line)."""
        message = f"disk budget reached, oldest raw readings pruned: {what}"
        if self.active:
            return replace(self, message=message), None
        return self._move(AlarmState.ACTIVE_UNACK, "activated", message, now)

    def within(self, what: str, now: float) -> tuple[StorageAlarm, Transition | None]:
        """The store is back well within its budget (``what``: the figures)."""
        if not self.active:
            return self, None
        return self._move(cleared_state(self.state), "cleared", f"within budget: {what}", now)

    def acknowledge(self, actor: str, now: float) -> tuple[StorageAlarm, Transition | None]:
        """An operator acknowledged it; None when there was nothing to acknowledge."""
        to = acknowledged_state(self.state)
        if to is None:
            return self, None
        return self._move(to, "acknowledged", self.message, now, actor)

    def _move(
        self, to: AlarmState, event: str, message: str, now: float, actor: str = ""
    ) -> tuple[StorageAlarm, Transition]:
        transition = Transition(
            rule=STORAGE_RULE, kind="storage", point="", severity="medium",
            from_state=self.state, to_state=to, event=event, value=None, limit=None,
            lot=None, ts=now, message=message, actor=actor,
        )  # fmt: skip
        return StorageAlarm(to, now, message), transition
