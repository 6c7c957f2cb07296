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

from edge.rules.alarms import AlarmState, Transition, cleared_state
from edge.system_alarm import SystemAlarm

__all__ = ["STORAGE_RULE", "StorageAlarm"]

#: the id it is listed, recorded and acknowledged under
STORAGE_RULE = "storage:readings"


@dataclass(frozen=True, slots=True)
class StorageAlarm(SystemAlarm):
    """State of the ``storage:readings`` alarm (active: the budget still cuts raw data short)."""

    RULE = STORAGE_RULE
    KIND = "storage"
    SEVERITY = "medium"

    def pruned(self, what: str, now: float) -> tuple[StorageAlarm, Transition | None]:
        """The budget pruned raw readings, or minute summaries (``what``: which and why, one line)."""
        message = f"disk budget reached, oldest pruned: {what}"
        if self.active:
            return replace(self, message=message), None
        return self._move(AlarmState.ACTIVE_UNACK, "activated", message, now)

    def within(self, what: str, now: float) -> tuple[StorageAlarm, Transition | None]:
        """The store is back well within its budget (``what``: the figures)."""
        if not self.active:
            return self, None
        return self._move(cleared_state(self.state), "cleared", f"within budget: {what}", now)
