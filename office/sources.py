"""Where chart data comes from: a lot's numeric readings out of the node's readings store.

The charts take a plain sequence of ``(ts, value)`` (:data:`edge.office.chart.Series`), so the
store can change under them; this module is the one place that reads it. Only readings of
quality ``good`` are charted: a stale reading repeats the last good value and would draw a flat
run that the process never made (and trip Nelson rule 7), and the lot aggregates count good
readings only.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from edge.errors import EdgeError, StorageError
from edge.ledger.owner import read_owner
from edge.ledger.readings_read import (
    StoredReading,
    pruned_in_window,
    read_readings,
    read_summaries,
)
from edge.ledger.trace import LotTrace

__all__ = [
    "MAX_READINGS",
    "RangeSeries",
    "good_numbers",
    "lot_points",
    "lot_series",
    "point_series",
    "range_series",
]

#: Above this many readings a time-range chart shows per-minute (then per-hour) means.
MAX_READINGS = 200_000


def good_numbers(readings: Iterable[StoredReading]) -> list[tuple[str, float]]:
    """``(ts, value)`` of the good, finite numeric readings, in time order.

    Text and bit points, ``stale``/``comm_fail`` readings and NaN/inf are left out.
    """
    out: list[tuple[str, float]] = []
    for reading in readings:
        value = reading.value
        if reading.quality != "good" or isinstance(value, bool):
            continue
        if isinstance(value, str):  # a text point, or a number as its decimal text
            try:
                value = float(value)
            except ValueError:
                continue
        if isinstance(value, int | float) and math.isfinite(value):
            out.append((reading.ts, float(value)))
    out.sort(key=lambda r: r[0])  # arrival order -> time order (stable for equal times)
    return out


def point_series(
    conn: sqlite3.Connection, point: str, since: str, until: str
) -> list[tuple[str, float]]:
    """Good numeric readings of ``point`` with ``since <= ts < until``, in time order.

    Half-open, as a lot is: the reading that ends a lot (a new lot code) starts the next one.
    Read through :mod:`edge.ledger.readings_read` (compressed blocks and the open block).

    Raises:
        StorageError: the readings cannot be read (a block that does not decode, no tables).
    """
    try:
        return good_numbers(read_readings(conn, points=(point,), since=since, until=until))
    except (sqlite3.Error, EdgeError) as exc:
        raise StorageError(f"cannot read readings of {point!r}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class RangeSeries:
    """A point's series over a time range and what its values are.

    Attributes:
        series: ``(ts, value)`` in time order.
        kind: ``readings`` (raw), ``minute means`` or ``hour means`` (ts = the period's start).
        pruned: raw readings blocks in the range that retention or the disk budget pruned.
    """

    series: list[tuple[str, float]]
    kind: str
    pruned: int = 0


def range_series(
    conn: sqlite3.Connection,
    point: str,
    since: str,
    until: str,
    *,
    max_readings: int = MAX_READINGS,
) -> RangeSeries:
    """``point`` over ``[since, until)``: raw readings, or summaries when raw cannot serve.

    Per-minute means when the range holds more than ``max_readings`` readings (by the minute
    summaries' counts) or when raw blocks in it were pruned (summaries outlive them); per-hour
    means when even the minutes exceed ``max_readings``. A chart of means learns its limits
    from the means' moving ranges: it shows shifts between minutes, not the spread within one.
    """
    try:
        pruned = pruned_in_window(conn, since, until)
        minutes = [
            (m.start, m.mean, m.count)
            for m in read_summaries(conn, seconds=60, points=(point,), since=since, until=until)
        ]
        total = sum(c for _, _, c in minutes)
        if not pruned and total <= max_readings:
            return RangeSeries(point_series(conn, point, since, until), "readings")
        if len(minutes) <= max_readings:
            return RangeSeries([(t, v) for t, v, _ in minutes], "minute means", pruned)
        hours = read_summaries(conn, seconds=3600, points=(point,), since=since, until=until)
        return RangeSeries([(h.start, h.mean) for h in hours], "hour means", pruned)
    except (sqlite3.Error, EdgeError) as exc:
        raise StorageError(f"cannot read readings of {point!r}: {exc}") from exc


def _window(conn: sqlite3.Connection, trace: LotTrace) -> tuple[str, str] | None:
    """The lot's time on this database's own node (its readings are that node's), else its span."""
    owner = read_owner(conn)
    if owner is not None and owner in trace.extents:
        return trace.extents[owner]
    return trace.span


def lot_points(trace: LotTrace) -> list[str]:
    """Points the lot's ``lot.end`` entries aggregate (sorted, each once)."""
    return sorted({p for visit in trace.visits for p in visit.aggregates})


def lot_series(
    conn: sqlite3.Connection, trace: LotTrace, points: Collection[str] | None = None
) -> dict[str, list[tuple[str, float]]]:
    """Per point, the good numeric readings taken while the lot was at this node.

    Args:
        conn: the ledger database (its ``readings`` table).
        trace: the lot (:func:`edge.ledger.trace.trace_lot`).
        points: which points (default: those the lot's ``lot.end`` aggregates).

    Returns:
        Only points with at least one numeric reading in the lot's time.
    """
    window = _window(conn, trace)
    if window is None:
        return {}
    wanted = sorted(points) if points is not None else lot_points(trace)
    out: dict[str, list[tuple[str, float]]] = {}
    for point in wanted:
        series = point_series(conn, point, window[0], window[1])
        if series:
            out[point] = series
    return out
