"""The engine's state and its persistence (``to_json`` / ``from_json``).

The state is a plain mutable object that :meth:`edge.rules.engine.Engine.step` updates *in
place* and returns (copying it per reading would cost more than evaluating the rules). Keep
only the returned state; :meth:`EngineState.copy` makes an independent snapshot. Everything
that decides future transitions is in here, so a node that saves it and loads it after a
restart carries on exactly: alarm states, running on-delay/off-delay timers (absolute due
times), shelve expiries, SPC baselines and run counters, rate windows, the current lot and its
running aggregates.
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import Any

import orjson

from edge.rules.alarms import AlarmRuntime, AlarmState
from edge.rules.nelson import NelsonState

__all__ = ["STATE_VERSION", "EngineState", "rebase"]

STATE_VERSION = 1

_RT_FIELDS = (
    "due",
    "since",
    "value",
    "limit",
    "shelved_until",
    "suppressed",
    "oos",
    "recent",
    "total",
)


def _aux_out(aux: dict[str, Any]) -> dict[str, Any]:
    out = dict(aux)
    if isinstance(out.get("nelson"), NelsonState):
        out["nelson"] = out["nelson"].to_list()
    if isinstance(out.get("window"), deque):
        out["window"] = [list(p) for p in out["window"]]
    return out


def _aux_in(aux: dict[str, Any]) -> dict[str, Any]:
    out = dict(aux)
    if "nelson" in out:
        out["nelson"] = NelsonState.from_list(out["nelson"])
    if "window" in out:
        out["window"] = deque((t, v) for t, v in out["window"])
    return out


class EngineState:
    """Everything the engine remembers between steps (mutable, updated in place).

    Attributes:
        ruleset_hash: hash of the rule set the state belongs to.
        rule_ids: ids of the rules, in rule-set order (index = position in :attr:`rt`).
        defs: digests of the rules' definitions, same order (``Engine.reload``/``adopt``
            keep the runtime of a rule only when its id and digest are unchanged).
        rt: one :class:`AlarmRuntime` per rule.
        clock: the engine's time: the latest reading time or ``now`` seen, None before the
            first step. Readings older than the clock are evaluated at the clock.
        start: the first clock value (stale rules count never-seen points from it).
        seq: readings processed so far (orders transitions of equal time).
        next_due: lower bound of every rule's next timer (``inf`` when none).
        lot: the current lot code, None outside a lot.
        lot_base, lot_timeline: the lot before the first timeline entry and the recent lot
            changes ``(time, lot)``; delayed transitions look up the lot current at their
            due time here.
        acc: running sums of the current lot per point: ``[n, first, sum d, sum d^2, min,
            max]`` with ``d = x - first``.
        units: unit of each point's first reading in the current lot.
    """

    __slots__ = (
        "acc",
        "clock",
        "defs",
        "lot",
        "lot_base",
        "lot_timeline",
        "next_due",
        "rt",
        "rule_ids",
        "ruleset_hash",
        "seq",
        "start",
        "units",
    )

    def __init__(
        self,
        ruleset_hash: str,
        rule_ids: list[str],
        rt: list[AlarmRuntime],
        defs: list[str] | None = None,
    ) -> None:
        self.ruleset_hash = ruleset_hash
        self.rule_ids = rule_ids
        self.rt = rt
        self.defs = defs or []
        self.clock: float | None = None
        self.start: float | None = None
        self.seq = 0
        self.next_due = float("inf")
        self.lot: str | None = None
        self.lot_base: str | None = None
        self.lot_timeline: list[tuple[float, str | None]] = []
        self.acc: dict[str, list[float]] = {}
        self.units: dict[str, str] = {}

    def alarm(self, rule_id: str) -> AlarmRuntime:
        """The runtime of one rule's alarm.

        Raises:
            KeyError: no rule with that id.
        """
        try:
            return self.rt[self.rule_ids.index(rule_id)]
        except ValueError:
            raise KeyError(f"unknown rule {rule_id!r}") from None

    def alarm_states(self) -> dict[str, AlarmState]:
        """Every rule's alarm state by id."""
        return {rid: rt.state for rid, rt in zip(self.rule_ids, self.rt, strict=True)}

    def lot_at(self, ts: float, inclusive: bool = False) -> str | None:
        """The lot in force just before ``ts`` (``inclusive``: just after changes at ``ts``)."""
        tl = self.lot_timeline
        find = bisect.bisect_right if inclusive else bisect.bisect_left
        i = find(tl, ts, key=lambda e: e[0])
        return tl[i - 1][1] if i > 0 else self.lot_base

    def note_lot(self, ts: float, lot: str | None) -> None:
        """Record a lot change at ``ts``."""
        self.lot = lot
        self.lot_timeline.append((ts, lot))

    def trim_lots(self) -> None:
        """Forget lot changes older than the clock (no pending timer can be due before it)."""
        clock = self.clock if self.clock is not None else float("-inf")
        tl = self.lot_timeline
        drop = 0
        while drop < len(tl) and tl[drop][0] < clock:
            self.lot_base = tl[drop][1]
            drop += 1
        if drop:
            del tl[:drop]

    def to_json(self) -> bytes:
        """Serialise (floats keep their exact value: orjson writes shortest round-trip form)."""
        data = {
            "version": STATE_VERSION,
            "ruleset_hash": self.ruleset_hash,
            "defs": self.defs,
            "clock": self.clock,
            "start": self.start,
            "seq": self.seq,
            "lot": self.lot,
            "lot_base": self.lot_base,
            "lot_timeline": [list(e) for e in self.lot_timeline],
            "acc": self.acc,
            "units": self.units,
            "alarms": {
                rid: {
                    "state": rt.state.value,
                    **{f: getattr(rt, f) for f in _RT_FIELDS},
                    "aux": _aux_out(rt.aux),
                }
                for rid, rt in zip(self.rule_ids, self.rt, strict=True)
            },
        }
        return orjson.dumps(data)

    @classmethod
    def from_json(cls, data: bytes) -> EngineState:
        """Load a state written by :meth:`to_json`.

        Raises:
            ValueError: not a state document of this version.
        """
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"engine state is not JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
            raise ValueError("engine state has an unknown format or version")
        ids: list[str] = []
        rts: list[AlarmRuntime] = []
        for rid, a in doc["alarms"].items():
            rt = AlarmRuntime()
            rt.state = AlarmState(a["state"])
            for f in _RT_FIELDS:
                setattr(rt, f, a[f])
            rt.aux = _aux_in(a["aux"])
            ids.append(rid)
            rts.append(rt)
        st = cls(doc["ruleset_hash"], ids, rts, list(doc.get("defs", [])))
        st.clock = doc["clock"]
        st.start = doc["start"]
        st.seq = doc["seq"]
        st.lot = doc["lot"]
        st.lot_base = doc["lot_base"]
        st.lot_timeline = [(float(t), lot) for t, lot in doc["lot_timeline"]]
        st.acc = {p: list(v) for p, v in doc["acc"].items()}
        st.units = dict(doc["units"])
        st.next_due = float("-inf")  # the engine recomputes every rule's timers on first use
        return st

    def copy(self) -> EngineState:
        """An independent snapshot (through the JSON form, so it is what a restart would see)."""
        return EngineState.from_json(self.to_json())


def rebase(state: EngineState, now: float) -> EngineState:
    """Resume a state saved by an earlier run at ``now``, the start of a new run (in place).

    Time does not pass for rules while the node is down: nothing the engine did not observe
    counts. So a delay timer that was running is dropped (the condition must hold again, for the
    whole delay, on readings after the restart), a stale rule's age and a rate rule's window
    start again at ``now``, a shelve that expired while down ends at ``now``, and the clock
    moves to ``now``. What counts readings rather than time carries on: alarm states and
    flags, SPC baselines and Nelson run counters, the current lot and its sums. Hence no event
    after the restart is stamped before ``now`` (the new run's ``node.start``).

    A state whose clock is at or past ``now`` (or that never stepped) is returned unchanged.
    """
    st = state
    if st.clock is None or not now > st.clock:
        return st
    for rt in st.rt:
        rt.due = None
        rt.since = None
        if rt.shelved_until is not None and rt.shelved_until < now:
            rt.shelved_until = now
        aux = rt.aux
        if aux.get("last") is not None:  # stale rules: the age counts from the restart
            aux["last"] = now
        window = aux.get("window")
        if isinstance(window, deque):  # rate rules: the window holds readings of this run only
            window.clear()
    st.clock = now
    st.start = now
    st.trim_lots()
    st.next_due = float("-inf")  # every rule's timers are recomputed at the next step
    return st
