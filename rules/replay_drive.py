"""Driving the alarm state machine over a point's readings, for :mod:`edge.rules.replay`.

The conditions come from numpy over a whole stream; the evaluators' own methods (``observe``,
``advance``, ``on_reading``) are then called only where a condition changes or a timer is due,
so the transitions are the streaming engine's. Moved unchanged out of :mod:`edge.rules.replay`.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edge.readings import Quality
from edge.rules.alarms import FLOOD_WINDOW, AlarmRuntime, AlarmState, make_transition
from edge.rules.evaluators import (
    Evaluator,
    LimitEval,
    Out,
    QualityEval,
    RateEval,
    SpcEval,
    StaleEval,
)
from edge.rules.nelson import Zones, nelson_flags
from edge.rules.spc import imr_limits
from edge.rules.state import EngineState

if TYPE_CHECKING:
    # numpy is imported by the functions that run (see edge.rules.replay)
    import numpy as np
    import numpy.typing as npt

    from edge.rules.replay import _Stream

    F64 = npt.NDArray[np.float64]
    I64 = npt.NDArray[np.int64]
    U8 = npt.NDArray[np.uint8]
    BoolArray = npt.NDArray[np.bool_]
LotOf = Callable[[int], "str | None"]


def _drive(ev: Evaluator, st: EngineState, s: _Stream, out: Out, lot_of: LotOf) -> None:
    """Run one alarming rule over its point's stream."""
    import numpy as np

    rt = st.rt[ev.idx]
    if isinstance(ev, StaleEval):
        _drive_stale(ev, st, s, out, lot_of)
        return
    masks: U8 | None = None
    if isinstance(ev, QualityEval):
        rows, t = s.rows, s.t
        entry = s.q != 0
        hold = entry
        value = np.full(rows.size, np.nan)
    else:
        fv = s.fv
        rows, t, v = _valid(s.rows, s.t, fv)
        if isinstance(ev, LimitEval):
            entry = (v > ev.hi) | (v < ev.lo)
            same = ev.hi_hold == ev.hi and ev.lo_hold == ev.lo
            hold = entry if same else (v > ev.hi_hold) | (v < ev.lo_hold)
            value = v
        elif isinstance(ev, RateEval):
            first = np.searchsorted(t, t - ev.window, side="left")
            dt = t - t[first]
            has = dt > 0
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = (v - v[first]) / dt * ev.per
            if ev.dirn == 1:
                entry = rate > ev.max_change
            elif ev.dirn == -1:
                entry = rate < -ev.max_change
            else:
                entry = (rate > ev.max_change) | (rate < -ev.max_change)
            entry &= has
            hold = entry
            value = np.where(has, rate, np.nan)
        elif isinstance(ev, SpcEval):
            start, zones = _spc_learn(ev, st, v)
            if zones is None:
                return
            rows, t, v = rows[start:], t[start:], v[start:]
            masks = nelson_flags(v, zones, ev.mask)
            entry = masks != 0
            hold = entry
            value = v
        else:  # pragma: no cover - every kind is handled above
            return
    if rows.size == 0:
        return
    if (
        hold is entry
        and ev.on_delay <= 0
        and ev.off_delay <= 0
        and rt.state is AlarmState.NORMAL
        and rt.next == float("inf")
    ):
        _drive_undelayed(ev, st, rt, rows, t, entry, value, masks, out, lot_of)
        return
    code = entry.astype(np.uint8) | (hold.astype(np.uint8) << 1)
    chg = np.flatnonzero(code[1:] != code[:-1]) + 1
    idx = np.concatenate(([0], chg))
    t_c = t[idx].tolist()
    rows_c = rows[idx].tolist()
    entry_c = entry[idx].tolist()
    hold_c = hold[idx].tolist()
    value_c = value[idx].tolist()
    masks_c = masks[idx].tolist() if masks is not None else None
    for j in range(len(t_c)):
        tc = t_c[j]
        if rt.next <= tc:
            _fire(ev, st, rt, t, value, tc, out)
        active = rt.active
        cond = hold_c[j] if active else entry_c[j]
        seq = rows_c[j]
        st.lot = lot_of(seq)
        val = value_c[j]
        if masks_c is not None and cond and not active:
            rt.aux["mask"] = masks_c[j]
        ev.observe(st, rt, cond, tc, seq, None if val != val else val, out)
    # leave the value where streaming would, for a timer still to fire at the end
    last = float(value[-1])
    rt.value = None if last != last else last
    _pending_value(ev, st, rt, t, value)


def _valid(rows: I64, *cols: F64) -> tuple[Any, ...]:
    """``rows`` and ``cols`` restricted to where the last column is a number (no copy if all)."""
    import numpy as np

    ok = ~np.isnan(cols[-1])
    if ok.all():
        return (rows, *cols)
    return (rows[ok], *(c[ok] for c in cols))


def _drive_undelayed(
    ev: Evaluator,
    st: EngineState,
    rt: AlarmRuntime,
    rows: I64,
    t: F64,
    cond: BoolArray,
    value: F64,
    masks: U8 | None,
    out: Out,
    lot_of: LotOf,
) -> None:
    """A rule without delays or hysteresis: it transits exactly where its condition flips."""
    import numpy as np

    flips = np.flatnonzero(cond[1:] != cond[:-1]) + 1
    if cond[0]:
        flips = np.concatenate(([0], flips))
    idx = ev.idx
    t_c = t[flips].tolist()
    rows_c = rows[flips].tolist()
    value_c = value[flips].tolist()
    masks_c = masks[flips].tolist() if masks is not None else None
    # Evaluator.transit, unrolled for this case (state NORMAL at the start, no timers, no
    # operator flags changing): the property tests hold it to the streaming result
    rid, kind, point, sev = ev.rule.id, ev.kind, ev.point, ev.severity
    render, limit_for, append = ev.render, ev.limit_for, out.append
    shelved, suppressed, oos = rt.shelved_until is not None, rt.suppressed, rt.oos
    unit = ev.value_unit(rt)
    unack, rtn = AlarmState.ACTIVE_UNACK, AlarmState.RTN_UNACK
    lots_c = [lot_of(seq) for seq in rows_c]
    recent = rt.recent
    frm = rt.state
    activate = True  # the state starts NORMAL: the first flip activates, then they alternate
    for j, tc in enumerate(t_c):
        seq = rows_c[j]
        val = value_c[j]
        v = None if val != val else val
        lot = lots_c[j]
        if activate:
            if masks_c is not None:
                rt.aux["mask"] = masks_c[j]
            limit = rt.limit = limit_for(v, rt)
            recent.append(tc)
            to, event = unack, "activated"
        else:
            limit = rt.limit
            to, event = rtn, "cleared"
        rt.state = to
        msg = render(v, limit, lot, rt, not activate)
        tr = make_transition(
            rid,
            kind,
            point,
            sev,
            frm,
            to,
            event,
            v,
            limit,
            lot,
            tc,
            msg,
            "",
            shelved,
            suppressed,
            oos,
            unit,
            ev.statistic(rt),
        )
        append(((tc, 1, seq, idx, 0), tr))
        frm = to
        activate = not activate
    # flood/chatter bookkeeping as AlarmRuntime.record_activation leaves it
    rt.total += (len(t_c) + 1) // 2
    if recent:
        cutoff = recent[-1] - FLOOD_WINDOW
        keep = bisect.bisect_left(recent, cutoff)
        del recent[:keep]
    last = float(value[-1])
    rt.value = None if last != last else last


def _pending_value(ev: Evaluator, st: EngineState, rt: object, t: F64, value: F64) -> None:
    """Set the value a still-pending timer will report (the last reading before its due)."""
    import numpy as np

    due = rt.due  # type: ignore[attr-defined]
    if due is None:
        return
    i = int(np.searchsorted(t, due, side="left")) - 1
    if i >= 0:
        v = float(value[i])
        rt.value = None if v != v else v  # type: ignore[attr-defined]


def _fire(
    ev: Evaluator, st: EngineState, rt: object, t: F64, value: F64, upto: float, out: Out
) -> None:
    """Fire the timers met by ``upto`` with the value streaming would report."""
    _pending_value(ev, st, rt, t, value)
    ev.advance(st, rt, upto, out)  # type: ignore[arg-type]


def _spc_learn(ev: SpcEval, st: EngineState, v: F64) -> tuple[int, Zones | None]:
    """Where evaluation starts and the zones (None: still learning at the end)."""
    rt = st.rt[ev.idx]
    if ev.zones is not None:
        return 0, ev.zones
    pos = 0
    n = v.size
    b = ev.baseline
    while pos + b <= n:
        try:
            lim = imr_limits(v[pos : pos + b].tolist())
        except ValueError:
            pos += b
            continue
        rt.aux["limits"] = [lim.center, lim.sigma]
        return pos + b, Zones.of(lim.center, lim.sigma)
    rt.aux["base"] = v[pos:].tolist()
    return n, None


def _drive_stale(ev: StaleEval, st: EngineState, s: _Stream, out: Out, lot_of: LotOf) -> None:
    import numpy as np

    rt = st.rt[ev.idx]
    if s.rows.size == 0:
        return
    t = s.t
    start = st.start if st.start is not None else float(t[0])
    lasts = np.empty_like(t)
    lasts[0] = start
    lasts[1:] = t[:-1]
    gaps = np.flatnonzero(t > lasts + ev.max_age).tolist()
    for i in gaps:
        rt.aux["last"] = None if i == 0 else float(t[i - 1])
        ev.refresh(st, rt)
        row = int(s.rows[i])
        st.lot = lot_of(row)
        ev.on_reading(st, float(t[i]), row, None, Quality.GOOD, out)
    rt.aux["last"] = float(t[-1])
    ev.refresh(st, rt)
