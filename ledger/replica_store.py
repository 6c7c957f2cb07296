"""Writing a checked batch of a peer's feed: one transaction, or nothing (and the held tree).

Used by :class:`~edge.ledger.replica.Replica` after :func:`~edge.ledger.replica_check.check_batch`
passed. The feed's end is read again inside the transaction: the node's own writer (its commit
process) may have appended to our own feed since the check, and then the batch is checked again
instead of written beside it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from edge.ledger.merkle import Frontier, leaf_hash
from edge.ledger.replica_check import Checked

__all__ = ["held_frontier", "store_checked"]


def store_checked(
    conn: sqlite3.Connection,
    feed: str,
    expected: tuple[int, str | None],
    checked: Checked,
    end_of: Callable[[str], tuple[int, str | None]],
) -> bool:
    """Write ``checked`` (entries, lot rows, checkpoint rows, the feed's frontier) at once.

    Args:
        conn: the replica's connection (autocommit mode).
        feed: the batch's feed.
        expected: (end, id of the last entry) of the feed when the batch was checked.
        checked: the checked batch.
        end_of: reads a feed's (end, last id) on ``conn``.

    Returns:
        False (nothing written) when the feed no longer ends where it did at the check.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        if end_of(feed) != expected:
            conn.execute("ROLLBACK")
            return False
        conn.executemany(
            "INSERT INTO entries(feed, seq, id, prev, ts, type, actor, raw) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            checked.rows,
        )
        if checked.lots:
            conn.executemany(
                "INSERT OR IGNORE INTO entry_lots(feed, seq, lot) VALUES (?, ?, ?)", checked.lots
            )
        # A row may exist already: the checkpoints of a feed whose tail was cut stay (the
        # rollback guard); a differing one is named by verify.
        conn.executemany(
            "INSERT OR IGNORE INTO checkpoints(feed, size, head, root, sig) VALUES (?, ?, ?, ?, ?)",
            checked.checkpoints,
        )
        size, stack = checked.stored_frontier
        conn.execute(
            "INSERT OR REPLACE INTO frontiers(feed, size, stack) VALUES (?, ?, ?)",
            (feed, size, stack),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return True


def held_frontier(conn: sqlite3.Connection, feed: str, size: int) -> Frontier | None:
    """The Merkle frontier over the held entries ``0..size-1`` of ``feed`` (None: a gap)."""
    frontier = Frontier()
    for seq, entry_id in conn.execute(
        "SELECT seq, id FROM entries WHERE feed = ? AND seq < ? ORDER BY seq", (feed, size)
    ):
        if seq != frontier.size:
            return None
        frontier.append(leaf_hash(bytes.fromhex(entry_id)))
    return frontier if frontier.size == size else None
