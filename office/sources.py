"""Where chart data comes from: a lot's numeric readings out of the node's readings store.

The charts take a plain sequence of ``(ts, value)`` (:data:`edge.office.chart.Series`), so the
store can change under them; this module is the one place that reads it. Only readings of
quality ``good`` are charted: a stale reading repeats the last good value and would draw a flat
run that the process never made (and trip Nelson rule 7), and the lot aggregates count good
readings only.
"""

from __future__ import annotations

import importlib
import math
import sqlite3
from collections.abc import Collection
from typing import Any

import orjson

from edge.errors import EdgeError, StorageError
from edge.ledger.owner import read_owner
from edge.ledger.trace import LotTrace

__all__ = ["lot_points", "lot_series", "point_series"]


def _number(stored: str | None) -> float | None:
    """A stored value (JSON of its hashed form: ``"8.25"``) as a float; None for text/bits."""
    if stored is None:
        return None
    value = orjson.loads(stored)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        return float(value)
    except ValueError:  # a text point
        return None


def _store_reader() -> Any | None:
    """``edge.ledger.readings_read.read_readings`` where the compact readings store exists.

    The readings store is being replaced (compressed blocks behind one read interface); until
    that lands, the rows of the ``readings`` table are read directly. Looked up at run time so
    this module works on either side of the change.
    """
    try:
        module = importlib.import_module("edge.ledger.readings_read")
    except ModuleNotFoundError:
        return None
    return getattr(module, "read_readings", None)


def _through_store(
    reader: Any, conn: sqlite3.Connection, point: str, since: str, until: str
) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for reading in reader(conn, points=(point,), since=since, until=until):
        value = reading.value
        if reading.quality != "good" or isinstance(value, bool):
            continue
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                continue  # a text point
        if isinstance(value, int | float) and math.isfinite(value):
            out.append((reading.ts, float(value)))
    out.sort(key=lambda r: r[0])  # arrival order -> time order (stable for equal times)
    return out


def point_series(
    conn: sqlite3.Connection, point: str, since: str, until: str
) -> list[tuple[str, float]]:
    """Good numeric readings of ``point`` with ``since <= ts < until``, in time order.

    Half-open, as a lot is: the reading that ends a lot (a new lot code) starts the next one.

    Raises:
        StorageError: the database has no readings table or cannot be read.
    """
    reader = _store_reader()
    if reader is not None:
        try:
            return _through_store(reader, conn, point, since, until)
        except (sqlite3.Error, EdgeError) as exc:
            raise StorageError(f"cannot read readings of {point!r}: {exc}") from exc
    try:
        rows = conn.execute(
            "SELECT ts, value FROM readings WHERE point = ? AND ts >= ? AND ts < ? "
            "AND quality = 'good' ORDER BY ts, rowid",
            (point, since, until),
        ).fetchall()
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read readings of {point!r}: {exc}") from exc
    out: list[tuple[str, float]] = []
    for ts, stored in rows:
        if stored is not None and stored[:1] == '"' and stored[-1:] == '"':
            try:  # a decimal string ("500.1"): the common case, without a JSON parse
                number = float(stored[1:-1])
            except ValueError:
                continue  # a text point's value
            if math.isfinite(number):  # NaN/inf cannot be charted nor enter the statistics
                out.append((ts, number))
            continue
        value = _number(stored)
        if value is not None and math.isfinite(value):
            out.append((ts, value))
    return out


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
