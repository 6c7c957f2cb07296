"""The Merkle frontier a writer opens its feed with: the stored one, or one rebuilt from the ids.

:func:`stored_frontier` takes the frontier stored with the last batch when the feed's last
checkpoint vouches for it; :func:`rebuild_frontier` reads every id of the feed instead. Used by
:class:`~edge.ledger.store.Ledger` when it opens with a key.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path

from edge.errors import NotCanonical, StorageError
from edge.ledger.entry import CHECKPOINT, checkpoint_message, parse_entry
from edge.ledger.keys import verify_signature
from edge.ledger.merkle import Frontier, ProofError, leaf_hash

__all__ = ["rebuild_frontier", "stored_frontier"]


def stored_frontier(
    conn: sqlite3.Connection, feed: str, end: int, last: bytes | None
) -> Frontier | None:
    """The frontier stored with the last batch, when the feed's last checkpoint vouches for it.

    It must be the tree over exactly the entries that checkpoint covers, give the root the
    checkpoint signed, and the signature must be the feed's; otherwise None (rebuild).
    """
    row = conn.execute(
        # As a blob whatever was stored: a cache must never keep the ledger from opening.
        "SELECT size, CAST(stack AS BLOB) FROM frontiers WHERE feed = ?",
        (feed,),
    ).fetchone()
    if row is None or last is None or type(row[0]) is not int or row[0] + 1 != end:
        return None
    size, stack = row
    try:
        head = parse_entry(last)
        frontier = Frontier.restore(stack, size)
    except (NotCanonical, ProofError, TypeError):
        return None
    body = head.body
    if (
        head.type != CHECKPOINT
        or head.seq != size
        or not isinstance(body, Mapping)
        or body.get("size") != size
        or body.get("head") != head.prev
        or frontier.root().hex() != body.get("root")
    ):
        return None
    sig = body.get("sig")
    message = checkpoint_message(feed, size, str(head.prev), str(body.get("root")))
    if not isinstance(sig, str) or not verify_signature(feed, message, sig):
        return None
    frontier.append(leaf_hash(bytes.fromhex(head.id)))
    return frontier


def rebuild_frontier(conn: sqlite3.Connection, path: Path, feed: str) -> Frontier:
    """The Merkle frontier over every entry of the feed, from their ids (reads them all)."""
    frontier = Frontier()
    for seq, entry_id in conn.execute(
        "SELECT seq, id FROM entries WHERE feed = ? ORDER BY seq", (feed,)
    ):
        if seq != frontier.size:
            raise StorageError(f"ledger {path}: feed {feed[:16]} has a gap at seq {frontier.size}")
        frontier.append(leaf_hash(bytes.fromhex(entry_id)))
    return frontier
