"""The SQLite store and its single writer: :class:`Ledger` (and its single-writer lock).

What a transaction writes, :class:`~edge.ledger.batch.Batch`, is in :mod:`edge.ledger.batch`
(re-exported here); the Merkle frontier a writer opens with, in :mod:`edge.ledger.stored_frontier`;
a writer's reads of its own stored feed (:meth:`Ledger.stored_end`, :meth:`Ledger.latest`, ...), in
:mod:`edge.ledger.store_reads`.

Durability: WAL journal with ``synchronous=FULL``, so a COMMIT returns only after the WAL is
fsynced; an entry reported committed survives a power cut. Group commit: entries appended
between two :meth:`Ledger.commit` calls go in ONE transaction together with a signed
checkpoint entry that covers them (and everything before), so the fsync and the Ed25519
signature are paid once per batch, not per entry.

One writer per feed: opening with a key takes an exclusive ``flock`` on ``<db>.lock``; a second
writer fails at once instead of forking the feed.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from edge.errors import LedgerClosed, StorageError, map_exceptions
from edge.ledger.batch import Batch, _request
from edge.ledger.commit import StagedRow, StateRow, prepare, prune_readings, write_batch
from edge.ledger.database import SQL_ERRORS, connect
from edge.ledger.entry import Entry, build_entry, parse_ts
from edge.ledger.journal import Journal, move, write_journaled
from edge.ledger.keys import NodeKey
from edge.ledger.merkle import Frontier, leaf_hashes
from edge.ledger.open_block import OpenBlock
from edge.ledger.owner import claim_owner
from edge.ledger.readings_store import ReadingsBlock, plan_prune
from edge.ledger.seal import build_checkpoint, move_and_seal
from edge.ledger.store_reads import FeedReads
from edge.ledger.writer_lock import take_writer_lock as _lock
from edge.readings import Reading

__all__ = ["DB_FILE", "Batch", "Ledger", "connect"]  # Batch: from edge.ledger.batch

#: File name of the ledger database inside the node's data directory.
DB_FILE = "ledger.db"


_fromhex = bytes.fromhex


log = logging.getLogger("edge.ledger")


class Ledger(FeedReads):
    """A synchronous ledger handle: the writer of one feed (with a key) or a reader.

    Appending is split in three so the async :class:`~edge.ledger.writer.LedgerWriter` can
    overlap CPU and disk: :meth:`append` builds and chains an entry, :meth:`cut` closes the
    pending entries into a signed :class:`Batch` (both on the event loop), the batch is written
    (by the commit process for the async writer; by :meth:`write` here otherwise) and
    :meth:`written` records it. :meth:`commit` does all of it for synchronous callers.

    Opening with a key takes the feed's Merkle frontier from the ``frontiers`` table when the
    last checkpoint vouches for it (its signed root); otherwise it reads every id of the feed
    to rebuild it (about 3 s per 400,000 entries here).
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        key: NodeKey | None,
        lock_fd: int | None,
        journal: Journal | None = None,
    ) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.path = path
        self.key = key
        self._lock_fd = lock_fd
        self._journal = journal  # the commit journal (writers only): see move_journal
        self._pending: list[Entry] = []  # appended, not yet cut into a batch
        self._pending_blocks: list[tuple[int, ReadingsBlock, str]] = []
        self._pending_rows: list[StagedRow] = []  # of blocks closed since the last cut
        self.closed_bytes = 0  #: compressed bytes of the blocks closed since opened (disk budget)
        self._state_name = ""
        self._state_source: Callable[[], bytes] | None = None
        self._state_changed = False
        self._open_block = OpenBlock(1)
        self._unwritten: deque[Batch] = deque()  # cut and chained, not yet durable
        self._frontier = Frontier()  # over every entry cut into a batch (pending: at the cut)
        #: True when opening had to rebuild the Merkle frontier from every id of the feed
        #: (no usable stored frontier); False when the stored one was vouched for.
        self.frontier_rebuilt = False
        self._unsigned = 0  # entries cut into batches without a checkpoint since the last one
        self._seq = 0  # seq of the next entry built
        self._tip: Entry | None = None  # the last entry built: the next one chains to it
        self._head: Entry | None = None  # the last durable entry
        self._size = 0  # durable entries
        if key is not None:
            with map_exceptions(SQL_ERRORS, f"ledger {path}"):
                claim_owner(conn, f"ledger {path}", key.feed)  # never write into another's file
                # Connection-local (TEMP): only the writer's connection writes batches.
                prepare(conn)
            if journal is not None:  # what the last run journaled is part of the feed
                where = f"ledger {path}: move the commit journal"
                with map_exceptions(SQL_ERRORS, where):
                    move_and_seal(journal, conn, key, path)
            self._load_own_feed(key.feed)

    @classmethod
    def open(cls, path: str | os.PathLike[str], key: NodeKey | None = None) -> Ledger:
        """Open (creating and migrating) the database at ``path``.

        Args:
            path: the database file (created with its directory if missing).
            key: the node key; required to append. Its public key names the feed.

        Raises:
            StorageError: the database cannot be opened, or another process writes to it.
            RollbackRefused: the feed in the file is shorter than a checkpoint recorded for it
                (the file was rolled back or truncated): appending would fork the feed.
        """
        path = Path(path)
        lock_fd: int | None = None
        journal: Journal | None = None
        if key is not None:
            lock_fd = _lock(path)
        conn: sqlite3.Connection | None = None
        try:
            conn = connect(path)
            if key is not None:
                journal = Journal(path)
            return cls(conn, path, key, lock_fd, journal)
        except BaseException:
            if conn is not None:
                conn.close()
            if journal is not None:
                journal.close()
            if lock_fd is not None:
                os.close(lock_fd)
            raise

    # -- state -----------------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        """The open connection (for readers: query, trace, export)."""
        if self._conn is None:
            raise LedgerClosed(f"ledger {self.path} is closed")
        return self._conn

    def move_journal(self) -> int:
        """Move the commit journal's records into the database now (writers; readers: 0).

        The commit process journals small batches (:mod:`edge.ledger.journal`) and moves them
        in bulk; the node's own reads of its ledger call this first. Entries the journal holds
        unsigned stay there (the async writer signs them within ``journal_age``; to see them
        now, :meth:`LedgerWriter.sync`). Safe while the commit process runs (the journal's lock
        orders the two).

        Returns:
            The number of journal records applied.

        Raises:
            StorageError: the journal is damaged or SQLite failed (the journal is kept).
        """
        journal = self._journal
        if journal is None:
            return 0
        where = f"ledger {self.path}: move the commit journal"
        with map_exceptions(SQL_ERRORS, where), journal.locked():
            return move(journal, self.conn)

    @property
    def lock_fd(self) -> int | None:
        """The file descriptor holding the single-writer lock (None for a reader)."""
        return self._lock_fd

    @property
    def head(self) -> Entry | None:
        """The last committed entry of our feed (None when empty or opened without a key)."""
        return self._head

    @property
    def size(self) -> int:
        """Committed entries in our feed (checkpoints included)."""
        return self._size

    @property
    def pending(self) -> int:
        """Entries appended but not yet durable (in no batch, or in a batch not yet written)."""
        return len(self._pending) + sum(len(b.entries) for b in self._unwritten)

    @property
    def unsigned(self) -> int:
        """Entries cut into batches without a checkpoint since the last checkpoint."""
        return self._unsigned

    @property
    def closes_blocks(self) -> bool:
        """Whether the next cut closes readings blocks (a bulk batch: their rows go with it)."""
        return bool(self._pending_blocks)

    @property
    def uncut(self) -> int:
        """Entries appended since the last :meth:`cut` (in no batch yet)."""
        return len(self._pending)

    @property
    def dirty(self) -> bool:
        """Whether anything (entries, readings, a state) waits for the next :meth:`cut`."""
        return bool(
            self._pending or self._pending_rows or self._open_block.unstaged or self._state_changed
        )

    @property
    def open_block(self) -> OpenBlock:
        """The readings block being filled (after opening: the one a killed run left open)."""
        return self._open_block

    @property
    def unwritten(self) -> list[Batch]:
        """Batches cut but not yet durable, oldest first (a snapshot)."""
        return list(self._unwritten)

    # -- writing ---------------------------------------------------------------------------

    def append(
        self,
        type: str,
        body: Mapping[str, Any],
        *,
        ts: float,
        lots: Sequence[str] = (),
        actor: str = "",
        refs: Sequence[str] = (),
    ) -> Entry:
        """Add an entry to the pending batch; it is durable only after :meth:`commit`.

        Raises:
            NotCanonical: the entry has content outside the hashable subset.
            LedgerClosed: the ledger was closed.
            StorageError: the ledger was opened without a key.
        """
        key = self.key
        if key is None or self._conn is None:
            key = self._writer_key()  # raises
        prev = self._tip
        # The Merkle leaves are hashed at the cut, in one loop over the batch.
        entry = build_entry(
            key.feed, self._seq, prev.id if prev else None, ts, type, body, lots, actor, refs
        )
        self._pending.append(entry)
        self._seq += 1
        self._tip = entry
        return entry

    def add_readings(self, readings: Sequence[Reading]) -> None:
        """Add raw readings to the open block; the next batch stores them (durable with it)."""
        self._writer_key()
        self._open_block.add(readings)

    def close_block(self, *, ts: float | None = None) -> Entry | None:
        """Close the open block: append its ``readings.digest`` entry (pending); None if empty.

        Args:
            ts: the digest entry's time; default the block's last reading's.
        """
        block = self._open_block
        if not len(block):
            return None
        closed = block.close()
        number = block.number
        entry = self.append(
            "readings.digest",
            closed.digest_body(number),
            ts=ts if ts is not None else parse_ts(closed.last_ts),
        )
        # no take(): the closing batch stores the whole block (and drops its staged pieces)
        self.closed_bytes += len(closed.data)
        self._pending_blocks.append((number, closed, entry.id))
        self._open_block = OpenBlock(number + 1)
        return entry

    def append_readings(self, readings: Sequence[Reading], *, ts: float | None = None) -> Entry:
        """Store a block of raw readings and append its ``readings.digest`` entry (pending).

        Readings already in the open block (:meth:`add_readings`) go in the same block.

        Args:
            readings: the block, in arrival order (at least one).
            ts: the digest entry's time; default the last reading's.
        """
        if not readings:
            raise ValueError("a readings block needs at least one reading")
        self.add_readings(readings)
        entry = self.close_block(ts=ts)
        assert entry is not None
        return entry

    def track_state(self, name: str, source: Callable[[], bytes]) -> None:
        """Store ``source()`` as ``engine_state`` row ``name`` with batches (see below).

        Stored with each batch cut after :meth:`state_changed`. ``source`` is called at the cut, so the state stored is the one of that moment, in the
        same transaction as every entry appended before it. The caller's part of the bargain:
        whenever it yields to the event loop (where the async writer cuts), every event its
        state reflects is appended.
        """
        self._state_name = name
        self._state_source = source

    def state_changed(self) -> None:
        """The tracked state changed: store it with the next batch."""
        self._state_changed = True

    def _take_state(self) -> StateRow | None:
        if not self._state_changed or self._state_source is None:
            return None
        self._state_changed = False
        key = self._writer_key()
        return (self._state_name, key.feed, self._seq, self._state_source())

    def cut(self, *, now: float | None = None, sign: bool = True) -> Batch | None:
        """Close the pending entries into a batch, chained and covered by a signed checkpoint.

        The batch is queued for :meth:`write`; entries appended from now on chain onto its
        checkpoint. Pure CPU (hashing and one signature): the async writer calls it on the event
        loop while the commit process writes the batch before.

        With ``sign=False`` the batch has no checkpoint (an *unsigned* batch: the commit
        journal holds it until a later batch's checkpoint signs it with every entry before;
        :mod:`edge.ledger.journal`). A signing cut with nothing pending but unsigned entries
        cut before makes a batch of the checkpoint alone.

        Args:
            now: the checkpoint entry's time (default: the wall clock).
            sign: end the batch with a checkpoint.

        Returns:
            The batch, or None when nothing was pending.
        """
        key = self._writer_key()
        if not self._pending and not (sign and self._unsigned):
            if not self.dirty:
                return None
            batch = Batch(
                entries=(),
                blocks=(),
                checkpoint=None,
                frontier=None,
                readings=(*self._pending_rows, *self._open_block.take()),
                state=self._take_state(),
            )
            self._pending_rows = []
            self._unwritten.append(batch)
            return batch
        state = self._take_state()  # of the entries cut so far: before the checkpoint is built
        entries = tuple(self._pending)
        frontier = self._frontier
        if entries:
            frontier.extend(leaf_hashes([_fromhex(e.id) for e in entries]))
        signed: tuple[str, int, str, str, str] | None = None
        packed: bytes | None = None
        if sign:
            assert self._tip is not None  # entries were cut, now or before
            ts = time.time() if now is None else now
            checkpoint, signed, packed = build_checkpoint(key, frontier, self._tip, ts)
            self._seq = frontier.size
            self._tip = checkpoint
            entries += (checkpoint,)
            self._unsigned = 0
        else:
            self._unsigned += len(entries)
        batch = Batch(
            entries=entries,
            blocks=tuple(self._pending_blocks),
            checkpoint=signed,
            frontier=packed,
            readings=(*self._pending_rows, *self._open_block.take()),
            state=state,
        )
        self._pending = []
        self._pending_blocks = []
        self._pending_rows = []
        self._unwritten.append(batch)
        return batch

    def write(self, batch: Batch) -> None:
        """Write one batch in one durable transaction, in this process.

        Does not change the ledger's memory; call :meth:`written` afterwards. (The async
        writer hands its batches to the commit process instead: :mod:`edge.ledger.writer`.)

        Raises:
            StorageError: the transaction failed and was rolled back, or the batch is not next
                in the feed (the one before it is not written); write it again later.
        """
        conn = self.conn
        journal = self._journal
        request = _request(batch)
        with map_exceptions(SQL_ERRORS, f"ledger {self.path}: commit"):
            if journal is None:
                write_batch(conn, *request)
                return
            with journal.locked():
                write_journaled(journal, conn, request, batch.checkpoint is not None)

    def written(self, batch: Batch) -> None:
        """Record that ``batch`` (the oldest unwritten one) is durable."""
        if not self._unwritten or self._unwritten[0] is not batch:
            raise StorageError(
                f"ledger {self.path}: batches must be written in the order they were cut"
            )
        self._unwritten.popleft()
        if batch.entries:
            self._head = batch.entries[-1]
            self._size = self._head.seq + 1

    def commit(self, *, now: float | None = None) -> int:
        """Cut the pending entries into a batch and write every unwritten batch, oldest first.

        A failed write leaves its batch (and those after it) queued; the next call retries them,
        so nothing appended is lost while the process lives.

        Args:
            now: the checkpoint entry's time (default: the wall clock).

        Returns:
            The number of entries made durable by this call (checkpoints included).

        Raises:
            StorageError: a transaction failed; the batches stay queued.
        """
        self.cut(now=now)
        done = 0
        while self._unwritten:
            batch = self._unwritten[0]
            self.write(batch)
            self.written(batch)
            done += len(batch.entries)
        return done

    def prune_readings(
        self,
        before: float,
        *,
        retention: float | None = None,
        actor: str = "",
        comment: str = "",
        now: float | None = None,
    ) -> int:
        """Prune raw readings of blocks that ended before ``before`` (epoch s); digests stay.

        The prune is recorded first: a ``readings.prune`` entry naming the blocks and why is
        committed (with whatever else is pending), then their readings are deleted.

        Args:
            before: the cutoff.
            retention: the retention that made them due (reason ``retention``). Without it and
                without ``actor``: ``now - before``, the node's own retention prune.
            actor: who asked (an operator's request, reason ``operator``).
            comment: why (an operator's reason).
            now: the entry's time (default: the wall clock).

        Returns:
            The number of readings deleted.
        """
        now = time.time() if now is None else now
        if retention is None and not actor:
            retention = now - before
        self.move_journal()
        with map_exceptions(SQL_ERRORS, f"ledger {self.path}: prune readings"):
            plan = plan_prune(self.conn, before, retention=retention, comment=comment)
        if plan is None:
            return 0
        self.append("readings.prune", plan.body, ts=now, actor=actor)
        self.commit(now=now)
        return self.delete_blocks(plan.blocks)

    def delete_blocks(self, blocks: Sequence[int]) -> int:
        """Delete the raw readings of ``blocks`` (whose prune is already recorded and durable)."""
        self.move_journal()
        with map_exceptions(SQL_ERRORS, f"ledger {self.path}: prune readings"):
            return prune_readings(self.conn, blocks)

    def close(self) -> None:
        """Close the database; pending (uncommitted) entries are dropped. Idempotent.

        A writer moves the commit journal into the database first: a ledger closed cleanly
        leaves no journal behind (a failure to move keeps it for the next opener).
        """
        if self._conn is not None:
            if self._journal is not None:
                try:
                    self.move_journal()
                except StorageError as exc:
                    log.error("%s; the next opening of the ledger moves it", exc)
                self._journal.close()
                self._journal = None
            self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _writer_key(self) -> NodeKey:
        if self._conn is None:
            raise LedgerClosed(f"ledger {self.path} is closed")
        if self.key is None:
            raise StorageError(f"ledger {self.path} was opened without a key: read-only")
        return self.key
