"""The ISA-18.2 / OPC UA Part 9 alarm lifecycle: states, transitions, per-rule runtime.

States (:class:`AlarmState`) and what moves between them::

    NORMAL ──activated──► ACTIVE_UNACK ──cleared──► RTN_UNACK ──acknowledged──► NORMAL
                              │                        │
                        acknowledged              activated (back to ACTIVE_UNACK)
                              ▼
                          ACTIVE_ACK ──cleared──► NORMAL

Shelved (timed, unshelves by itself), suppressed by design and out of service are *flags* on
the alarm, not states: the rule is still evaluated and its transitions are still emitted
(logged), carrying the flags so that the annunciation side can hold them back.

Flood and chatter counts (ISA-18.2 §16 / EEMUA 191): every activation time of the last ten
minutes is kept per rule; more than 10 activations in 10 minutes is a flood, 3 or more in one
minute is chattering (:class:`AlarmStats`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ACTIVE",
    "CHATTER_COUNT",
    "CHATTER_WINDOW",
    "FLOOD_COUNT",
    "FLOOD_WINDOW",
    "AlarmRuntime",
    "AlarmState",
    "AlarmStats",
    "Transition",
    "acknowledged_state",
    "activated_state",
    "cleared_state",
    "is_active",
    "make_transition",
]

#: ISA-18.2: more than FLOOD_COUNT alarms within FLOOD_WINDOW seconds is a flood.
FLOOD_WINDOW = 600.0
FLOOD_COUNT = 10
#: a rule activating CHATTER_COUNT times or more within CHATTER_WINDOW seconds chatters.
CHATTER_WINDOW = 60.0
CHATTER_COUNT = 3


class AlarmState(enum.StrEnum):
    """The four states of the ISA-18.2 state machine."""

    NORMAL = "normal"
    ACTIVE_UNACK = "active_unack"
    ACTIVE_ACK = "active_ack"
    RTN_UNACK = "rtn_unack"


#: the states in which the alarm condition is (latched) active.
ACTIVE = frozenset({AlarmState.ACTIVE_UNACK, AlarmState.ACTIVE_ACK})


@dataclass(frozen=True, slots=True)
class Transition:
    """One alarm transition (the ledger records each one).

    Attributes:
        rule: the rule id.
        kind: the rule kind (``limit``, ``rate``, ``stale``, ``quality``, ``spc``, ``lot``).
        point: the watched point.
        severity: the rule's severity (``low`` ... ``critical``).
        from_state: state before.
        to_state: state after (equal to ``from_state`` for flag events such as ``shelved``).
        event: ``activated`` ``cleared`` ``acknowledged`` ``shelved`` ``unshelved``
            ``suppressed`` ``unsuppressed`` ``out_of_service`` ``in_service``.
        value: the value that caused it (the rate for rate rules, the age in seconds for stale
            rules, the statistic for lot rules), None when there is none.
        limit: the limit it was compared with, None when there is none.
        lot: the lot current at ``ts`` (for lot rules: the lot that ended), None outside lots.
        ts: when it happened (for delayed transitions: the moment the delay was met, not the
            time the engine noticed).
        message: the rule's message template, filled in.
        actor: who did it, for operator actions (acknowledge, shelve, out of service).
        shelved: the alarm was shelved at ``ts`` (added: the annunciation side holds it back).
        suppressed: the alarm was suppressed by design at ``ts`` (added).
        out_of_service: the alarm was out of service at ``ts`` (added).
        unit: the unit of ``value`` and ``limit``: the point's for limit, SPC and quality rules
            and for lot means, minima, maxima and deviations; ``"degC per 1m"`` for a rate
            rule; ``"s"`` for a stale rule's age; ``""`` for lot counts and capability indices.
    """

    rule: str
    kind: str
    point: str
    severity: str
    from_state: AlarmState
    to_state: AlarmState
    event: str
    value: float | None
    limit: float | None
    lot: str | None
    ts: float
    message: str
    actor: str = ""
    shelved: bool = False
    suppressed: bool = False
    out_of_service: bool = False
    unit: str = ""
    statistic: str = ""

    @property
    def annunciated(self) -> bool:
        """Whether an operator should be told (not shelved, suppressed or out of service)."""
        return not (self.shelved or self.suppressed or self.out_of_service)


_SET = [Transition.__dict__[name].__set__ for name in Transition.__slots__]


def make_transition(
    rule: str,
    kind: str,
    point: str,
    severity: str,
    from_state: AlarmState,
    to_state: AlarmState,
    event: str,
    value: float | None,
    limit: float | None,
    lot: str | None,
    ts: float,
    message: str,
    actor: str,
    shelved: bool,
    suppressed: bool,
    out_of_service: bool,
    unit: str,
    statistic: str = "",
) -> Transition:
    """Build a :class:`Transition` about twice as fast as its frozen ``__init__``.

    The frozen dataclass ``__init__`` goes through ``object.__setattr__`` per field; the slot
    descriptors are called directly here. The result is an ordinary, equal Transition.
    """
    t = object.__new__(Transition)
    s = _SET
    s[0](t, rule)
    s[1](t, kind)
    s[2](t, point)
    s[3](t, severity)
    s[4](t, from_state)
    s[5](t, to_state)
    s[6](t, event)
    s[7](t, value)
    s[8](t, limit)
    s[9](t, lot)
    s[10](t, ts)
    s[11](t, message)
    s[12](t, actor)
    s[13](t, shelved)
    s[14](t, suppressed)
    s[15](t, out_of_service)
    s[16](t, unit)
    s[17](t, statistic)
    return t


@dataclass(frozen=True, slots=True)
class AlarmStats:
    """Flood and chatter figures of one rule at a given time.

    Attributes:
        rule: rule id.
        state: current alarm state.
        activations_10min: activations in the last :data:`FLOOD_WINDOW` seconds.
        activations_1min: activations in the last :data:`CHATTER_WINDOW` seconds.
        total: activations since the state was created.
        flood: ``activations_10min > FLOOD_COUNT``.
        chattering: ``activations_1min >= CHATTER_COUNT``.
        shelved_until: when its shelve ends, or None.
        suppressed: suppressed by design.
        out_of_service: out of service.
    """

    rule: str
    state: AlarmState
    activations_10min: int
    activations_1min: int
    total: int
    flood: bool
    chattering: bool
    shelved_until: float | None
    suppressed: bool
    out_of_service: bool


class AlarmRuntime:
    """Mutable runtime of one rule's alarm (lives in the engine state, updated in place).

    Attributes:
        state: the ISA-18.2 state.
        due: when the running delay timer is met (on-delay while not active, off-delay while
            active), None when no timer runs.
        since: when the condition that started :attr:`due` began.
        value: last value seen (reported by delayed transitions).
        limit: last limit violated (reported by clears).
        shelved_until: end of the shelve, None when not shelved.
        suppressed: suppressed by design.
        oos: out of service.
        recent: activation times of the last :data:`FLOOD_WINDOW` seconds, oldest first.
        total: activations ever.
        next: the earliest timer of this rule (``inf`` when none): the engine's fast check.
        aux: kind-specific data (baseline, Nelson counters, rate window, last reading time ...),
            plain data except the documented objects converted by :mod:`edge.rules.state`.
    """

    __slots__ = (
        "aux",
        "due",
        "limit",
        "next",
        "oos",
        "recent",
        "shelved_until",
        "since",
        "state",
        "suppressed",
        "total",
        "value",
    )

    def __init__(self) -> None:
        self.state = AlarmState.NORMAL
        self.due: float | None = None
        self.since: float | None = None
        self.value: float | None = None
        self.limit: float | None = None
        self.shelved_until: float | None = None
        self.suppressed = False
        self.oos = False
        self.recent: list[float] = []
        self.total = 0
        self.next = float("inf")
        self.aux: dict[str, Any] = {}

    @property
    def active(self) -> bool:
        """Whether the alarm condition is latched active."""
        # identity tests: Enum.__hash__ is Python code, too slow for the per-reading path
        state = self.state
        return state is AlarmState.ACTIVE_UNACK or state is AlarmState.ACTIVE_ACK

    def record_activation(self, ts: float) -> None:
        """Count an activation for flood/chatter figures, forgetting those out of the window."""
        recent = self.recent
        recent.append(ts)
        cutoff = ts - FLOOD_WINDOW
        while recent and recent[0] < cutoff:
            recent.pop(0)
        self.total += 1

    def stats(self, rule: str, now: float) -> AlarmStats:
        """Flood/chatter figures as of ``now`` (windows are ``(now - window, now]``)."""
        n10 = sum(1 for t in self.recent if now - FLOOD_WINDOW < t <= now)
        n1 = sum(1 for t in self.recent if now - CHATTER_WINDOW < t <= now)
        return AlarmStats(
            rule=rule,
            state=self.state,
            activations_10min=n10,
            activations_1min=n1,
            total=self.total,
            flood=n10 > FLOOD_COUNT,
            chattering=n1 >= CHATTER_COUNT,
            shelved_until=self.shelved_until,
            suppressed=self.suppressed,
            out_of_service=self.oos,
        )


def activated_state(state: AlarmState) -> AlarmState:
    """State after the condition becomes active (from NORMAL or RTN_UNACK)."""
    del state
    return AlarmState.ACTIVE_UNACK


def is_active(state: AlarmState) -> bool:
    """Whether ``state`` is one of the two active states (fast identity test)."""
    return state is AlarmState.ACTIVE_UNACK or state is AlarmState.ACTIVE_ACK


def cleared_state(state: AlarmState) -> AlarmState:
    """State after the condition returns to normal."""
    return AlarmState.RTN_UNACK if state is AlarmState.ACTIVE_UNACK else AlarmState.NORMAL


def acknowledged_state(state: AlarmState) -> AlarmState | None:
    """State after an acknowledgement, None when there is nothing to acknowledge."""
    if state is AlarmState.ACTIVE_UNACK:
        return AlarmState.ACTIVE_ACK
    if state is AlarmState.RTN_UNACK:
        return AlarmState.NORMAL
    return None
