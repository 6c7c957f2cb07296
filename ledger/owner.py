"""Whose file is this? The ``owner`` table names the one feed a ledger database is written for.

The first writer claims the file for its key's feed; any other key is refused at open, so a node
started with the wrong key, or pointed at another node's database, stops with one line instead
of starting a second feed in it (or writing under a name that is not its own). Verify uses the
owner to know which feed's readings blocks must be in this file (peers' feeds arrive without
their readings).

A file made before the table existed gets its owner on the first open with a key: the key's feed
when the file holds it or holds no entries at all; a file holding only other feeds is refused.
"""

from __future__ import annotations

import sqlite3

from edge.errors import StorageError

__all__ = ["claim_owner", "read_owner"]


def read_owner(conn: sqlite3.Connection) -> str | None:
    """The feed that owns the database (None: not claimed yet, or a file older than the table)."""
    try:
        row = conn.execute("SELECT feed FROM owner WHERE one = 1").fetchone()
    except sqlite3.OperationalError:  # no owner table: a file opened read-only, never migrated
        return None
    return None if row is None else str(row[0])


def claim_owner(conn: sqlite3.Connection, where: str, feed: str) -> None:
    """Claim the database for ``feed``, or check that it is already ``feed``'s.

    Raises:
        StorageError: the file belongs to another feed (wrong key, or another node's file).
    """
    owner = read_owner(conn)
    if owner is None:
        # Range seeks on the (feed, seq) key: any feed other than ours, without a scan.
        ours = conn.execute("SELECT 1 FROM entries WHERE feed = ? LIMIT 1", (feed,)).fetchone()
        other = conn.execute(
            "SELECT feed FROM entries WHERE feed < ? UNION ALL "
            "SELECT * FROM (SELECT feed FROM entries WHERE feed > ? ORDER BY feed LIMIT 1) LIMIT 1",
            (feed, feed),
        ).fetchone()
        if ours is None and other is not None:
            raise StorageError(
                f"{where}: holds feed {str(other[0])[:16]}.., not this node key's feed "
                f"{feed[:16]}..: wrong node key, or another node's database"
            )
        conn.execute("INSERT OR IGNORE INTO owner(one, feed) VALUES (1, ?)", (feed,))
        owner = read_owner(conn)
    if owner != feed:
        raise StorageError(
            f"{where}: belongs to feed {str(owner)[:16]}.., not this node key's feed "
            f"{feed[:16]}..: wrong node key, or another node's database"
        )
