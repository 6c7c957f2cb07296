"""The alarm state machine every rule kind shares: delays, timers, shelving, message rendering.

An evaluator holds a rule's static, precomputed configuration; its mutable part is the rule's
:class:`~edge.rules.alarms.AlarmRuntime` in the engine state. The replay path
(:mod:`edge.rules.replay`) computes conditions with numpy and then drives these same methods
only at the readings where a condition changes, so both paths share the state machine below.

Time conventions (docs/reference/rules.md, "Evaluation"):

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

__all__ = [
    "DEFAULT_CLEAR_MESSAGES",
    "INF",
    "QUALITIES",
    "QUALITY_CODE",
    "Evaluator",
    "Key",
    "Out",
    "Template",
    "number_text",
]

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
#: what a transition's value is, per rule kind, when the evaluator names no statistic itself
_STATISTIC = {"rate": "rate", "stale": "age", "quality": "quality"}


#: what a cleared event says when the rule has no ``clear_message``: that the value is back
DEFAULT_CLEAR_MESSAGES: dict[str, str] = {
    "limit": "{point} = {value} {unit} back within limit {limit} {unit}",
    "rate": "{point} changes by {value} {unit}, back within {limit} {unit}",
    "stale": "data from {point} again (after {value} s without)",
    "quality": "{point} quality is good again",
    "derived": "{point} can be computed again",
    "spc": "{point} = {value} {unit}: back in statistical control",
    "lot": "lot {lot}: {point} passes its checks again ({stat} = {value})",
}


def number_text(x: float, decimals: int | None = None) -> str:
    """A number for a message: ``decimals`` places, or as written up to 6 significant digits.

    ``8.0`` stays ``8.0``; a computed ``2.016133818589026`` becomes ``2.01613``.
    """
    if decimals is not None:
        return f"{x:.{decimals}f}"
    text = str(x)
    if "e" in text or "n" in text or x == int(x):  # exponent form, inf, nan; whole numbers
        return text
    if len(text.lstrip("-").replace(".", "").lstrip("0")) <= 6:
        return text
    # A float32 reading arrives with 7 significant digits (8.599809) and a computed figure with
    # 16: both are cut to 6, in plain decimals (no exponent for 123456.78 -> 123457.0).
    return str(round(x, max(0, 5 - math.floor(math.log10(abs(x))))))


class Template:
    """A message template, pre-filled with the rule's own fields when it has no format specs."""

    __slots__ = ("fill", "plain", "source", "tmpl")

    def __init__(self, source: str, fill: dict[str, object]) -> None:
        self.source = source
        self.fill = fill
        if not fill.get("unit"):
            source = source.replace(" {unit}", "")  # "4.6 :" reads badly: no unit, no gap
        try:
            parts = list(string.Formatter().parse(source))
        except ValueError:
            parts = []
        # a template without format specs or conversions is filled with ready-made text
        self.plain = all(not spec and not conv for _, _, spec, conv in parts)
        self.tmpl = ""
        if self.plain:
            pieces = []
            for literal, name, _, _ in parts:
                pieces.append(literal.replace("{", "{{").replace("}", "}}"))
                if name is None:
                    continue
                if name in _PER_EVENT:
                    pieces.append("{" + name + "}")
                else:
                    pieces.append(str(fill.get(name, "")).replace("{", "{{").replace("}", "}}"))
            self.tmpl = "".join(pieces)

    def fill_in(
        self,
        value: float | None,
        limit: float | None,
        vtext: str,
        ltext: str,
        lot: str,
        stat: str,
    ) -> str:
        """The text for one event (raw numbers for templates with format specs)."""
        if self.plain:
            return self.tmpl.format(value=vtext, limit=ltext, lot=lot, stat=stat)
        fill = self.fill.copy()
        fill["value"] = "" if value is None else value
        fill["limit"] = "" if limit is None else limit
        fill["lot"] = lot
        fill["stat"] = stat
        try:
            return self.source.format_map(fill)
        except (ValueError, TypeError):  # a format spec such as {value:.1f} on an empty value
            return self.source.format_map({k: str(v) for k, v in fill.items()})


#: placeholders filled per event (the others are the rule's own, filled once)
_PER_EVENT = frozenset({"value", "limit", "lot", "stat"})


class Evaluator:
    """Base: the delay/alarm state machine every alarming rule kind shares."""

    __slots__ = (
        "clear",
        "fill",
        "idx",
        "kind",
        "message",
        "off_delay",
        "on_delay",
        "plain",
        "point",
        "rule",
        "severity",
        "unit",
    )

    def __init__(self, rule: Rule, idx: int) -> None:
        self.rule = rule
        self.unit = rule.unit  # of the value and limit a transition reports (rates: per time)
        self.fill: dict[str, object] = {name: "" for name in PLACEHOLDERS}
        self.fill.update(
            rule=rule.id, point=rule.point, unit=rule.unit, severity=rule.severity.value
        )
        self.message = Template(rule.message, self.fill)
        self.clear = Template(rule.clear_message or DEFAULT_CLEAR_MESSAGES[rule.kind], self.fill)
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

    def runtime_at(self, st: EngineState, t: float, out: Out) -> AlarmRuntime:
        """The rule's runtime with every timer met by ``t`` fired (the start of a reading)."""
        rt = st.rt[self.idx]
        if rt.next <= t:
            self.advance(st, rt, t, out)
        return rt

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

    def value_text(self, value: float | None, rt: AlarmRuntime) -> str:
        """The value as a message shows it."""
        del rt
        return "" if value is None else number_text(value)

    def limit_text(self, limit: float | None, rt: AlarmRuntime) -> str:
        """The limit as a message shows it."""
        del rt
        return "" if limit is None else number_text(limit)

    def stat_text(self, rt: AlarmRuntime) -> str:
        """The statistic a message names (``{stat}``: lot ``Cpk``, SPC ``Nelson 5``)."""
        del rt
        return ""

    def statistic(self, rt: AlarmRuntime) -> str:
        """What a transition's value is (``Transition.statistic``): ``value``, ``rate``, ``Cpk``..."""
        return self.stat_text(rt) or _STATISTIC.get(self.kind, "value")

    def render(
        self,
        value: float | None,
        limit: float | None,
        lot: str | None,
        rt: AlarmRuntime,
        cleared: bool = False,
    ) -> str:
        """The rule's message for an activation, or its clear message (which says it is back)."""
        template = self.clear if cleared else self.message
        text = template.fill_in(
            value,
            limit,
            self.value_text(value, rt),
            self.limit_text(limit, rt),
            lot or "",
            self.stat_text(rt),
        )
        return text if cleared else text + self.detail(rt)

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
            self.render(value, limit, lot, rt, cleared=not activate),
            "",
            rt.shelved_until is not None,
            rt.suppressed,
            rt.oos,
            self.value_unit(rt),
            self.statistic(rt),
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
                    statistic=self.statistic(rt),
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
