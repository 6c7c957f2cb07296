"""A lot's control charts for the web view, kept for the next request while they cannot change.

Building the chart of a 100,000-reading lot costs 0.5-1.5 s (reading the readings,
the statistics over every one, the SVG); the page is opened again and again while people look at
it. A chart is kept (least recently used first out, :data:`SIZE` charts) only for a lot that has
ended at every station: its readings window is then fixed, and the only thing that can change
what it holds is a prune of raw readings, which is recorded on the ledger (``readings.prune``)
and counted by the catalog, so a prune makes every kept chart stale. A lot still running is
built on every request (its window grows; readings reach the store after its entries).

The charts themselves are :mod:`edge.office`'s: this module only chooses what to build and keeps it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.ledger.trace import LotTrace
    from edge.office import ChartData, SpecLimits

__all__ = ["SIZE", "ChartCache", "LotChart"]

#: Charts kept (a 100,000-reading chart holds ~10 MB: its timestamps and values).
SIZE = 8


@dataclass(slots=True)
class LotChart:
    """A point's chart in a lot, and its SVG once drawn."""

    point: str
    data: ChartData
    svg: str | None = None


@dataclass
class ChartCache:
    """Charts of ended lots by (lot, point, window, prunes, spec)."""

    size: int = SIZE
    _kept: OrderedDict[Hashable, LotChart] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def chart(
        self,
        conn: sqlite3.Connection,
        trace: LotTrace,
        point: str,
        *,
        spec: SpecLimits | None,
        prunes: int,
    ) -> LotChart | None:
        """The chart of ``point`` in ``trace``'s lot (None: no numeric readings of it stored)."""
        ended = bool(trace.visits) and all(v.end is not None for v in trace.visits)
        key = (trace.lot, point, tuple(sorted(trace.extents.items())), prunes, spec)
        if ended:
            with self._lock:
                found = self._kept.get(key)
                if found is not None:
                    self._kept.move_to_end(key)
                    return found
        made = _build(conn, trace, point, spec)
        if made is not None and ended:
            with self._lock:
                self._kept[key] = made
                while len(self._kept) > self.size:
                    self._kept.popitem(last=False)
        return made


def _build(
    conn: sqlite3.Connection, trace: LotTrace, point: str, spec: SpecLimits | None
) -> LotChart | None:
    from edge.office import alarm_periods, chart_data
    from edge.office.sources import lot_series

    series = lot_series(conn, trace, [point]).get(point)
    if not series:
        return None
    units = {p: str(a.get("unit", "")) for v in trace.visits for p, a in v.aggregates.items()}
    periods = [a for a in alarm_periods(e.entry for e in trace.events) if a.point == point]
    data = chart_data(series, point=point, unit=units.get(point, ""), spec=spec, alarms=periods)
    return LotChart(point, data)
