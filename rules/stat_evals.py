"""Evaluators of statistical rules: SPC (individuals chart, Nelson rules) and lot checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.readings import Quality
from edge.rules.alarms import AlarmRuntime, AlarmState
from edge.rules.evaluator import Evaluator, Out
from edge.rules.model import SpcRule
from edge.rules.nelson import RULE_NAMES, NelsonState, Zones, mask_of, rules_in
from edge.rules.spc import imr_limits

if TYPE_CHECKING:
    from edge.rules.state import EngineState

__all__ = ["LotEval", "SpcEval"]

_A_UNACK = AlarmState.ACTIVE_UNACK
_A_ACK = AlarmState.ACTIVE_ACK


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
