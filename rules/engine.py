"""The pure rule engine: ``(state, readings, now) -> (state, events)``.

No I/O and no clock reads: time comes from the readings and from ``now``. ``now`` drives
delay timers, stale detection and shelve expiry, so a step with no readings is a tick.

The state is updated in place and returned (see :mod:`edge.rules.state`); the engine itself is
immutable and can be shared. Given the same rule set, initial state and inputs, the events are
always the same, in the same order (:mod:`edge.rules.evaluators` gives the ordering rule), and
:func:`edge.rules.replay.replay` produces the identical list from recorded data.

Clock: the engine's clock is the latest reading time or ``now`` seen. A reading older than
the clock (out of order) is evaluated *at the clock*; callers should not pass a ``now`` ahead of
readings still to come.
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Callable, Sequence

from edge.readings import Quality, Reading
from edge.rules.alarms import AlarmRuntime, AlarmState, AlarmStats, Transition, acknowledged_state
from edge.rules.evaluators import (
    DerivedEval,
    Evaluator,
    Key,
    LotEval,
    Out,
    as_float,
    make_evaluator,
)
from edge.rules.lots import Aggregate, LotCheckResult, LotEvent, aggregate_of, check_lot
from edge.rules.model import LotRule, Rule, RuleSet, canonical_rule
from edge.rules.state import EngineState

_by_key = operator.itemgetter(0)  # sort events by their ordering key
__all__ = ["DEFAULT_MAX_SHELVE", "Engine", "Event"]

Event = Transition | LotEvent
Handler = Callable[[EngineState, float, int, "float | None", Quality, Out], None]

#: the longest an alarm may be shelved unless the engine is built with another maximum.
DEFAULT_MAX_SHELVE = 8 * 3600.0
_GOOD = Quality.GOOD


class Engine:
    """Evaluates a :class:`RuleSet` (immutable; the state lives in :class:`EngineState`).

    Args:
        ruleset: the validated rules.
        max_shelve: the longest shelve allowed, in seconds (longer requests are capped).
    """

    def __init__(self, ruleset: RuleSet, *, max_shelve: float = DEFAULT_MAX_SHELVE) -> None:
        self.ruleset = ruleset
        self.max_shelve = max_shelve
        self.evaluators: tuple[Evaluator, ...] = tuple(
            make_evaluator(r, i) for i, r in enumerate(ruleset.rules)
        )
        by_point: dict[str, list[Evaluator]] = {}
        for ev in self.evaluators:
            if isinstance(ev, DerivedEval):
                for name in ev.inputs:
                    by_point.setdefault(name, []).append(ev)
            else:
                by_point.setdefault(ev.point, []).append(ev)
        self.by_point: dict[str, tuple[Evaluator, ...]] = {p: tuple(v) for p, v in by_point.items()}
        #: per point: the bound ``on_reading`` of every rule watching it, and the derived
        #: rules reading it (kept apart: derived rules take the raw value)
        self.plain: dict[str, tuple[Handler, ...]] = {
            p: tuple(e.on_reading for e in v if not isinstance(e, DerivedEval))
            for p, v in by_point.items()
        }
        self.derived: dict[str, tuple[DerivedEval, ...]] = {
            p: tuple(e for e in v if isinstance(e, DerivedEval)) for p, v in by_point.items()
        }
        self.routes = {p: (self.plain.get(p, ()), self.derived.get(p, ())) for p in by_point}
        self.plain = {p: v for p, v in self.plain.items() if v}
        self.derived = {p: v for p, v in self.derived.items() if v}
        self.lot_point = ruleset.lot
        self.lot_rules: tuple[LotEval, ...] = tuple(
            e for e in self.evaluators if isinstance(e, LotEval)
        )
        self.ids = [r.id for r in ruleset.rules]
        #: digest of each rule's canonical definition: what reload/adopt compare
        self.defs = [rule_digest(r) for r in ruleset.rules]
        self.index = {rid: i for i, rid in enumerate(self.ids)}
        self.units: dict[str, str] = {}
        for r in ruleset.rules:
            if r.unit and r.point not in self.units:
                self.units[r.point] = r.unit

    # -- state ----------------------------------------------------------------------------------
    def initial_state(self) -> EngineState:
        """A state with every alarm NORMAL and no time seen yet."""
        return self._new_state([e.new_runtime() for e in self.evaluators])

    def _new_state(self, rts: list[AlarmRuntime]) -> EngineState:
        return EngineState(self.ruleset.hash, list(self.ids), rts, list(self.defs))

    def _prepare(self, st: EngineState, first: float) -> None:
        if st.ruleset_hash != self.ruleset.hash:
            raise ValueError(
                "engine state belongs to another rule set (use Engine.reload or Engine.adopt)"
            )
        if st.clock is None:
            st.clock = first
            st.start = first
            st.next_due = float("-inf")
        if st.next_due == float("-inf"):  # fresh or loaded state: compute every rule's timers
            st.next_due = float("inf")
            for ev, rt in zip(self.evaluators, st.rt, strict=True):
                ev.refresh(st, rt)

    def _advance_all(self, st: EngineState, t: float, out: Out) -> None:
        st.next_due = float("inf")
        for ev, rt in zip(self.evaluators, st.rt, strict=True):
            if rt.next <= t:
                ev.advance(st, rt, t, out)
            elif rt.next < st.next_due:
                st.next_due = rt.next

    @staticmethod
    def _finish(out: Out) -> list[Event]:
        out.sort(key=_by_key)
        return [e for _, e in out]

    # -- evaluation -----------------------------------------------------------------------------
    def step(
        self, state: EngineState, readings: Sequence[Reading], now: float
    ) -> tuple[EngineState, list[Event]]:
        """Evaluate readings (in order) and then advance the clock to ``now``.

        Args:
            state: the state returned by the previous call (updated in place).
            readings: new readings, in arrival order.
            now: the current time; timers met by then fire.

        Returns:
            The state and the events, ordered by time (see :mod:`edge.rules.evaluators`).
        """
        st = state
        out: Out = []
        self._prepare(st, readings[0].ts if readings else now)
        clock: float = _clock(st)
        routes = self.routes
        lot_point = self.lot_point
        acc = st.acc
        seq = st.seq
        # the per-reading path: a few microseconds at most (docs/design.md), hence the inlining
        for r in readings:
            t = r.ts
            if t < clock:
                t = clock
            else:
                clock = t
            point = r.point
            route = routes.get(point)
            if route is None and st.lot is None and point != lot_point:
                seq += 1  # no rule reads the point and no lot sums it: only the clock moved
                continue
            q = r.quality
            v = r.value
            fv: float | None = None
            if q == _GOOD:
                fv = (v if v == v else None) if type(v) is float else as_float(v)  # NaN: none
            if point == lot_point:
                st.seq = seq
                self._lot_reading(st, t, seq, v if q == _GOOD else None, out)
                acc = st.acc
            elif fv is not None and st.lot is not None:
                a = acc.get(point)
                if a is None:
                    self._accumulate(st, point, fv, r.unit)
                else:  # running shifted sums of the lot (see edge.rules.lots)
                    d = fv - a[1]
                    a[0] += 1
                    a[2] += d
                    a[3] += d * d
                    if fv < a[4]:
                        a[4] = fv
                    elif fv > a[5]:
                        a[5] = fv
            if route is not None:
                for handle in route[0]:
                    handle(st, t, seq, fv, q, out)
                for ev in route[1]:
                    self._derived(st, ev, point, t, seq, v, q, out)
            seq += 1
        st.seq = seq
        if now > clock:
            clock = now
        st.clock = clock
        if st.next_due <= clock:
            self._advance_all(st, clock, out)
        st.trim_lots()
        return st, self._finish(out)

    def _derived(
        self,
        st: EngineState,
        ev: DerivedEval,
        point: str,
        t: float,
        seq: int,
        value: object,
        q: Quality,
        out: Out,
    ) -> None:
        res = ev.update(st, point, value, q)
        if res is None:
            return
        dv, dq = res
        name = ev.point
        fv = dv if dq == _GOOD else None
        if st.lot is not None and fv is not None and name != self.lot_point:
            a = st.acc.get(name)
            if a is None:
                self._accumulate(st, name, fv, "")
            else:
                d = fv - a[1]
                a[0] += 1
                a[2] += d
                a[3] += d * d
                if fv < a[4]:
                    a[4] = fv
                elif fv > a[5]:
                    a[5] = fv
        for handle in self.plain.get(name, ()):
            handle(st, t, seq, fv, dq, out)
        for sub in self.derived.get(name, ()):
            self._derived(st, sub, name, t, seq, dv, dq, out)

    # -- lots -----------------------------------------------------------------------------------
    def _accumulate(self, st: EngineState, point: str, fv: float, unit: str) -> None:
        a = st.acc.get(point)
        if a is None:
            st.acc[point] = [1, fv, 0.0, 0.0, fv, fv]
            st.units[point] = unit
            return
        d = fv - a[1]
        a[0] += 1
        a[2] += d
        a[3] += d * d
        if fv < a[4]:
            a[4] = fv
        if fv > a[5]:
            a[5] = fv

    def aggregates(self, st: EngineState) -> dict[str, Aggregate]:
        """Aggregates of the current lot so far, per point (sorted by name)."""
        return {
            p: aggregate_of(
                int(a[0]), a[1], a[2], a[3], a[4], a[5], self.units.get(p) or st.units.get(p) or ""
            )
            for p, a in sorted(st.acc.items())
        }

    def _lot_reading(self, st: EngineState, t: float, seq: int, value: object, out: Out) -> None:
        if value is None or isinstance(value, bool) or not isinstance(value, (str, int)):
            return
        lot = str(value) or None
        if lot == st.lot:
            return
        old = st.lot
        if old is not None:
            self.end_lot(st, old, t, (t, 1, seq, -2, 0), out)
        st.note_lot(t, lot)
        st.acc = {}
        st.units = {}
        if lot is not None:
            out.append(
                ((t, 1, seq, -1, 0), LotEvent(kind="lot_start", lot=lot, ts=t, aggregates={}))
            )

    def end_lot(
        self,
        st: EngineState,
        lot: str,
        t: float,
        key: Key,
        out: Out,
        aggs: dict[str, Aggregate] | None = None,
    ) -> None:
        """Emit ``lot_end`` with aggregates and checks, and the lot rules' transitions.

        ``aggs`` defaults to the state's running aggregates (replay passes its own).
        """
        if aggs is None:
            aggs = self.aggregates(st)
        checks: list[LotCheckResult] = []
        for ev in self.lot_rules:
            rule = ev.rule
            assert isinstance(rule, LotRule)
            res = check_lot(rule, aggs.get(rule.point))
            checks.extend(res)
            failed = [c for c in res if not c.passed]
            rt = ev.runtime_at(st, t, out)
            first = failed[0] if failed else res[0] if res else None
            value = first.value if first is not None else None
            lim = first.limit if first is not None else None
            rt.aux["lim"] = lim
            rt.aux["stat"] = first.stat if first is not None else None
            rt.aux["check"] = first.text if first is not None and failed else None
            if bool(failed) != (rt.active):
                lkey = (t, key[1], key[2], -2, 1 + ev.idx)
                ev.transit(st, rt, bool(failed), t, lkey, value, out, lot)
        out.append(
            (key, LotEvent(kind="lot_end", lot=lot, ts=t, aggregates=aggs, checks=tuple(checks)))
        )

    # -- operator actions -----------------------------------------------------------------------
    def _op(self, st: EngineState, rule_id: str, now: float) -> tuple[Evaluator, Out]:
        try:
            ev = self.evaluators[self.index[rule_id]]
        except KeyError:
            raise KeyError(f"unknown rule {rule_id!r}") from None
        if isinstance(ev, DerivedEval):
            raise KeyError(f"rule {rule_id!r} defines a derived point and has no alarm")
        out: Out = []
        self._prepare(st, now)
        clock: float = st.clock  # type: ignore[assignment]
        st.clock = max(clock, now)
        if st.next_due <= st.clock:
            self._advance_all(st, st.clock, out)
        return ev, out

    def _op_key(self, st: EngineState, ev: Evaluator) -> Key:
        # an operator action orders after every reading already processed at the same time
        return (_clock(st), 1, st.seq, ev.idx, 3)

    def acknowledge(
        self, state: EngineState, rule_id: str, actor: str, now: float, comment: str = ""
    ) -> tuple[EngineState, list[Event]]:
        """Acknowledge an alarm (ACTIVE_UNACK -> ACTIVE_ACK, RTN_UNACK -> NORMAL).

        Acknowledging an alarm with nothing to acknowledge emits nothing.

        Raises:
            KeyError: no alarming rule with that id.
        """
        ev, out = self._op(state, rule_id, now)
        rt = state.rt[ev.idx]
        to = acknowledged_state(rt.state)
        if to is not None:
            ev.flag_event(
                state,
                rt,
                "acknowledged",
                _clock(state),
                self._op_key(state, ev),
                out,
                actor,
                state.lot,
                to,
                comment,
            )
        return state, self._finish(out)

    def shelve(
        self, state: EngineState, rule_id: str, actor: str, duration: float, now: float
    ) -> tuple[EngineState, list[Event]]:
        """Shelve an alarm for ``duration`` seconds (capped at the engine's ``max_shelve``).

        The alarm unshelves by itself at the end (an ``unshelved`` event stamped then).
        Shelving again restarts the shelve.

        Raises:
            KeyError: no alarming rule with that id.
            ValueError: ``duration`` is not positive.
        """
        if not duration > 0:
            raise ValueError(f"shelve duration must be > 0, got {duration!r}")
        ev, out = self._op(state, rule_id, now)
        rt = state.rt[ev.idx]
        rt.shelved_until = _clock(state) + min(duration, self.max_shelve)
        ev.refresh(state, rt)
        ev.flag_event(
            state, rt, "shelved", _clock(state), self._op_key(state, ev), out, actor, state.lot
        )
        return state, self._finish(out)

    def unshelve(
        self, state: EngineState, rule_id: str, actor: str, now: float
    ) -> tuple[EngineState, list[Event]]:
        """End a shelve early (nothing happens when the alarm is not shelved)."""
        ev, out = self._op(state, rule_id, now)
        rt = state.rt[ev.idx]
        if rt.shelved_until is not None:
            rt.shelved_until = None
            ev.refresh(state, rt)
            ev.flag_event(
                state,
                rt,
                "unshelved",
                _clock(state),
                self._op_key(state, ev),
                out,
                actor,
                state.lot,
            )
        return state, self._finish(out)

    def suppress(
        self, state: EngineState, rule_id_or_tag: str, on: bool, now: float
    ) -> tuple[EngineState, list[Event]]:
        """Suppress by design (or release) every rule with that id or tag (e.g. line stopped).

        Raises:
            KeyError: no alarming rule has that id or tag.
        """
        targets = [
            e
            for e in self.evaluators
            if not isinstance(e, DerivedEval)
            and (e.rule.id == rule_id_or_tag or rule_id_or_tag in e.rule.tags)
        ]
        if not targets:
            raise KeyError(f"no rule with id or tag {rule_id_or_tag!r}")
        _, out = self._op(state, targets[0].rule.id, now)
        for ev in targets:
            rt = state.rt[ev.idx]
            if rt.suppressed != on:
                rt.suppressed = on
                ev.flag_event(
                    state,
                    rt,
                    "suppressed" if on else "unsuppressed",
                    _clock(state),
                    self._op_key(state, ev),
                    out,
                    "",
                    state.lot,
                )
        return state, self._finish(out)

    def out_of_service(
        self, state: EngineState, rule_id: str, on: bool, actor: str, now: float
    ) -> tuple[EngineState, list[Event]]:
        """Take an alarm out of service (still evaluated and logged) or back in service."""
        ev, out = self._op(state, rule_id, now)
        rt = state.rt[ev.idx]
        if rt.oos != on:
            rt.oos = on
            ev.flag_event(
                state,
                rt,
                "out_of_service" if on else "in_service",
                _clock(state),
                self._op_key(state, ev),
                out,
                actor,
                state.lot,
            )
        return state, self._finish(out)

    # -- queries and reload ---------------------------------------------------------------------
    def alarm_stats(self, state: EngineState, now: float) -> dict[str, AlarmStats]:
        """Flood/chatter figures of every alarming rule as of ``now``."""
        return {
            ev.rule.id: state.rt[ev.idx].stats(ev.rule.id, now)
            for ev in self.evaluators
            if not isinstance(ev, DerivedEval)
        }

    def alarm_states(self, state: EngineState) -> dict[str, AlarmState]:
        """Every alarming rule's state."""
        return {
            ev.rule.id: state.rt[ev.idx].state
            for ev in self.evaluators
            if not isinstance(ev, DerivedEval)
        }

    def adopt(self, state: EngineState) -> EngineState:
        """Take over a state saved under another (or an unknown) rule set.

        For a restart after the rule files changed: a rule whose id and definition (kept in the
        state as a digest) are unchanged keeps everything; other rules start NORMAL.
        """
        return self._carry(state)

    def reload(self, state: EngineState, new_ruleset: RuleSet) -> tuple[Engine, EngineState]:
        """Take a new rule set over, keeping what belongs to unchanged rules.

        A rule is unchanged when the state holds a rule with the same id and an equal
        definition (compared by a digest of its canonical form, locations aside); it keeps its
        alarm state, flags, running delay timers and kind data (SPC limits, rate window ...).
        Changed and new rules start NORMAL; removed rules vanish without an event (the ledger
        records the reload). The clock, lot and lot aggregates carry over. Works for a state
        of any rule set, e.g. one loaded after a restart.
        """
        new = Engine(new_ruleset, max_shelve=self.max_shelve)
        return new, new._carry(state)

    def _carry(self, state: EngineState) -> EngineState:
        old = {
            rid: (digest, rt)
            for rid, digest, rt in zip(state.rule_ids, state.defs, state.rt, strict=False)
        }
        rts = []
        for ev, digest in zip(self.evaluators, self.defs, strict=True):
            prev = old.get(ev.rule.id)
            rts.append(prev[1] if prev is not None and prev[0] == digest else ev.new_runtime())
        st = self._new_state(rts)
        for name in ("clock", "start", "seq", "lot", "lot_base", "lot_timeline", "acc", "units"):
            setattr(st, name, getattr(state, name))
        st.next_due = float("-inf") if st.clock is not None else float("inf")
        return st


def rule_digest(rule: Rule) -> str:
    """SHA-256 of a rule's canonical definition (locations aside)."""
    data = json.dumps(canonical_rule(rule), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()


def _clock(st: EngineState) -> float:
    """The state's clock (set by every step and operator action before it is read)."""
    assert st.clock is not None
    return st.clock
