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
from typing import TYPE_CHECKING

import orjson

from edge.errors import StorageError
from edge.failpoints import hit
from edge.ledger.readings_summary import UPSERT as SUMMARY_UPSERT
from edge.ledger.readings_summary import SummaryRow
from edge.ledger.summary_retention import SummaryCut, prune_minute_summaries

if TYPE_CHECKING:
    from edge.ledger.store import Batch

__all__ = [
    "BatchParams",
    "BlockRows",
    "StagedRow",
    "StateRow",
    "apply_batch",
    "batch_params",
    "block_rows",
    "prepare",
    "prune_readings",
    "reading_rowid",
    "transaction",
    "write_batch",
]

#: (feed, first seq, joined raws, meta JSON, lots JSON, size, head, root, sig, frontier):
#: see _INSERT. The last five are None for an *unsigned* batch (entries without a checkpoint,
#: journaled until a later batch's checkpoint signs them: see :mod:`edge.ledger.journal`).
BatchParams = tuple[
    str, int, bytes, bytes, bytes, int | None, str | None, str | None, str | None, bytes | None
]
#: A closed readings block: (block, first_ts, last_ts, count, sha256, digest entry id, encoded
#: readings, summary rows): its ``reading_blocks`` and ``reading_data`` rows and what it adds to
#: ``reading_summaries``.
BlockRows = tuple[int, str, str, int, str, str, bytes, tuple[SummaryRow, ...]]
#: Raw readings of the open block staged with a batch: (block, position of the first, encoded).
StagedRow = tuple[int, int, bytes]
#: The engine state written with a batch: (name, feed, size it reflects, state bytes).
StateRow = tuple[str, str, int, bytes]

#: Readings per block are below this (a block's rowids do not overlap the next one's).
_ROWIDS_PER_BLOCK = 1 << 32


def reading_rowid(block: int, position: int) -> int:
    """The legacy ``readings`` rowid of the reading at ``position`` (0-based) of ``block``.

    Files written before migration 8 hold raw readings as rows keyed so; ordering by rowid
    keeps a block's arrival order.
    """
    return block * _ROWIDS_PER_BLOCK + position


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
    SELECT NEW.feed, NEW.size, NEW.head, NEW.root, NEW.sig WHERE NEW.sig IS NOT NULL;
    INSERT OR REPLACE INTO frontiers(feed, size, stack)
    SELECT NEW.feed, NEW.size, NEW.frontier WHERE NEW.sig IS NOT NULL;
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


def batch_params(batch: Batch) -> BatchParams | None:
    """What :func:`write_batch` needs of ``batch``'s entries (None for a batch without entries)."""
    entries = batch.entries
    if not entries:
        return None
    meta = []
    offset = 1  # substr counts from 1
    for e in entries:
        size = len(e.raw)
        meta.append((offset, size, e.id, e.prev, e.ts, e.type, e.actor))
        offset += size
    lots = [(e.seq, lot) for e in entries if e.lots for lot in e.lots]
    if batch.checkpoint is None:  # unsigned: a later batch's checkpoint covers these entries
        raws = b"".join([e.raw for e in entries])
        return (entries[0].feed, entries[0].seq, raws, _dumps(meta), _dumps(lots),
                None, None, None, None, None)  # fmt: skip
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
    """The ``reading_blocks`` rows of the blocks ``batch`` closes, for :func:`write_batch`."""
    return [
        (
            number,
            block.first_ts,
            block.last_ts,
            block.count,
            block.sha256,
            entry_id,
            block.data,
            block.summaries,
        )
        for number, block, entry_id in batch.blocks
    ]


def write_batch(
    conn: sqlite3.Connection,
    params: BatchParams | None,
    blocks: Sequence[BlockRows] = (),
    readings: Sequence[StagedRow] = (),
    state: StateRow | None = None,
) -> None:
    """Write one batch in one transaction; COMMIT returns once durable.

    A batch holds any of: entries with their checkpoint (``params``), raw readings of the open
    block (``readings``), the rows of the blocks it closes (``blocks``: their digest entries are
    among its entries), and the engine state that reflects its events (``state``). All of it
    lands, or none of it.

    The entries must start where the feed ends: a batch whose predecessor failed must not land
    (it would leave a gap), nor one written twice. Readings and state may be written again
    (the readings' rowids and the state's name are keys).

    Raises:
        sqlite3.Error: the transaction failed and was rolled back.
        StorageError: the batch is not next in its feed (nothing was written).
    """
    try:
        if not blocks and not readings and state is None:
            if params is not None:
                # Outside an explicit transaction the statement is its own: SQLite then keeps
                # no statement journal for it (measured here: ~15 % less CPU per batch).
                conn.execute(_INSERT, params)
                hit("commit.after_commit")
            return
        with transaction(conn):
            hit("commit.begin")
            _statements(conn, params, blocks, readings, state, failpoints=True)
            hit("commit.before_commit")
        hit("commit.after_commit")
    except sqlite3.IntegrityError as exc:
        if "not next" in str(exc):
            assert params is not None
            raise StorageError(f"batch at seq {params[1]} is not next in its feed") from exc
        raise


def _statements(
    conn: sqlite3.Connection,
    params: BatchParams | None,
    blocks: Sequence[BlockRows],
    readings: Sequence[StagedRow],
    state: StateRow | None,
    *,
    failpoints: bool = False,
) -> None:
    """A batch's statements, inside the caller's transaction."""
    if params is not None:
        conn.execute(_INSERT, params)
        if failpoints:
            hit("commit.entries")
    if readings:
        # A piece of a block closed since (a journal replaying an older batch) is not staged
        # again: the closed block's data holds it.
        conn.executemany(
            "INSERT OR IGNORE INTO reading_stage(block, start, data) SELECT ?1, ?2, ?3"
            " WHERE NOT EXISTS (SELECT 1 FROM reading_blocks WHERE block = ?1)",
            readings,
        )
    if blocks:
        conn.executemany(
            "INSERT INTO reading_blocks(block, first_ts, last_ts, count, sha256, entry, bytes) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(*b[:6], len(b[6])) for b in blocks],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO reading_data(block, data) VALUES (?, ?)",
            [(b[0], b[6]) for b in blocks],
        )
        closed = [(b[0],) for b in blocks]
        conn.executemany("DELETE FROM reading_stage WHERE block = ?", closed)
        # a block left open as rows by a version before migration 8 is now stored compressed
        conn.executemany("DELETE FROM readings WHERE block = ?", closed)
        conn.executemany(SUMMARY_UPSERT, [row for b in blocks for row in b[7]])
    if failpoints:
        hit("commit.readings")
    if state is not None:
        conn.execute(
            "INSERT OR REPLACE INTO engine_state(name, feed, size, state) VALUES (?, ?, ?, ?)",
            state,
        )


def apply_batch(
    conn: sqlite3.Connection,
    params: BatchParams | None,
    blocks: Sequence[BlockRows] = (),
    readings: Sequence[StagedRow] = (),
    state: StateRow | None = None,
) -> bool:
    """Apply a batch moved from the commit journal, inside the caller's transaction.

    A batch whose entries the database already holds was moved before (the journal was not
    truncated after): its entries and block rows are skipped (False), but its readings and
    state are written again, like those of a batch without entries. Both are keyed (readings by
    rowid, ignored when present; the state by name, replaced), so the records replayed in order
    end in the state of the last one, as the first move did. (Skipping the state of a batch
    with entries would leave the state of an earlier batch without entries: a stored state
    behind its ledger.)

    Raises:
        StorageError: the batch is not next in its feed, or is not a batch.
        sqlite3.Error: SQLite failed.
    """
    try:
        if params is not None:
            row = conn.execute(
                "SELECT max(seq) FROM entries WHERE feed = ?", (params[0],)
            ).fetchone()
            end = 0 if row[0] is None else int(row[0]) + 1
            if params[1] < end:
                _statements(conn, None, (), readings, state)
                return False
        _statements(conn, params, blocks, readings, state, failpoints=True)
    except sqlite3.IntegrityError as exc:
        if "not next" in str(exc) and params is not None:
            raise StorageError(f"journal batch at seq {params[1]} is not next in its feed") from exc
        raise
    except (TypeError, ValueError, IndexError, sqlite3.ProgrammingError) as exc:
        raise StorageError(f"a journal record is not a batch: {exc}") from exc
    return True


def prune_readings(conn: sqlite3.Connection, blocks: Sequence[int] | SummaryCut) -> int:
    """Delete the raw readings of ``blocks`` and mark them pruned, in one transaction.

    The caller records the prune on the ledger (a durable ``readings.prune`` entry naming these
    blocks) before calling this; see :class:`edge.ledger.readings_store.PrunePlan`.

    Both stores go: the compressed block (``reading_data``) and, in files written before
    migration 8, its rows (``readings``). Summaries stay.

    A :class:`~edge.ledger.summary_retention.SummaryCut` instead deletes old minute summaries
    (not recorded on the ledger: see that module). It comes the way blocks do, as the commit
    process's ``prune`` request, so it runs between commits on the connection that writes,
    with the request protocol unchanged.

    Returns:
        The number of readings (or, for a cut, minute-summary rows) deleted.
    """
    if isinstance(blocks, SummaryCut):
        with transaction(conn):
            return prune_minute_summaries(conn, blocks.before)
    if not blocks:
        return 0
    with transaction(conn):
        deleted = 0
        for block in blocks:
            deleted += conn.execute("DELETE FROM readings WHERE block = ?", (block,)).rowcount
            if conn.execute("DELETE FROM reading_data WHERE block = ?", (block,)).rowcount:
                row = conn.execute(
                    "SELECT count FROM reading_blocks WHERE block = ?", (block,)
                ).fetchone()
                deleted += int(row[0]) if row else 0
            conn.execute("UPDATE reading_blocks SET pruned = 1 WHERE block = ?", (block,))
    return deleted


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` .. ``COMMIT``; ROLLBACK when anything in it fails."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
