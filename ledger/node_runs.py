"""A feed's runs (``node.start`` .. ``node.stop``) and what they say about a lot's gaps.

Trace uses it to show a node's stops and starts inside a lot and to say why a lot's start or end
is missing instead of leaving a blank: the node stopped, was down (killed or powered off: a
``node.start`` with no ``node.stop`` before it), the feed begins after the lot began, or the lot
is still running.

A run that ended without a ``node.stop`` ended, as far as the ledger knows, at its last durable
entry: the ``previous_run.last_entry`` the next ``node.start`` records (with
``previous_run.last_reading``, its last durable raw reading), or, in a ledger written before
node starts recorded it, the entry at that start's ``seq - 1`` (usually the checkpoint of the
run's last commit), read by primary key: explaining a gap costs one lookup however long the feed.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from edge.errors import StorageError
from edge.ledger.query import StoredEntry

__all__ = ["Downtime", "FeedRuns", "load_runs"]

_LIFECYCLE = ("node.start", "node.stop")


@dataclass(frozen=True, slots=True)
class Downtime:
    """The node writing a feed was down from ``since`` to ``until`` (the next ``node.start``).

    Attributes:
        clean: the run before ended with a ``node.stop`` (``since`` is its time); otherwise
            ``since`` is the time of the last entry the run made durable.
        start: the ``node.start`` that ended the downtime.
        stop: the ``node.stop`` that began it (None when the node was killed or lost power).
    """

    since: str
    until: str
    clean: bool
    start: StoredEntry
    stop: StoredEntry | None
    last_reading: str | None = None

    def describe(self) -> str:
        """``node down from .. to ..`` with how the run before ended."""
        how = (
            f"stopped: {self.stop.body.get('reason', '-')}"
            if self.stop is not None
            else "no node.stop: killed or lost power after its last durable entry"
        )
        if self.last_reading:
            how += f"; last durable reading {self.last_reading}"
        return f"node down from {self.since} to {self.until} ({how})"


@dataclass(frozen=True, slots=True)
class FeedRuns:
    """Every ``node.start``/``node.stop`` of one feed, in order, and the feed's ends."""

    feed: str
    lifecycle: tuple[StoredEntry, ...]
    first_ts: str | None  # the feed's first entry
    last_ts: str | None  # the feed's last entry
    downtimes: tuple[Downtime, ...]

    def inside(self, first: str, last: str) -> list[StoredEntry]:
        """Starts and stops strictly after ``first`` and at or before ``last``."""
        return [e for e in self.lifecycle if first < e.ts <= last]

    def downtime_ending(self, start: StoredEntry) -> Downtime | None:
        """The downtime the ``node.start`` ``start`` ended (None for the feed's first start)."""
        for down in self.downtimes:
            if down.start.id == start.id:
                return down
        return None

    def why_no_end(self, last_of_lot: str, next_lot_start: StoredEntry | None) -> str:
        """Why a lot whose last entry on this feed is at ``last_of_lot`` has no ``lot.end``."""
        after = [e for e in self.lifecycle if e.ts >= last_of_lot]
        if next_lot_start is not None and (not after or next_lot_start.ts < after[0].ts):
            return (
                f"no lot.end: lot {next_lot_start.body.get('lot', '?')} started at "
                f"{next_lot_start.ts} without one (an entry lost before it was durable?)"
            )
        if not after:
            return (
                f"no lot.end yet: the lot is still running (last entry of the lot at "
                f"{last_of_lot}; the feed's last entry at {self.last_ts})"
            )
        first = after[0]
        if first.type == "node.stop":
            later = next((e for e in after if e.type == "node.start" and e.ts >= first.ts), None)
            if later is None:
                return (
                    f"no lot.end: the node stopped at {first.ts} "
                    f"({first.body.get('reason', '-')}) and has not started since"
                )
            return (
                f"no lot.end: the node stopped at {first.ts} and restarted at {later.ts}; "
                "nothing of the lot was recorded after the restart"
            )
        down = self.downtime_ending(first)
        since = down.since if down is not None else last_of_lot
        return (
            f"no lot.end: node down from {since} to {first.ts} (no node.stop: killed or "
            "lost power); nothing of the lot was recorded after the restart"
        )

    def why_no_start(self, first_of_lot: str) -> str:
        """Why a lot whose first entry on this feed is at ``first_of_lot`` has no ``lot.start``."""
        before = [e for e in self.lifecycle if e.ts <= first_of_lot]
        if self.first_ts is not None and self.first_ts >= first_of_lot and not before:
            return f"no lot.start: the feed begins at {self.first_ts}, inside the lot"
        starts = [e for e in before if e.type == "node.start"]
        if not starts:
            return f"no lot.start on this feed before the lot's first entry at {first_of_lot}"
        start = starts[-1]
        down = self.downtime_ending(start)
        if down is None:
            return (
                f"no lot.start: the feed begins with the node's start at {start.ts}; the lot "
                f"was already running (first entry of the lot at {first_of_lot})"
            )
        return (
            f"no lot.start: {down.describe()}; the lot began before the restart "
            f"(first entry of the lot at {first_of_lot})"
        )


def _rows(conn: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> list[StoredEntry]:
    try:
        return [StoredEntry.from_row(*row) for row in conn.execute(sql, args)]
    except sqlite3.Error as exc:
        raise StorageError(f"ledger trace failed: {exc}") from exc


def _times(conn: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> list[str]:
    try:
        return [str(row[0]) for row in conn.execute(sql, args)]
    except sqlite3.Error as exc:
        raise StorageError(f"ledger trace failed: {exc}") from exc


def load_runs(conn: sqlite3.Connection, feed: str) -> FeedRuns:
    """Read ``feed``'s starts and stops (the ``entries(type)`` index: a few rows per restart).

    Raises:
        StorageError: the database could not be read.
    """
    lifecycle = _rows(
        conn,
        "SELECT e.feed, e.seq, e.id, e.raw FROM entries e WHERE e.type IN (?, ?) AND +e.feed = ?",
        (*_LIFECYCLE, feed),
    )
    lifecycle.sort(key=lambda e: e.seq)
    # The index column ``ts`` (not the raw) for the feed's ends and a run's last entry: these
    # only place a gap in time, and a damaged entry (verify's business) must not stop a trace.
    ends = _times(
        conn,
        "SELECT * FROM (SELECT ts FROM entries WHERE feed = ? ORDER BY seq LIMIT 1) "
        "UNION ALL SELECT * FROM (SELECT ts FROM entries WHERE feed = ? ORDER BY seq DESC LIMIT 1)",
        (feed, feed),
    )
    downtimes: list[Downtime] = []
    previous: StoredEntry | None = None
    for entry in lifecycle:
        if entry.type == "node.start" and entry.seq > 0:
            run = entry.body.get("previous_run")
            run = run if isinstance(run, dict) else {}
            last_reading = (
                run.get("last_reading") if isinstance(run.get("last_reading"), str) else None
            )
            if previous is not None and previous.type == "node.stop":
                downtimes.append(
                    Downtime(previous.ts, entry.ts, True, entry, previous, last_reading)
                )
            elif isinstance(run.get("last_entry"), str):
                downtimes.append(
                    Downtime(run["last_entry"], entry.ts, False, entry, None, last_reading)
                )
            else:
                before = _times(
                    conn,
                    "SELECT ts FROM entries WHERE feed = ? AND seq = ?",
                    (feed, entry.seq - 1),
                )
                downtimes.append(
                    Downtime(before[0] if before else entry.ts, entry.ts, False, entry, None)
                )
        previous = entry
    return FeedRuns(
        feed=feed,
        lifecycle=tuple(lifecycle),
        first_ts=ends[0] if ends else None,
        last_ts=ends[-1] if ends else None,
        downtimes=tuple(downtimes),
    )
