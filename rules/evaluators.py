"""One evaluator per rule kind: the streaming semantics of every rule, shared with replay.

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
from collections import deque
from typing import TYPE_CHECKING, Any

from edge.durations import format_duration
from edge.readings import Quality
from edge.rules.alarms import AlarmRuntime, AlarmState, Transition, make_transition
from edge.rules.lots import LotEvent
from edge.rules.model import (
    PLACEHOLDERS,
    DerivedRule,
    LimitRule,
    LotRule,
    QualityRule,
    RateRule,
    Rule,
    SpcRule,
    StaleRule,
)
from edge.rules.nelson import RULE_NAMES, NelsonState, Zones, mask_of, rules_in
from edge.rules.spc import imr_limits

if TYPE_CHECKING:
    from edge.rules.state import EngineState

__all__ = ["QUALITY_CODE", "Evaluator", "Key", "Out", "make_evaluator"]

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


class LimitEval(Evaluator):
    """Spec limits with deadband and delays."""

    __slots__ = ("hi", "hi_hold", "lo", "lo_hold")

    def __init__(self, rule: LimitRule, idx: int) -> None:
        super().__init__(rule, idx)
        self.hi = rule.high if rule.high is not None else INF
        self.lo = rule.low if rule.low is not None else -INF
        self.hi_hold = rule.high - rule.deadband if rule.high is not None else INF
        self.lo_hold = rule.low + rule.deadband if rule.low is not None else -INF
        self.on_delay = rule.on_delay
        self.off_delay = rule.off_delay

    def limit_for(self, value: float | None, rt: AlarmRuntime) -> float | None:
        """The high limit for values above the band's middle, else the low one."""
        rule = self.rule
        assert isinstance(rule, LimitRule)
        if value is not None and rule.high is not None and (rule.low is None or value > rule.low):
            return rule.high
        return rule.low

    def on_reading(
        self, st: EngineState, t: float, seq: int, fv: float | None, q: Quality, out: Out
    ) -> None:
        """Entry ``v > high or v < low``; while active, hold ``v > high - db or v < low + db``."""
        rt = st.rt[self.idx]
        if rt.next <= t:
            self.advance(st, rt, t, out)
        if fv is None:
            return
        state = rt.state
        if state is _A_UNACK or state is _A_ACK:
            if (fv > self.hi_hold or fv < self.lo_hold) and rt.due is None:
                rt.value = fv  # fast path: still active, nothing pending
                return
            cond = fv > self.hi_hold or fv < self.lo_hold
        else:
            if not (fv > self.hi or fv < self.lo) and rt.due is None:
                rt.value = fv  # fast path: still normal, nothing pending
                return
            cond = fv > self.hi or fv < self.lo
        self.observe(st, rt, cond, t, seq, fv, out)


class RateEval(Evaluator):
    """Rate of change over a trailing window of good readings."""

    __slots__ = ("dirn", "max_change", "per", "window")

    def __init__(self, rule: RateRule, idx: int) -> None:
        super().__init__(rule, idx)
        self.window = rule.window
        self.per = rule.per
        self.max_change = rule.max_change
        self.dirn = {"rise": 1, "fall": -1}.get(rule.direction, 0)
        self.unit = f"{rule.unit} per {format_duration(rule.per)}".lstrip()

    def new_runtime(self) -> AlarmRuntime:
        """Runtime with an empty window of ``(t, value)``."""
        rt = AlarmRuntime()
        rt.aux["window"] = deque()
        return rt

    def limit_for(self, value: float | None, rt: AlarmRuntime) -> float | None:
        """``+max_change`` for rises, ``-max_change`` for falls."""
        return -self.max_change if value is not None and value < 0 else self.max_change

    def on_reading(
        self, st: EngineState, t: float, seq: int, fv: float | None, q: Quality, out: Out
    ) -> None:
        """``rate = (v - v_first) / (t - t_first) * per`` over readings with ``t_first >= t - window``."""
        rt = st.rt[self.idx]
        if rt.next <= t:
            self.advance(st, rt, t, out)
        if fv is None:
            return
        win: deque[tuple[float, float]] = rt.aux["window"]
        win.append((t, fv))
        cutoff = t - self.window
        while win[0][0] < cutoff:
            win.popleft()
        t0, v0 = win[0]
        if t > t0:
            rate = (fv - v0) / (t - t0) * self.per
            d = self.dirn
            if d == 1:
                cond = rate > self.max_change
            elif d == -1:
                cond = rate < -self.max_change
            else:
                cond = rate > self.max_change or rate < -self.max_change
            state = rt.state
            if cond == (state is _A_UNACK or state is _A_ACK) and rt.due is None:
                rt.value = rate  # fast path: nothing changes
                return
            self.observe(st, rt, cond, t, seq, rate, out)
        else:
            self.observe(st, rt, False, t, seq, None, out)


class StaleEval(Evaluator):
    """No reading of any quality for more than ``max_age`` seconds."""

    __slots__ = ("max_age",)

    def __init__(self, rule: StaleRule, idx: int) -> None:
        super().__init__(rule, idx)
        self.max_age = rule.max_age
        self.unit = "s"  # the value is the age of the last reading

    def new_runtime(self) -> AlarmRuntime:
        """Runtime with no reading seen yet (counts from the engine's start)."""
        rt = AlarmRuntime()
        rt.aux["last"] = None
        return rt

    def limit_for(self, value: float | None, rt: AlarmRuntime) -> float | None:
        """The maximum age."""
        return self.max_age

    def _last(self, rt: AlarmRuntime, st: EngineState) -> float:
        last: float | None = rt.aux["last"]
        if last is None:
            return st.start if st.start is not None else INF
        return last

    def extra_due(self, rt: AlarmRuntime, st: EngineState) -> float:
        """``last + max_age`` while not active."""
        if rt.active:
            return INF
        return self._last(rt, st) + self.max_age

    def fire_extra(self, st: EngineState, rt: AlarmRuntime, t: float, out: Out) -> bool:
        """Activate once the clock is strictly past ``last + max_age``."""
        if rt.active:
            return False
        due = self._last(rt, st) + self.max_age
        if not t > due:
            return False
        # ordered after every reading stamped exactly ``due`` (those were still in time)
        key = (due, 2, 0, self.idx, 0)
        self.transit(st, rt, True, due, key, self.max_age, out, st.lot_at(due, inclusive=True))
        return True

    def on_reading(
        self, st: EngineState, t: float, seq: int, fv: float | None, q: Quality, out: Out
    ) -> None:
        """Any reading clears an active stale alarm and restarts the clock."""
        rt = st.rt[self.idx]
        if rt.next <= t:
            self.advance(st, rt, t, out)
        state = rt.state
        if state is _A_UNACK or state is _A_ACK:
            key = (t, 1, seq, self.idx, 0)
            self.transit(st, rt, False, t, key, t - self._last(rt, st), out, st.lot)
        rt.aux["last"] = t
        # refresh() inlined: a stale rule has no delay timer, only its own and a shelve's
        nxt = t + self.max_age
        if rt.shelved_until is not None and rt.shelved_until < nxt:
            nxt = rt.shelved_until
        rt.next = nxt
        if nxt < st.next_due:
            st.next_due = nxt


class QualityEval(Evaluator):
    """Readings of bad quality for at least ``duration``; clears on the first good one."""

    def __init__(self, rule: QualityRule, idx: int) -> None:
        super().__init__(rule, idx)
        self.on_delay = rule.duration

    def on_reading(
        self, st: EngineState, t: float, seq: int, fv: float | None, q: Quality, out: Out
    ) -> None:
        """Condition: ``quality != good``."""
        rt = st.rt[self.idx]
        if rt.next <= t:
            self.advance(st, rt, t, out)
        cond = q != _GOOD
        state = rt.state
        if cond == (state is _A_UNACK or state is _A_ACK) and rt.due is None:
            rt.value = None  # fast path: nothing changes
            return
        self.observe(st, rt, cond, t, seq, None, out)


class SpcEval(Evaluator):
    """Individuals chart with selected Nelson rules; limits given or learned from a baseline."""

    __slots__ = ("baseline", "details", "mask", "zones")

    def __init__(self, rule: SpcRule, idx: int) -> None:
        super().__init__(rule, idx)
        self.mask = mask_of(rule.nelson)
        self.details: dict[int, str] = {}
        self.baseline = rule.baseline
        self.zones: Zones | None = None
        if rule.center is not None and rule.sigma is not None and rule.baseline <= 0:
            self.zones = Zones.of(rule.center, rule.sigma)

    def new_runtime(self) -> AlarmRuntime:
        """Runtime with empty baseline and fresh run counters."""
        rt = AlarmRuntime()
        rt.aux.update(base=[], limits=None, nelson=NelsonState(), mask=0)
        return rt

    def zones_of(self, rt: AlarmRuntime) -> Zones | None:
        """The zone lines in force (given, or learned once the baseline is complete)."""
        if self.zones is not None:
            return self.zones
        limits = rt.aux["limits"]
        return None if limits is None else Zones.of(limits[0], limits[1])

    def limit_for(self, value: float | None, rt: AlarmRuntime) -> float | None:
        """UCL for values above the centre line, else LCL."""
        z = self.zones_of(rt)
        if z is None or value is None:
            return None
        return z.hi3 if value > z.center else z.lo3

    def detail(self, rt: AlarmRuntime) -> str:
        """Which Nelson rules signalled at the activation."""
        mask: int = rt.aux["mask"]
        text = self.details.get(mask)
        if text is None:
            rules = rules_in(mask)
            text = (
                " [" + "; ".join(f"Nelson {k}: {RULE_NAMES[k]}" for k in rules) + "]"
                if rules
                else ""
            )
            self.details[mask] = text
        return text

    def learn(self, rt: AlarmRuntime, fv: float) -> None:
        """Add a baseline value; compute limits once the baseline is complete.

        A constant baseline (moving range 0) cannot give limits: it is discarded and learning
        starts again with the next reading.
        """
        base: list[float] = rt.aux["base"]
        base.append(fv)
        if len(base) >= self.baseline:
            try:
                lim = imr_limits(base)
            except ValueError:
                rt.aux["base"] = []
                return
            rt.aux["limits"] = [lim.center, lim.sigma]
            rt.aux["base"] = []

    def on_reading(
        self, st: EngineState, t: float, seq: int, fv: float | None, q: Quality, out: Out
    ) -> None:
        """Learn, or push the point through the run rules; active while a selected rule signals."""
        rt = st.rt[self.idx]
        if rt.next <= t:
            self.advance(st, rt, t, out)
        if fv is None:
            return
        z = self.zones if self.zones is not None else self.zones_of(rt)
        if z is None:
            self.learn(rt, fv)
            return
        aux = rt.aux
        m = aux["nelson"].push(fv, z, self.mask)
        state = rt.state
        active = state is _A_UNACK or state is _A_ACK
        if (m != 0) == active and rt.due is None:
            rt.value = fv  # fast path: nothing changes
            return
        if m and not active:
            aux["mask"] = m
        self.observe(st, rt, m != 0, t, seq, fv, out)


#: lot statistics that are pure numbers, whatever the point's unit
_UNITLESS_STATS = frozenset({"count", "cp", "cpk"})


class LotEval(Evaluator):
    """Lot-aggregate checks; evaluated by the engine at each lot end."""

    def limit_for(self, value: float | None, rt: AlarmRuntime) -> float | None:
        """The limit of the first failing check (set by the engine before the transition)."""
        lim: float | None = rt.aux.get("lim")
        return lim

    def value_unit(self, rt: AlarmRuntime) -> str:
        """The point's unit, but none for counts and capability indices."""
        return "" if rt.aux.get("stat") in _UNITLESS_STATS else self.unit

    def on_reading(
        self, st: EngineState, t: float, seq: int, fv: float | None, q: Quality, out: Out
    ) -> None:
        """Readings only feed the lot aggregates (the engine does that); timers still run."""
        rt = st.rt[self.idx]
        if rt.next <= t:
            self.advance(st, rt, t, out)


class DerivedEval(Evaluator):
    """A derived point: recomputed when an input gets a reading and every input has a value."""

    __slots__ = ("fn", "inputs", "pos", "vfn")

    def __init__(self, rule: DerivedRule, idx: int) -> None:
        super().__init__(rule, idx)
        assert rule.expression is not None
        self.fn = rule.expression.fn
        self.vfn = rule.expression.vector_fn
        self.inputs = rule.expression.inputs
        self.pos = {name: i for i, name in enumerate(self.inputs)}

    def new_runtime(self) -> AlarmRuntime:
        """Runtime holding each input's last value (None: no value) and quality code."""
        rt = AlarmRuntime()
        rt.aux.update(vals=[None] * len(self.inputs), quals=[0] * len(self.inputs))
        return rt

    def update(
        self, st: EngineState, point: str, value: Any, q: Quality
    ) -> tuple[float | None, Quality] | None:
        """Record an input reading; return the derived ``(value, quality)`` or None."""
        rt = st.rt[self.idx]
        i = self.pos[point]
        vals: list[float | None] = rt.aux["vals"]
        quals: list[int] = rt.aux["quals"]
        vals[i] = _as_float(value)
        quals[i] = QUALITY_CODE[q]
        if None in vals:
            return None
        out = self.fn(*vals)
        if out != out:  # NaN: undefined arithmetic
            return None, Quality.CONFIG_ERROR
        return out, QUALITIES[max(quals)]

    def on_reading(
        self, st: EngineState, t: float, seq: int, fv: float | None, q: Quality, out: Out
    ) -> None:
        """Derived rules are driven by the engine's dispatch (see :meth:`update`)."""


def _as_float(value: Any) -> float | None:
    """A reading's value as a finite-or-infinite float, None when not numeric or NaN."""
    tv = type(value)
    if tv is float:
        f: float = value
        return f if f == f else None
    if tv is int or tv is bool:
        return float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        f = float(value)
        return f if f == f else None
    return None


def make_evaluator(rule: Rule, idx: int) -> Evaluator:
    """The evaluator for a rule of any kind."""
    if isinstance(rule, LimitRule):
        return LimitEval(rule, idx)
    if isinstance(rule, RateRule):
        return RateEval(rule, idx)
    if isinstance(rule, StaleRule):
        return StaleEval(rule, idx)
    if isinstance(rule, QualityRule):
        return QualityEval(rule, idx)
    if isinstance(rule, SpcRule):
        return SpcEval(rule, idx)
    if isinstance(rule, LotRule):
        return LotEval(rule, idx)
    if isinstance(rule, DerivedRule):
        return DerivedEval(rule, idx)
    raise TypeError(f"unknown rule kind {type(rule).__name__}")
