"""Evaluators of rules on one point's readings: limits, rate of change, staleness, quality."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from edge.durations import format_duration
from edge.readings import Quality
from edge.rules.alarms import AlarmRuntime, AlarmState
from edge.rules.evaluator import INF, Evaluator, Out
from edge.rules.model import LimitRule, QualityRule, RateRule, StaleRule

if TYPE_CHECKING:
    from edge.rules.state import EngineState

__all__ = ["LimitEval", "QualityEval", "RateEval", "StaleEval"]

_A_UNACK = AlarmState.ACTIVE_UNACK
_A_ACK = AlarmState.ACTIVE_ACK
_GOOD = Quality.GOOD


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
        rt = self.runtime_at(st, t, out)
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
        rt = self.runtime_at(st, t, out)
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
        rt = self.runtime_at(st, t, out)
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
        rt = self.runtime_at(st, t, out)
        cond = q != _GOOD
        state = rt.state
        if cond == (state is _A_UNACK or state is _A_ACK) and rt.due is None:
            rt.value = None  # fast path: nothing changes
            return
        self.observe(st, rt, cond, t, seq, None, out)
