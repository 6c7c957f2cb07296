"""Answer "why did it (not) fire?" for one rule at one moment of a recording."""

from __future__ import annotations

from collections.abc import Sequence

from edge.readings import Reading
from edge.rules.alarms import AlarmRuntime, Transition
from edge.rules.engine import Engine
from edge.rules.evaluators import (
    DerivedEval,
    Evaluator,
    LimitEval,
    QualityEval,
    RateEval,
    SpcEval,
    StaleEval,
)
from edge.rules.lots import LotEvent
from edge.rules.model import LimitRule, RuleSet
from edge.rules.nelson import RULE_NAMES, rules_in
from edge.rules.recorded import format_time

__all__ = ["explain"]


def _s(seconds: float) -> str:
    """``12 s``, ``1.5 s``, ``250 ms``."""
    if abs(seconds) < 1 and seconds != 0:
        return f"{seconds * 1000:.4g} ms"
    return f"{seconds:.6g} s"


def _at(ts: float) -> str:
    """A time as people read it: ISO 8601 UTC for epoch times, plain seconds for small clocks."""
    if ts >= 1e8:  # an epoch timestamp (after 1973), as recordings carry
        return format_time(ts)
    return f"{ts:g}"


def _v(value: float | None, unit: str) -> str:
    if value is None:
        return "no value"
    return f"{value:.6g}" + (f" {unit}" if unit else "")


def explain(ruleset: RuleSet, readings: Sequence[Reading], rule_id: str, at: float) -> str:
    """Explain the state of ``rule_id`` at time ``at`` after streaming ``readings`` up to it.

    Readings stamped after ``at`` are ignored; the engine is then ticked to ``at``.

    Returns:
        A few lines of text: the alarm state, what the condition is and how far a running delay
        has got (``condition true for 12 s of the 30 s on-delay``), flags, and the rule's last
        transitions.

    Raises:
        KeyError: no rule with that id.
    """
    eng = Engine(ruleset)
    if rule_id not in eng.index:
        raise KeyError(f"unknown rule {rule_id!r}")
    ev = eng.evaluators[eng.index[rule_id]]
    st = eng.initial_state()
    upto = [r for r in readings if r.ts <= at]
    st, events = eng.step(st, upto, at)
    rt = st.rt[ev.idx]
    unit = ev.rule.unit
    lines = [f"{rule_id} ({ev.kind} on {ev.point}) at {_at(at)}: {rt.state.value}"]
    if isinstance(ev, DerivedEval):
        lines[0] = (
            f"{rule_id} defines the derived point {ev.point} = {ev.rule.expression.source if ev.rule.expression else ''}"
        )
        return "\n".join(lines)
    lines.extend(_condition(ev, rt, st.clock if st.clock is not None else at, st.start, unit))
    flags = []
    if rt.shelved_until is not None:
        flags.append(f"shelved until {_at(rt.shelved_until)} ({_s(rt.shelved_until - at)} left)")
    if rt.suppressed:
        flags.append("suppressed by design")
    if rt.oos:
        flags.append("out of service")
    if flags:
        lines.append(
            "flags: "
            + ", ".join(flags)
            + " (still evaluated; transitions are logged, not annunciated)"
        )
    mine = [e for e in events if isinstance(e, Transition) and e.rule == rule_id]
    if mine:
        lines.append("last transitions:")
        lines.extend(
            f"  {_at(e.ts)} {e.event} ({e.from_state.value} -> {e.to_state.value}) {e.message}"
            for e in mine[-3:]
        )
    else:
        lines.append("no transitions so far")
    if ev.kind == "lot":
        ends = [e for e in events if isinstance(e, LotEvent) and e.kind == "lot_end"]
        if ends:
            checks = [c for c in ends[-1].checks if c.rule == rule_id]
            lines.append(
                f"last lot {ends[-1].lot}: "
                + ", ".join(
                    f"{c.text} -> {_v(c.value, '')} {'passed' if c.passed else 'FAILED'}"
                    for c in checks
                )
            )
        else:
            lines.append("no lot has ended yet")
    return "\n".join(lines)


def _condition(
    ev: Evaluator, rt: AlarmRuntime, clock: float, start: float | None, unit: str
) -> list[str]:
    out: list[str] = []
    active = rt.active
    if isinstance(ev, LimitEval):
        rule = ev.rule
        assert isinstance(rule, LimitRule)
        lims = []
        if rule.low is not None:
            lims.append(f"low {_v(rule.low, unit)}")
        if rule.high is not None:
            lims.append(f"high {_v(rule.high, unit)}")
        db = f", deadband {_v(rule.deadband, unit)}" if rule.deadband else ""
        out.append(f"last value {_v(rt.value, unit)}; limits {', '.join(lims)}{db}")
        if rt.value is not None:
            v = rt.value
            if active:
                holding = v > ev.hi_hold or v < ev.lo_hold
                out.append(
                    "condition still true (not back inside by the deadband)"
                    if holding
                    else "value back inside by the deadband"
                )
            else:
                out.append(
                    "condition true (value beyond a limit)"
                    if v > ev.hi or v < ev.lo
                    else "condition false (value within limits)"
                )
    elif isinstance(ev, RateEval):
        out.append(
            f"last rate {_v(rt.value, unit)} per {_s(ev.per)} over up to {_s(ev.window)}; allowed {_v(ev.max_change, unit)}"
        )
    elif isinstance(ev, StaleEval):
        last = rt.aux.get("last")
        ref = last if last is not None else start
        if ref is not None:
            what = (
                "last reading"
                if last is not None
                else "no reading yet; counting from the engine's start"
            )
            out.append(f"{what} {_s(clock - ref)} ago; allowed {_s(ev.max_age)}")
    elif isinstance(ev, QualityEval):
        out.append(f"bad quality must last {_s(ev.on_delay)} before the alarm fires")
    elif isinstance(ev, SpcEval):
        limits = ev.zones_of(rt)
        if limits is None:
            out.append(f"learning limits: {len(rt.aux['base'])} of {ev.baseline} baseline readings")
        else:
            out.append(
                f"centre {limits.center:.6g}, UCL {limits.hi3:.6g}, LCL {limits.lo3:.6g}; last value {_v(rt.value, unit)}"
            )
            if active:
                out.append(
                    "signalled: "
                    + "; ".join(f"Nelson {k} ({RULE_NAMES[k]})" for k in rules_in(rt.aux["mask"]))
                )
    if rt.due is not None and rt.since is not None:
        held = clock - rt.since
        total = rt.due - rt.since
        which = "off-delay (back to normal)" if active else "on-delay"
        cond = "condition false" if active else "condition true"
        out.append(f"{cond} for {_s(held)} of the {_s(total)} {which}; due at {_at(rt.due)}")
    elif not active and (ev.on_delay > 0) and rt.value is not None:
        out.append(f"on-delay {_s(ev.on_delay)}: not running")
    return out
