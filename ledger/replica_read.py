"""Reading a run of a feed for peers: entries from a seq up to a checkpoint (the unit of sync).

What :meth:`edge.ledger.replica.Replica.read_range` reads (a range request's answer, a push read
from the database): a run that ends on a checkpoint entry, so a peer can verify and store it
alone. Unsigned entries (after the feed's last checkpoint) are never served.
"""

from __future__ import annotations

import sqlite3

from edge.ledger.entry import CHECKPOINT

__all__ = ["read_range"]


def read_range(
    conn: sqlite3.Connection, feed: str, start: int, max_entries: int, max_bytes: int
) -> list[bytes]:
    """Raw entries of ``feed`` from ``start``, ending on a checkpoint entry.

    The longest such run within ``max_entries`` and ``max_bytes``; when the first checkpoint
    at or after ``start`` lies beyond them, the run up to it all the same (a writer's batch is
    bounded). Empty when nothing is held from ``start``, or no checkpoint follows it.
    """
    if start < 0 or max_entries < 1:
        return []
    rows = conn.execute(
        "SELECT seq, type, raw FROM entries WHERE feed = ? AND seq >= ? ORDER BY seq LIMIT ?",
        (feed, start, max_entries),
    ).fetchall()
    out: list[bytes] = []
    cut = 0  # len(out) at the last checkpoint seen within the limits
    size = 0
    for seq, kind, raw in rows:
        if seq != start + len(out):
            break  # a gap (a damaged file): serve what is whole
        size += len(raw)
        if size > max_bytes and cut:
            break
        out.append(bytes(raw))
        if kind == CHECKPOINT:
            cut = len(out)
    if cut == 0 and len(out) == len(rows) == max_entries:
        # No checkpoint within the limits: go on to the first one.
        row = conn.execute(
            "SELECT min(seq) FROM entries WHERE feed = ? AND seq >= ? AND type = ?",
            (feed, start + len(out), CHECKPOINT),
        ).fetchone()
        if row is not None and row[0] is not None and row[0] - start < 10 * max_entries:
            more = conn.execute(
                "SELECT raw FROM entries WHERE feed = ? AND seq >= ? AND seq <= ? ORDER BY seq",
                (feed, start + len(out), row[0]),
            ).fetchall()
            if len(out) + len(more) == row[0] - start + 1:
                out.extend(bytes(r[0]) for r in more)
                cut = len(out)
    return out[:cut]
