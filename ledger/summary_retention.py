"""Keeping minute summaries bounded: their retention, their share of the disk budget.

Minute summaries (:mod:`edge.ledger.readings_summary`) take one row per point and minute, ~85
bytes on disk (measured by ``tests/bench/test_bench_summaries.py``): ~4.9 MB a day for 40 points
sampled every second, 1.8 GB a year. Hour summaries are 1/60 of that (~80 KB a day) and are kept
for ever: they are what a control chart over months is drawn from. So minute summaries go

* after ``[ledger] minute_summary_retention`` (the retention task, beside the raw readings'), and
* to fit the disk budget, after the raw blocks: when pruning every raw block still leaves the
  store over ``readings_max_bytes`` (or under the free-space floor), the oldest minute summaries
  go next, a whole hour of all points at a time.

Neither is a ledger entry (docs/design.md, "Minute summaries are pruned, hours never"): summaries
are derived from raw readings whose digests are on the chain, are not themselves hashed or
replicated, and verify has nothing to judge them against; a budget prune of them raises the
``storage:readings`` alarm like a budget prune of raw blocks, whose transitions are recorded.

Counting minute rows exactly is a scan of the whole table (5 million rows for 40 points over
90 days), so the budget estimates them from the hour rows, which are 60 times fewer and
contiguous per point in the primary key: an hour with ``count`` readings holds ``min(60, count)``
minute rows, and no more than the minutes it has from the point's oldest minute row (a
retention cut inside an hour leaves its rest) to its newest (the hour under way): exact for a
point read at least once a minute (or at most once, evenly). Every query
here is a range of the primary key ``(point, seconds, start)``; the points are found by a skip
scan (one index seek per point), since SQLite does not skip on its own without statistics.
The estimate over 90 days of 40 points takes ~12 ms (``tests/bench/test_bench_summaries.py``): four
index seeks and a range sum per point.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

__all__ = [
    "MINUTE_ROW_BYTES",
    "SummaryCut",
    "minute_cut_for",
    "minute_rows",
    "prune_minute_summaries",
    "summary_points",
]

#: Bytes one minute-summary row takes on disk, for the budget (measured: 85 bytes for 40 points
#: named like ``line1.station07.temperature``, rows inserted in time order as the node writes
#: them; the bench prints the measured figure beside this one).
MINUTE_ROW_BYTES = 90
_MINUTE, _HOUR = 60, 3600


@dataclass(frozen=True, slots=True)
class SummaryCut:
    """Delete the minute summaries of every point whose minute starts before ``before``.

    It travels to the commit process as a prune request does (a picklable value), so the delete
    runs between commits, on the one connection that writes (:func:`edge.ledger.commit.prune_readings`).
    """

    before: int  #: epoch seconds


_POINTS = """
WITH RECURSIVE p(name) AS (
    SELECT min(point) FROM reading_summaries
    UNION ALL
    SELECT (SELECT min(point) FROM reading_summaries WHERE point > p.name) FROM p
    WHERE p.name IS NOT NULL
)
SELECT name FROM p WHERE name IS NOT NULL
"""


def summary_points(conn: sqlite3.Connection) -> list[str]:
    """Every point with a summary row, by one index seek per point."""
    return [str(name) for (name,) in conn.execute(_POINTS)]


def _minute_span(conn: sqlite3.Connection, point: str) -> tuple[int, int] | None:
    """The start of ``point``'s oldest and newest minute rows (two index seeks)."""
    (oldest,) = conn.execute(
        "SELECT min(start) FROM reading_summaries WHERE point = ? AND seconds = ?",
        (point, _MINUTE),
    ).fetchone()
    if oldest is None:
        return None
    (newest,) = conn.execute(
        "SELECT max(start) FROM reading_summaries WHERE point = ? AND seconds = ?",
        (point, _MINUTE),
    ).fetchone()
    return int(oldest), int(newest)


#: An hour's minute rows: one per reading at most, 60 at most, and no more than the minutes it
#: has between the oldest minute row (``?2``) and the newest (``?3``): the first and the last
#: hour may be partial (a retention cut inside the first, the last under way).
_HOUR_MINUTES = "min(60, count, (min(start + 3600, ?3 + 60) - max(start, ?2)) / 60)"


def _hours(conn: sqlite3.Connection, point: str, span: tuple[int, int]) -> list[tuple[int, int]]:
    """(hour start, minute rows it holds) of ``point`` over its minute rows' ``span``."""
    oldest, newest = span
    rows = conn.execute(
        f"SELECT start, {_HOUR_MINUTES} FROM reading_summaries"
        " WHERE point = ?1 AND seconds = 3600 AND start >= ?4 AND start <= ?3 ORDER BY start",
        (point, oldest, newest, oldest - oldest % _HOUR),
    )
    return [(int(s), int(n)) for s, n in rows]


def minute_rows(conn: sqlite3.Connection) -> int:
    """The minute-summary rows stored, estimated from the hour rows (see the module doc)."""
    total = 0
    for point in summary_points(conn):
        span = _minute_span(conn, point)
        if span is not None:
            oldest, newest = span
            first, last = oldest - oldest % _HOUR, newest - newest % _HOUR
            (n,) = conn.execute(
                "SELECT coalesce(sum(min(60, count)), 0) FROM reading_summaries"
                " WHERE point = ? AND seconds = 3600 AND start >= ? AND start <= ?",
                (point, first, last),
            ).fetchone()
            # only the first and the last hour may be partial: their excess, by two seeks (the
            # bound on every hour of 90 days made the estimate 1.7 times slower)
            (excess,) = conn.execute(
                f"SELECT coalesce(sum(min(60, count) - {_HOUR_MINUTES}), 0) FROM"
                " reading_summaries WHERE point = ?1 AND seconds = 3600 AND start IN (?4, ?5)",
                (point, oldest, newest, first, last),
            ).fetchone()
            total += int(n) - int(excess)
    return total


def minute_cut_for(conn: sqlite3.Connection, rows: int) -> SummaryCut | None:
    """The cut freeing at least ``rows`` minute rows, oldest hours first (all points at once).

    None when there are no minute summaries; when ``rows`` is more than they hold, the cut
    takes them all (hour summaries stay).
    """
    per_hour: dict[int, int] = {}
    for point in summary_points(conn):
        span = _minute_span(conn, point)
        if span is None:
            continue
        for start, n in _hours(conn, point, span):
            per_hour[start] = per_hour.get(start, 0) + n
    if not per_hour or rows <= 0:
        return None
    freed = 0
    for start in sorted(per_hour):
        freed += per_hour[start]
        if freed >= rows:
            return SummaryCut(start + _HOUR)
    return SummaryCut(max(per_hour) + _HOUR)


def prune_minute_summaries(conn: sqlite3.Connection, before: int) -> int:
    """Delete minute summaries starting before ``before`` (epoch s); hour summaries stay.

    Runs inside the caller's transaction. Returns the rows deleted.
    """
    deleted = 0
    for point in summary_points(conn):
        deleted += conn.execute(
            "DELETE FROM reading_summaries WHERE point = ? AND seconds = ? AND start < ?",
            (point, _MINUTE, before),
        ).rowcount
    return deleted
