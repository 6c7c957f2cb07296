"""The alarm state machine every rule kind shares: delays, timers, shelving, message rendering.

An evaluator holds a rule's static, precomputed configuration; its mutable part is the rule's
:class:`~edge.rules.alarms.AlarmRuntime` in the engine state. The replay path
(:mod:`edge.rules.replay`) computes conditions with numpy and then drives these same methods
only at the readings where a condition changes, so both paths share the state machine below.

Time conventions (the README (rules engine)):

* a delay timer started at ``since`` is due at ``due = since + delay`` and is met when the
  engine's clock reaches it (``clock >= due``, so exactly at the delay fires); a delayed
  transition is stamped ``due``, and fires *before* a reading stamped exactly ``due``;
* a stale rule is due at ``last + max_age`` and fires only once the clock is *past* it
  (``clock > due``: a reading exactly ``max_age`` after the previous one is in time);
* transitions are ordered by ``(ts, phase, seq, rule index, n)``: delay timers and shelve
  expiries (phase 0) before readings (phase 1) at equal times, stale activations (phase 2)
  after them; readings in arrival order, rules in rule-set order.
"""

from __future__ import annotations

import math
import string
from typing import TYPE_CHECKING

from edge.readings import Quality
from edge.rules.alarms import AlarmRuntime, AlarmState, Transition, make_transition
from edge.rules.lots import LotEvent
from edge.rules.model import PLACEHOLDERS, Rule

if TYPE_CHECKING:
    from edge.rules.state import EngineState

__all__ = ["INF", "QUALITIES", "QUALITY_CODE", "Evaluator", "Key", "Out"]

INF = math.inf
Key = tuple[float, int, int, int, int]
Event = Transition | LotEvent
Out = list[tuple[Key, Event]]

#: quality codes in order of badness (the columnar replay input uses them).
QUALITY_CODE: dict[Quality, int] = {q: i for i, q in enumerate(Quality)}
QUALITIES: tuple[Quality, ...] = tuple(Quality)
_A_UNACK = AlarmState.ACTIVE_UNACK
_A_ACK = AlarmState.ACTIVE_ACK
_RTN_UNACK = AlarmState.RTN_UNACK
_GOOD = Quality.GOOD
_NORMAL = AlarmState.NORMAL


class Evaluator:
    """Base: the delay/alarm state machine every alarming rule kind shares."""

    __slots__ = (
        "fill",
        "idx",
        "kind",
        "off_delay",
        "on_delay",
        "plain",
        "point",
        "rule",
        "severity",
        "texts",
        "tmpl",
        "unit",
    )

    def __init__(self, rule: Rule, idx: int) -> None:
        self.rule = rule
        self.unit = rule.unit  # of the value and limit a transition reports (rates: per time)
        self.fill: dict[str, object] = {name: "" for name in PLACEHOLDERS}
        self.fill.update(
            rule=rule.id, point=rule.point, unit=rule.unit, severity=rule.severity.value
        )
        # a template without format specs or conversions can be filled with ready-made text
        # (float formatting is the dearest part of a transition); limits repeat, so cache them
        try:
            parts = list(string.Formatter().parse(rule.message))
        except ValueError:
            parts = []
        self.plain = all(not spec and not conv for _, _, spec, conv in parts)
        self.texts: dict[float, str] = {}
        # with a plain template, the rule's own fields are filled in once, here
        self.tmpl = ""
        if self.plain:
            pieces = []
            for literal, name, _, _ in parts:
                pieces.append(literal.replace("{", "{{").replace("}", "}}"))
                if name is None:
                    continue
                if name in ("value", "limit", "lot"):
                    pieces.append("{" + name + "}")
                else:
                    pieces.append(
                        str(self.fill.get(name, "")).replace("{", "{{").replace("}", "}}")
                    )
            self.tmpl = "".join(pieces)
        self.idx = idx
        self.kind = rule.kind
        self.point = rule.point
        self.severity = rule.severity.value
        self.on_delay = 0.0
        self.off_delay = 0.0

    # -- plumbing -------------------------------------------------------------------------------
    def new_runtime(self) -> AlarmRuntime:
        """A fresh runtime (state NORMAL)."""
        return AlarmRuntime()

    def extra_due(self, rt: AlarmRuntime, st: EngineState) -> float:
        """Kind-specific timer (stale rules), ``inf`` when none."""
        del rt, st
        return INF

    def refresh(self, st: EngineState, rt: AlarmRuntime) -> None:
        """Recompute the rule's earliest timer and lower the engine's bound if needed."""
        nxt = INF
        if rt.due is not None:
            nxt = rt.due
        if rt.shelved_until is not None and rt.shelved_until < nxt:
            nxt = rt.shelved_until
        extra = self.extra_due(rt, st)
        if extra < nxt:
            nxt = extra
        rt.next = nxt
        if nxt < st.next_due:
            st.next_due = nxt

    def fire_extra(self, st: EngineState, rt: AlarmRuntime, t: float, out: Out) -> bool:
        """Fire the kind-specific timer if it is met at ``t``; True when it fired."""
        del st, rt, t, out
        return False

    def advance(self, st: EngineState, rt: AlarmRuntime, t: float, out: Out) -> None:
        """Fire every timer of this rule that is met by time ``t``, in time order."""
        while True:
            due = rt.due if rt.due is not None else INF
            shelf = rt.shelved_until if rt.shelved_until is not None else INF
            if due <= t and due <= shelf:
                rt.due = None
                rt.since = None
                key = (due, 0, 0, self.idx, 0)
                self.transit(st, rt, not rt.active, due, key, rt.value, out, st.lot_at(due))
            elif shelf <= t:
                rt.shelved_until = None
                key = (shelf, 0, 0, self.idx, 1)
                self.flag_event(st, rt, "unshelved", shelf, key, out, "", st.lot_at(shelf))
            elif not self.fire_extra(st, rt, t, out):
                break
        self.refresh(st, rt)

    # -- events ---------------------------------------------------------------------------------
    def limit_for(self, value: float | None, rt: AlarmRuntime) -> float | None:
        """The limit an activation at ``value`` is reported against."""
        del value, rt
        return None

    def value_unit(self, rt: AlarmRuntime) -> str:
        """The unit of the value and limit a transition reports (see :class:`Transition`)."""
        del rt
        return self.unit

    def detail(self, rt: AlarmRuntime) -> str:
        """Extra text appended to the message (SPC: which Nelson rules)."""
        del rt
        return ""

    def render(
        self, value: float | None, limit: float | None, lot: str | None, rt: AlarmRuntime
    ) -> str:
        """The rule's message for a transition."""
        if self.plain:  # str(x) is what format(x, "") gives
            ltext: str | None = "" if limit is None else self.texts.get(limit)
            if ltext is None:
                assert limit is not None
                ltext = self.texts[limit] = str(limit)
            vtext = "" if value is None else str(value)
            return self.tmpl.format(value=vtext, limit=ltext, lot=lot or "") + self.detail(rt)
        fill = self.fill.copy()
        fill["value"] = "" if value is None else value
        fill["limit"] = "" if limit is None else limit
        fill["lot"] = lot or ""
        try:
            text = self.rule.message.format_map(fill)
        except (ValueError, TypeError):  # a format spec such as {value:.1f} on an empty value
            text = self.rule.message.format_map({k: str(v) for k, v in fill.items()})
        return text + self.detail(rt)

    def transit(
        self,
        st: EngineState,
        rt: AlarmRuntime,
        activate: bool,
        ts: float,
        key: Key,
        value: float | None,
        out: Out,
        lot: str | None,
    ) -> None:
        """Activate or clear the alarm at ``ts`` and emit the transition."""
        del st
        frm = rt.state
        if activate:
            to = _A_UNACK
            rt.limit = self.limit_for(value, rt)
            rt.record_activation(ts)
            event = "activated"
        else:
            to = _RTN_UNACK if frm is _A_UNACK else _NORMAL
            event = "cleared"
        rt.state = to
        limit = rt.limit
        tr = make_transition(
            self.rule.id,
            self.kind,
            self.point,
            self.severity,
            frm,
            to,
            event,
            value,
            limit,
            lot,
            ts,
            self.render(value, limit, lot, rt),
            "",
            rt.shelved_until is not None,
            rt.suppressed,
            rt.oos,
            self.value_unit(rt),
        )
        out.append((key, tr))

    def flag_event(
        self,
        st: EngineState,
        rt: AlarmRuntime,
        event: str,
        ts: float,
        key: Key,
        out: Out,
        actor: str,
        lot: str | None,
        to: AlarmState | None = None,
        comment: str = "",
    ) -> None:
        """Emit an operator/flag event (acknowledged, shelved, suppressed ...)."""
        del st
        frm = rt.state
        if to is not None:
            rt.state = to
        msg = (
            f"{self.rule.id}: {event}"
            + (f" by {actor}" if actor else "")
            + (f": {comment}" if comment else "")
        )
        out.append(
            (
                key,
                Transition(
                    rule=self.rule.id,
                    kind=self.kind,
                    point=self.point,
                    severity=self.severity,
                    from_state=frm,
                    to_state=rt.state,
                    event=event,
                    value=rt.value,
                    limit=rt.limit,
                    lot=lot,
                    ts=ts,
                    message=msg,
                    actor=actor,
                    shelved=rt.shelved_until is not None,
                    suppressed=rt.suppressed,
                    out_of_service=rt.oos,
                    unit=self.value_unit(rt),
                ),
            )
        )

    def observe(
        self,
        st: EngineState,
        rt: AlarmRuntime,
        cond: bool,
        t: float,
        seq: int,
        value: float | None,
        out: Out,
    ) -> None:
        """Feed the condition as evaluated at a reading (timers up to ``t`` already fired)."""
        rt.value = value
        active = rt.state is _A_UNACK or rt.state is _A_ACK
        if cond == active:
            if rt.due is not None:  # the condition went back before its delay was met
                rt.due = None
                rt.since = None
                self.refresh(st, rt)
            return
        if rt.due is None:
            delay = self.off_delay if active else self.on_delay
            if delay <= 0:
                self.transit(st, rt, cond, t, (t, 1, seq, self.idx, 0), value, out, st.lot)
            else:
                rt.since = t
                rt.due = t + delay
                self.refresh(st, rt)

    def on_reading(
        self, st: EngineState, t: float, seq: int, fv: float | None, q: Quality, out: Out
    ) -> None:
        """Evaluate one reading of the watched point (``fv``: good finite value or None)."""
        raise NotImplementedError
