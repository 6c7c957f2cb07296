"""Writing one batch to the database: the SQL, its parameters, one durable transaction.

Shared by the two places a batch is written from: :meth:`edge.ledger.store.Ledger.write` in
the node's own process (synchronous commits, and draining at shutdown) and the commit process
(:mod:`edge.ledger.commit_process`) that the async writer hands its batches to. This module
imports only what that process needs, so it starts fast.

A batch travels as :data:`BatchParams` (plain values: they are pickled to the commit process)
and is written by ONE statement: an INSERT into a connection-local view whose INSTEAD OF trigger
inserts the entries, their lot rows, the checkpoint row and the feed's Merkle frontier. The entries travel as one blob of
their canonical bytes cut by offsets (``substr`` on a blob counts bytes), so ``raw`` is stored
byte for byte.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import orjson

from edge.errors import StorageError

if TYPE_CHECKING:
    from edge.ledger.store import Batch

__all__ = [
    "BatchParams",
    "BlockRows",
    "batch_params",
    "block_rows",
    "prepare",
    "prune_readings",
    "write_batch",
]

#: (feed, first seq, joined raws, meta JSON, lots JSON, size, head, root, sig, frontier):
#: see _INSERT.
BatchParams = tuple[str, int, bytes, bytes, bytes, int, str, str, str, bytes]
#: A readings block to store with its batch: (block, rows, first_ts, last_ts, sha256, entry id).
BlockRows = tuple[int, Sequence[tuple[Any, ...]], str, str, str, str]

_VIEW = """
CREATE TEMP VIEW IF NOT EXISTS batch_in(
    feed, first, raws, meta, lots, size, head, root, sig, frontier
) AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
"""
_TRIGGER = """
CREATE TEMP TRIGGER IF NOT EXISTS batch_in_insert INSTEAD OF INSERT ON batch_in
BEGIN
    SELECT RAISE(ABORT, 'batch is not next in its feed')
    WHERE NEW.first != coalesce((SELECT max(seq) FROM entries WHERE feed = NEW.feed) + 1, 0);
    INSERT INTO entries(feed, seq, id, prev, ts, type, actor, raw)
    SELECT NEW.feed, NEW.first + m.key, m.value ->> 2, m.value ->> 3, m.value ->> 4,
           m.value ->> 5, m.value ->> 6, substr(NEW.raws, m.value ->> 0, m.value ->> 1)
    FROM json_each(NEW.meta) AS m;
    INSERT INTO entry_lots(feed, seq, lot)
    SELECT NEW.feed, l.value ->> 0, l.value ->> 1 FROM json_each(NEW.lots) AS l;
    INSERT INTO checkpoints(feed, size, head, root, sig)
    VALUES (NEW.feed, NEW.size, NEW.head, NEW.root, NEW.sig);
    INSERT OR REPLACE INTO frontiers(feed, size, stack) VALUES (NEW.feed, NEW.size, NEW.frontier);
END
"""
_INSERT = (
    "INSERT INTO batch_in(feed, first, raws, meta, lots, size, head, root, sig, frontier) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_dumps = orjson.dumps


def prepare(conn: sqlite3.Connection) -> None:
    """Create the batch view and trigger on ``conn`` (TEMP: only this connection writes batches)."""
    conn.execute(_VIEW)
    conn.execute(_TRIGGER)


def batch_params(batch: Batch) -> BatchParams:
    """What :func:`write_batch` needs of ``batch``."""
    entries = batch.entries
    meta = []
    offset = 1  # substr counts from 1
    for e in entries:
        size = len(e.raw)
        meta.append((offset, size, e.id, e.prev, e.ts, e.type, e.actor))
        offset += size
    lots = [(e.seq, lot) for e in entries if e.lots for lot in e.lots]
    _, size, head, root, sig = batch.checkpoint
    return (
        entries[0].feed,
        entries[0].seq,
        b"".join([e.raw for e in entries]),
        _dumps(meta),
        _dumps(lots),
        size,
        head,
        root,
        sig,
        batch.frontier,
    )


def block_rows(batch: Batch) -> list[BlockRows]:
    """The readings blocks of ``batch`` as plain values, for :func:`write_batch`."""
    return [
        (number, block.rows, block.first_ts, block.last_ts, block.sha256, entry_id)
        for number, block, entry_id in batch.blocks
    ]


def write_batch(
    conn: sqlite3.Connection, params: BatchParams, blocks: Sequence[BlockRows] = ()
) -> None:
    """Write one batch (and its readings blocks) in one transaction; COMMIT returns once durable.

    The batch must start where the feed ends: a batch whose predecessor failed must not land
    (it would leave a gap), nor one written twice.

    Raises:
        sqlite3.Error: the transaction failed and was rolled back.
        StorageError: the batch is not next in its feed (nothing was written).
    """
    try:
        if not blocks:
            # Outside an explicit transaction the statement is its own: SQLite then keeps no
            # statement journal for it (measured here: ~15 % less CPU per batch).
            conn.execute(_INSERT, params)
            return
        with _transaction(conn):
            conn.execute(_INSERT, params)
            for number, rows, first_ts, last_ts, sha256, entry_id in blocks:
                conn.executemany(
                    "INSERT INTO readings(block, point, ts, value, quality, unit) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(number, *row) for row in rows],
                )
                conn.execute(
                    "INSERT INTO reading_blocks(block, first_ts, last_ts, count, sha256, entry) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (number, first_ts, last_ts, len(rows), sha256, entry_id),
                )
    except sqlite3.IntegrityError as exc:
        if "not next" in str(exc):
            raise StorageError(f"batch at seq {params[1]} is not next in its feed") from exc
        raise


def prune_readings(conn: sqlite3.Connection, blocks: Sequence[int]) -> int:
    """Delete the raw readings of ``blocks`` and mark them pruned, in one transaction.

    The caller records the prune on the ledger (a durable ``readings.prune`` entry naming these
    blocks) before calling this; see :class:`edge.ledger.readings_store.PrunePlan`.

    Returns:
        The number of readings deleted.
    """
    if not blocks:
        return 0
    with _transaction(conn):
        deleted = 0
        for block in blocks:
            deleted += conn.execute("DELETE FROM readings WHERE block = ?", (block,)).rowcount
            conn.execute("UPDATE reading_blocks SET pruned = 1 WHERE block = ?", (block,))
    return deleted


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` .. ``COMMIT``; ROLLBACK when anything in it fails."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
