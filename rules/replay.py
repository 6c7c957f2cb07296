"""Vectorised replay of recorded data: the same events as streaming, computed with numpy.

How it stays identical to :meth:`edge.rules.engine.Engine.step`:

* conditions are computed per reading with numpy, comparing against the very floats the
  evaluators use (limits, ``high - deadband``, zone lines, ``last + max_age`` ...); IEEE
  element-wise arithmetic in numpy equals Python's;
* the alarm state machine (:mod:`edge.rules.evaluators`) is then driven only at the readings
  where a rule's condition changes, with the same methods the streaming engine calls; between
  them nothing can happen except a delay timer, which is fired with the value of the last
  reading before its due time, as streaming would;
* lot aggregates add left to right (``numpy.cumsum``), as the streaming accumulator does;
* events carry the same ordering keys and are sorted the same way.

The input is columnar (:func:`replay_arrays`): one row per reading, in arrival order.
:func:`replay` turns :class:`~edge.readings.Reading` objects into columns and calls it.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from edge.readings import Quality, Reading
from edge.rules.engine import Engine, Event
from edge.rules.evaluators import (
    QUALITIES,
    QUALITY_CODE,
    DerivedEval,
    LotEval,
    Out,
    as_float,
)
from edge.rules.lots import Aggregate, LotEvent, aggregate_of
from edge.rules.model import RuleSet
from edge.rules.replay_drive import _drive, _valid
from edge.rules.state import EngineState

_by_key = operator.itemgetter(0)  # sort events by their ordering key
__all__ = ["replay", "replay_arrays", "to_columns"]

if TYPE_CHECKING:
    # numpy is imported by the functions that run (replay, rule tests): a running node
    # imports this package (edge.rules.replay with it) and must not load numpy
    import numpy as np
    import numpy.typing as npt

    F64 = npt.NDArray[np.float64]
    I64 = npt.NDArray[np.int64]
    U8 = npt.NDArray[np.uint8]
_CONFIG_ERROR = QUALITY_CODE[Quality.CONFIG_ERROR]


class _Stream:
    """The readings of one point: global row (seq), effective time, value, quality code."""

    __slots__ = ("_fv", "q", "raw", "rows", "t")

    def __init__(self, rows: I64, t: F64, raw: F64, q: U8 | None) -> None:
        import numpy as np

        self.rows = rows
        self.t = t
        self.raw = raw  # the value whatever the quality (NaN: none)
        self.q = q if q is not None else np.zeros(rows.size, dtype=np.uint8)
        self._fv: F64 | None = raw if q is None else None

    @property
    def fv(self) -> F64:
        """Good, numeric values (NaN elsewhere), what value-based rules evaluate."""
        import numpy as np

        if self._fv is None:
            self._fv = np.where(self.q == 0, self.raw, np.nan)
        return self._fv


def to_columns(
    readings: Sequence[Reading], lot_point: str | None = None
) -> tuple[F64, I64, F64, U8, list[str], dict[int, str], dict[str, str]]:
    """Readings as columns: ``ts, point_ids, values, quality, points, lots, units``.

    ``lots`` maps the row of each good lot-point reading with a text (or integer) value to that
    text; ``units`` is the first non-empty unit of each point.
    """
    import numpy as np

    names: dict[str, int] = {}
    n = len(readings)
    ts = np.empty(n, dtype=np.float64)
    pid = np.empty(n, dtype=np.int64)
    vals = np.empty(n, dtype=np.float64)
    qual = np.empty(n, dtype=np.uint8)
    lots: dict[int, str] = {}
    units: dict[str, str] = {}
    for i, r in enumerate(readings):
        ts[i] = r.ts
        pid[i] = names.setdefault(r.point, len(names))
        f = as_float(r.value)
        vals[i] = np.nan if f is None else f
        qual[i] = QUALITY_CODE[Quality(r.quality)]
        if r.unit and r.point not in units:
            units[r.point] = r.unit
        if (
            r.point == lot_point
            and r.quality == Quality.GOOD
            and isinstance(r.value, (str, int))
            and not isinstance(r.value, bool)
        ):
            lots[i] = str(r.value)
    return ts, pid, vals, qual, list(names), lots, units


def replay(
    ruleset: RuleSet, readings: Sequence[Reading], *, engine: Engine | None = None
) -> list[Event]:
    """Every event streaming these readings through a fresh engine would give.

    The readings are taken in order as one recording; the clock ends at the latest reading.
    Aggregate units come from the rule set, else from each point's first reading in the lot.
    """
    ts, pid, vals, qual, points, lots, _units = to_columns(readings, ruleset.lot)
    lot_units = _first_units_per_lot(readings, ruleset.lot)
    return replay_arrays(
        ruleset,
        ts,
        pid,
        vals,
        points=points,
        quality=qual,
        lots=lots,
        engine=engine,
        lot_units=lot_units,
    )


def _first_units_per_lot(
    readings: Sequence[Reading], lot_point: str | None
) -> dict[tuple[int, str], str]:
    """``(lot index, point) -> unit`` of the point's first good numeric reading in each lot."""
    if lot_point is None:
        return {}
    out: dict[tuple[int, str], str] = {}
    k = -1
    cur: str | None = None
    for r in readings:
        if r.point == lot_point:
            v = r.value
            if r.quality == Quality.GOOD and isinstance(v, (str, int)) and not isinstance(v, bool):
                new = str(v) or None
                if new != cur:
                    cur = new
                    k += 1
            continue
        if cur is not None and r.quality == Quality.GOOD and as_float(r.value) is not None:
            out.setdefault((k, r.point), r.unit)
    return out


def replay_arrays(
    ruleset: RuleSet,
    ts: npt.ArrayLike,
    point_ids: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    points: Sequence[str],
    quality: npt.ArrayLike | None = None,
    lots: Mapping[int, str] | None = None,
    units: Mapping[str, str] | None = None,
    engine: Engine | None = None,
    lot_units: Mapping[tuple[int, str], str] | None = None,
) -> list[Event]:
    """Replay columnar data.

    Args:
        ruleset: the rules.
        ts: reading times (float64 seconds), in arrival order.
        point_ids: index into ``points`` per row.
        values: float64 value per row, NaN when the reading has no numeric value.
        points: point names.
        quality: quality code per row (0 good, 1 stale, 2 comm_fail, 3 config_error, the order
            of :class:`~edge.readings.Quality`); None = all good.
        lots: row -> text value of the lot point's good readings (rows of the lot point not in
            it are ignored, as streaming ignores bad-quality lot readings).
        units: unit per point for lot aggregates when the rule set does not declare one.
        engine: an engine for ``ruleset`` to reuse (built otherwise).
        lot_units: ``(lot index, point) -> unit``, overriding ``units`` (used by :func:`replay`).

    Returns:
        The events, identical to streaming the rows through :meth:`Engine.step`.
    """
    import numpy as np

    eng = engine if engine is not None else Engine(ruleset)
    t_in = np.ascontiguousarray(ts, dtype=np.float64)
    n = t_in.size
    if n == 0:
        return []
    pid = np.asarray(point_ids)
    raw = np.ascontiguousarray(values, dtype=np.float64)
    q = None if quality is None else np.asarray(quality, dtype=np.uint8)
    lots = lots or {}
    t_eff = np.maximum.accumulate(t_in)
    st = eng.initial_state()
    st.clock = st.start = float(t_eff[0])
    st.next_due = float("inf")
    for ev, rt in zip(eng.evaluators, st.rt, strict=True):
        ev.refresh(st, rt)
    out: Out = []

    # rows of each point, ascending: a stable (radix) sort by point id
    npts = len(points)
    small = pid.astype(np.uint8 if npts < 256 else np.int32, copy=False)
    order = np.argsort(small, kind="stable")
    offs = np.concatenate(([0], np.cumsum(np.bincount(small, minlength=npts))))
    # one gather each for the whole recording; every point's columns are then slices (views)
    t_sorted = t_eff[order]
    raw_sorted = raw[order]
    q_sorted = None if q is None else q[order]
    bounds_of = {k: (int(offs[k]), int(offs[k + 1])) for k in range(npts)}
    streams: dict[str, _Stream] = {}
    lot_point = ruleset.lot

    def stream_of(name: str) -> _Stream:
        s = streams.get(name)
        if s is None:
            try:
                k = list(points).index(name)
            except ValueError:
                e = np.empty(0, dtype=np.int64)
                s = _Stream(e, np.empty(0), np.empty(0), np.empty(0, dtype=np.uint8))
            else:
                a, b = bounds_of[k]
                qk = None if q_sorted is None else q_sorted[a:b]
                s = _Stream(order[a:b], t_sorted[a:b], raw_sorted[a:b], qk)
            streams[name] = s
        return s

    # lots: the changes, in row order
    changes: list[tuple[int, float, str | None]] = []
    cur: str | None = None
    if lot_point is not None:
        for row in sorted(lots):
            new = lots[row] or None
            if new != cur:
                changes.append((row, float(t_eff[row]), new))
                cur = new
    st.lot_timeline = [(t, lot) for _, t, lot in changes]
    st.lot_base = None
    change_rows = [r for r, _, _ in changes]

    def lot_at_row(row: int) -> str | None:
        i = bisect.bisect_right(change_rows, row)
        return changes[i - 1][2] if i > 0 else None

    # derived points, in dependency order
    derived = [e for e in eng.evaluators if isinstance(e, DerivedEval)]
    defined = {e.point for e in derived}
    if any(p in defined for e in derived for p in e.inputs):
        plain = {p: stream_of(p) for e in derived for p in e.inputs if p not in defined}
        streams.update(_derived_by_loop(eng, plain, t_eff))
    else:
        for ev in derived:
            streams[ev.point] = _derived_stream(ev, [stream_of(p) for p in ev.inputs], t_eff)

    for ev in eng.evaluators:
        if isinstance(ev, (DerivedEval, LotEval)):
            continue
        _drive(ev, st, stream_of(ev.point), out, lot_at_row)

    if lot_point is not None and changes:
        _lots(eng, st, points, stream_of, changes, out, units or {}, lot_units or {})

    end = float(t_eff[-1])
    st.clock = end
    for ev, rt in zip(eng.evaluators, st.rt, strict=True):
        if rt.next <= end:
            ev.advance(st, rt, end, out)
    out.sort(key=_by_key)
    return [e for _, e in out]


def _derived_stream(ev: DerivedEval, inputs: list[_Stream], t_eff: F64) -> _Stream:
    """The derived point's readings, vectorised (inputs are plain points: disjoint rows)."""
    import numpy as np

    mark = np.zeros(t_eff.size, dtype=np.uint8)
    for j, s in enumerate(inputs):
        mark[s.rows] = j + 1
    urows = np.flatnonzero(mark)
    origin = mark[urows]
    m = urows.size
    have = np.ones(m, dtype=np.bool_)
    vals = []
    qmax = np.zeros(m, dtype=np.uint8)
    for j, s in enumerate(inputs):
        idx = np.cumsum(origin == j + 1) - 1  # this input's latest reading at each row
        ok = idx >= 0
        safe = np.where(ok, idx, 0)
        v = np.where(ok, s.raw[safe], np.nan) if s.raw.size else np.full(m, np.nan)
        have &= ~np.isnan(v)
        vals.append(v)
        if s.q.size:
            qmax = np.maximum(qmax, np.where(ok, s.q[safe], 0).astype(np.uint8))
    sel = np.flatnonzero(have)
    if sel.size == 0:
        return _empty()
    res = np.asarray(ev.vfn(*[v[sel] for v in vals]), dtype=np.float64)
    dq = qmax[sel].copy()
    dq[np.isnan(res)] = _CONFIG_ERROR
    r = urows[sel]
    return _Stream(r, t_eff[r], res, dq)


def _empty() -> _Stream:
    import numpy as np

    e = np.empty(0, dtype=np.int64)
    return _Stream(e, np.empty(0), np.empty(0), np.empty(0, dtype=np.uint8))


def _derived_by_loop(eng: Engine, plain: dict[str, _Stream], t_eff: F64) -> dict[str, _Stream]:
    """Derived points over derived points: run the streaming dispatch itself, row by row."""
    import numpy as np

    scratch = eng.initial_state()
    found: dict[str, tuple[list[int], list[float], list[int]]] = {
        e.point: ([], [], []) for e in eng.evaluators if isinstance(e, DerivedEval)
    }
    merged: list[tuple[int, str, float, int]] = []
    for name, s in plain.items():
        merged.extend(
            zip(s.rows.tolist(), [name] * s.rows.size, s.raw.tolist(), s.q.tolist(), strict=True)
        )
    merged.sort(key=lambda e: e[0])

    def dispatch(row: int, point: str, value: float | None, qc: int) -> None:
        for sub in eng.by_point.get(point, ()):
            if isinstance(sub, DerivedEval):
                res = sub.update(scratch, point, value, QUALITIES[qc])
                if res is None:
                    continue
                dv, dq = res
                rows, vals, quals = found[sub.point]
                rows.append(row)
                vals.append(float("nan") if dv is None else dv)
                quals.append(QUALITY_CODE[dq])
                dispatch(row, sub.point, dv, QUALITY_CODE[dq])

    for row, point, v, qc in merged:
        dispatch(row, point, v, qc)
    out = {}
    for name, (rows, vals, quals) in found.items():
        r = np.asarray(rows, dtype=np.int64)
        out[name] = _Stream(
            r, t_eff[r], np.asarray(vals, dtype=np.float64), np.asarray(quals, dtype=np.uint8)
        )
    return out


def _lots(
    eng: Engine,
    st: EngineState,
    points: Sequence[str],
    stream_of: object,
    changes: list[tuple[int, float, str | None]],
    out: Out,
    units: Mapping[str, str],
    lot_units: Mapping[tuple[int, str], str],
) -> None:
    """Lot boundaries with aggregates of every point and the lot rules' checks."""
    import numpy as np

    lot_point = eng.ruleset.lot
    names = [p for p in points if p != lot_point]
    names += [
        e.point for e in eng.evaluators if isinstance(e, DerivedEval) and e.point != lot_point
    ]
    bounds = np.asarray([r for r, _, _ in changes], dtype=np.int64)
    per_lot: list[dict[str, Aggregate]] = [{} for _ in changes]
    for name in names:
        s = stream_of(name)  # type: ignore[operator]
        fv = s.fv
        rows, x = _valid(s.rows, fv)
        if rows.size == 0:
            continue
        cuts = np.searchsorted(rows, bounds, side="right")
        for k in range(len(changes)):
            if changes[k][2] is None:
                continue
            a = int(cuts[k])
            b = int(cuts[k + 1]) if k + 1 < len(changes) else rows.size
            if b <= a:
                continue
            seg = x[a:b]
            first = float(seg[0])
            d = seg - first
            ssum = float(np.cumsum(d)[-1])
            ssq = float(np.cumsum(d * d)[-1])
            unit = eng.units.get(name) or lot_units.get((k, name)) or units.get(name, "")
            per_lot[k][name] = aggregate_of(
                b - a, first, ssum, ssq, float(seg.min()), float(seg.max()), unit
            )
    for k, (row, t, lot) in enumerate(changes):
        old = changes[k - 1][2] if k > 0 else None
        if old is not None:
            aggs = dict(sorted(per_lot[k - 1].items()))
            eng.end_lot(st, old, t, (t, 1, row, -2, 0), out, aggs)
        if lot is not None:
            out.append(
                ((t, 1, row, -1, 0), LotEvent(kind="lot_start", lot=lot, ts=t, aggregates={}))
            )
