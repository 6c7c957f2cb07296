"""Signing a feed's end: the checkpoint entry over every entry before it.

Two places sign: :meth:`edge.ledger.store.Ledger.cut` (a batch's checkpoint, built on the event
loop) and :func:`seal_tail`, which a writer opening the ledger runs inside the transaction that
moves the commit journal in. Why the second: with the commit journal, small batches are
journaled *unsigned* (entries chained by ``prev``, durable, but not yet under a signature) and
a later batch's checkpoint signs them all: one checkpoint per move into SQLite instead of one per
alarm, half the rows a move writes (SD-card wear, docs/design.md). A node killed before that
later batch leaves unsigned records in the journal; the next opener moves them in and signs
them in the same transaction, so the database never ends in unsigned entries.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from edge.failpoints import hit
from edge.ledger.batch import Batch
from edge.ledger.commit import apply_batch, batch_params
from edge.ledger.entry import CHECKPOINT, Entry, build_entry, checkpoint_message, parse_entry
from edge.ledger.journal import Journal, move
from edge.ledger.keys import NodeKey
from edge.ledger.merkle import Frontier, leaf_hash
from edge.ledger.stored_frontier import rebuild_frontier, stored_frontier

__all__ = ["build_checkpoint", "move_and_seal", "seal_tail"]


def build_checkpoint(
    key: NodeKey, frontier: Frontier, head: Entry, ts: float
) -> tuple[Entry, tuple[str, int, str, str, str], bytes]:
    """The checkpoint entry after ``head`` over the ``frontier`` (every entry up to ``head``).

    Appends the checkpoint's own leaf to ``frontier``.

    Returns:
        (the checkpoint entry, its ``checkpoints`` row, the frontier packed before the
        checkpoint's leaf: what the ``frontiers`` row stores).
    """
    feed = key.feed
    size = frontier.size
    root = frontier.root().hex()
    packed = frontier.packed()
    sig = key.sign(checkpoint_message(feed, size, head.id, root))
    checkpoint = build_entry(
        feed,
        size,
        head.id,
        ts,
        CHECKPOINT,
        {"size": size, "head": head.id, "root": root, "sig": sig},
        (),
        "",
        (),
    )
    frontier.append(leaf_hash(bytes.fromhex(checkpoint.id)))
    return checkpoint, (feed, size, head.id, root, sig), packed


def _frontier(conn: sqlite3.Connection, path: Path, feed: str, end: int) -> Frontier:
    """The frontier over the feed's first ``end`` entries: the stored one extended, or rebuilt."""
    row = conn.execute("SELECT size FROM frontiers WHERE feed = ?", (feed,)).fetchone()
    if row is not None and type(row[0]) is int and row[0] < end:
        signed = conn.execute(
            "SELECT raw FROM entries WHERE feed = ? AND seq = ?", (feed, row[0])
        ).fetchone()
        frontier = stored_frontier(conn, feed, row[0] + 1, None if signed is None else signed[0])
        if frontier is not None:
            for seq, entry_id in conn.execute(
                "SELECT seq, id FROM entries WHERE feed = ? AND seq > ? ORDER BY seq",
                (feed, row[0]),
            ):
                if seq != frontier.size:
                    break  # a gap: the rebuild names it
                frontier.append(leaf_hash(bytes.fromhex(entry_id)))
            if frontier.size == end:
                return frontier
    return rebuild_frontier(conn, path, feed)


def move_and_seal(journal: Journal, conn: sqlite3.Connection, key: NodeKey, path: Path) -> None:
    """Move the journal in, signing what it holds unsigned (a killed run's), in one transaction.

    What a writer opening the ledger does first (:class:`~edge.ledger.store.Ledger`).
    """
    with journal.locked():
        move(journal, conn, seal=lambda c: seal_tail(c, key, path, time.time()))


def seal_tail(conn: sqlite3.Connection, key: NodeKey, path: Path, now: float) -> bool:
    """Append a checkpoint over ``key``'s feed when it ends in unsigned entries (in a transaction).

    Run by the writer opening the ledger, inside the transaction that moves the commit journal
    in (:func:`edge.ledger.journal.move`'s ``seal``).

    Returns:
        True when a checkpoint was appended.

    Raises:
        StorageError: the feed has a gap (from :func:`rebuild_frontier`).
        NotCanonical: the last entry is damaged.
    """
    feed = key.feed
    row = conn.execute(
        "SELECT raw FROM entries WHERE feed = ? ORDER BY seq DESC LIMIT 1", (feed,)
    ).fetchone()
    if row is None:
        return False
    head = parse_entry(bytes(row[0]))
    if head.type == CHECKPOINT:
        return False
    frontier = _frontier(conn, path, feed, head.seq + 1)
    checkpoint, signed, packed = build_checkpoint(key, frontier, head, now)
    batch = Batch(entries=(checkpoint,), blocks=(), checkpoint=signed, frontier=packed)
    apply_batch(conn, batch_params(batch))
    hit("journal.sealed")
    return True
