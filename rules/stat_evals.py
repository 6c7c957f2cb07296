"""Evaluators of statistical rules: SPC (individuals chart, Nelson rules) and lot checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge.readings import Quality
from edge.rules.alarms import AlarmRuntime, AlarmState
from edge.rules.evaluator import Evaluator, Out, number_text
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

    __slots__ = ("baseline", "decimals", "details", "mask", "signals", "zones")

    def __init__(self, rule: SpcRule, idx: int) -> None:
        super().__init__(rule, idx)
        self.mask = mask_of(rule.nelson)
        self.details: dict[tuple[int, int, float, float], str] = {}
        self.decimals = rule.decimals
        self.on_delay = rule.on_delay
        self.off_delay = rule.off_delay
        #: when a list, every reading at which a selected rule signals is appended to it as
        #: ``(t, value, mask, already active)``, so ``edge rules test`` can list the signals an
        #: active alarm hides (the streaming engine only; the columnar replay does not fill it)
        self.signals: list[tuple[float, float, int, bool]] | None = None
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
        """The line the first signalling rule is about, on the value's side of the centre.

        Rule 1: UCL/LCL (3 sigma); 5: the 2 sigma line; 6, 7 and 8: the 1 sigma line; 2: the
        centre line; 3 and 4 (trend, alternation) have none.
        """
        z = self.zones_of(rt)
        if z is None or value is None:
            return None
        side = 1 if value > z.center else -1
        rt.aux["side"] = side
        mask: int = rt.aux["mask"]
        first = (mask & -mask).bit_length()
        return _line(z, first, side)

    def limit_text(self, limit: float | None, rt: AlarmRuntime) -> str:
        """A chart line to the decimals its centre and sigma were written with."""
        del rt
        return "" if limit is None else number_text(limit, self.decimals)

    def stat_text(self, rt: AlarmRuntime) -> str:
        """``Nelson k`` of the first signalling rule."""
        mask: int = rt.aux["mask"]
        return f"Nelson {(mask & -mask).bit_length()}" if mask else ""

    def detail(self, rt: AlarmRuntime) -> str:
        """Which Nelson rules signalled at the activation, each with the line it is about."""
        mask: int = rt.aux["mask"]
        z = self.zones_of(rt)
        side: int = rt.aux.get("side", 1)
        key = (mask, side, z.center if z else 0.0, z.hi1 if z else 0.0)
        text = self.details.get(key)
        if text is None:
            parts = []
            for k in rules_in(mask):
                part = f"Nelson {k}: {RULE_NAMES[k]}"
                if z is not None:
                    part += _line_text(z, k, side, self.unit, self.limit_text, rt)
                parts.append(part)
            text = " [" + "; ".join(parts) + "]" if parts else ""
            self.details[key] = text
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
        rt = self.runtime_at(st, t, out)
        if fv is None:
            return
        z = self.zones if self.zones is not None else self.zones_of(rt)
        if z is None:
            self.learn(rt, fv)
            return
        aux = rt.aux
        m = aux["nelson"].push(fv, z, self.mask)
        state = rt.state
        if m and self.signals is not None:
            self.signals.append((t, fv, m, state is _A_UNACK or state is _A_ACK))
        active = state is _A_UNACK or state is _A_ACK
        if (m != 0) == active and rt.due is None:
            rt.value = fv  # fast path: nothing changes
            return
        if m and not active and rt.due is None:
            aux["mask"] = m  # the rules that started the signal (an on_delay runs from here)
        self.observe(st, rt, m != 0, t, seq, fv, out)


#: sigma multiple of the line each Nelson rule is about (2: the centre line; 3, 4: none)
_SIGMAS = {1: 3, 5: 2, 6: 1, 7: 1, 8: 1}


def _line(z: Zones, rule: int, side: int) -> float | None:
    if rule == 2:
        return z.center
    k = _SIGMAS.get(rule)
    if k is None:
        return None
    hi, lo = {1: (z.hi1, z.lo1), 2: (z.hi2, z.lo2), 3: (z.hi3, z.lo3)}[k]
    return hi if side > 0 else lo


def _line_text(
    z: Zones, rule: int, side: int, unit: str, fmt: Callable[[float, AlarmRuntime], str], rt: Any
) -> str:
    """``" (UCL 4.75 degC)"``: the line a rule is about, as a message shows it."""
    u = f" {unit}" if unit else ""
    if rule in (7, 8):
        return f" (1 sigma lines {fmt(z.lo1, rt)} and {fmt(z.hi1, rt)}{u})"
    line = _line(z, rule, side)
    if line is None:
        return ""
    if rule == 1:
        name = "UCL" if side > 0 else "LCL"
    elif rule == 2:
        name = "centre line"
    else:
        name = f"{'+' if side > 0 else '-'}{_SIGMAS[rule]} sigma line"
    return f" ({name} {fmt(line, rt)}{u})"


#: lot statistics that are pure numbers, whatever the point's unit
_UNITLESS_STATS = frozenset({"count", "cp", "cpk"})
#: how a message names a lot statistic
_STAT_NAMES = {"cp": "Cp", "cpk": "Cpk"}


class LotEval(Evaluator):
    """Lot-aggregate checks; evaluated by the engine at each lot end."""

    def stat_text(self, rt: AlarmRuntime) -> str:
        """The statistic of the first failing check (``Cpk``, ``mean``...)."""
        stat = rt.aux.get("stat") or ""
        return _STAT_NAMES.get(stat, stat)

    def value_text(self, value: float | None, rt: AlarmRuntime) -> str:
        """Capability indices to 2 decimals, counts whole, the rest as measured."""
        if value is None:
            return "none"
        stat = rt.aux.get("stat")
        if stat in ("cp", "cpk"):
            return number_text(value, 2)
        if stat == "count":
            return str(round(value))
        return number_text(value)

    def detail(self, rt: AlarmRuntime) -> str:
        """The check that fails, as written."""
        check = rt.aux.get("check")
        return f" (fails '{check}')" if check else ""

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
        self.runtime_at(st, t, out)
