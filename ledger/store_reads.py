"""A writer's reads of its own stored feed: at opening, where it ends, its newest entries, state.

:class:`FeedReads` is a mixin of :class:`~edge.ledger.store.Ledger` (its attributes are the
ledger's, set in ``Ledger.__init__``). Each read moves the commit journal into the database
first, so it sees every durable entry.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import RollbackRefused, map_exceptions
from edge.ledger.database import SQL_ERRORS
from edge.ledger.entry import Entry, parse_entry
from edge.ledger.journal import Journal, journal_end
from edge.ledger.keys import NodeKey
from edge.ledger.merkle import Frontier
from edge.ledger.open_block import OpenBlock
from edge.ledger.stored_frontier import rebuild_frontier, stored_frontier

__all__ = ["FeedReads"]


class FeedReads:
    """Queries of a :class:`Ledger` writer on its own feed (database and commit journal)."""

    # the ledger's (edge.ledger.store.Ledger.__init__)
    path: Path
    frontier_rebuilt: bool
    _journal: Journal | None
    _open_block: OpenBlock
    _frontier: Frontier
    _tip: Entry | None
    _head: Entry | None
    _size: int
    _seq: int

    if TYPE_CHECKING:

        @property
        def conn(self) -> sqlite3.Connection:
            """:attr:`Ledger.conn`."""

        def move_journal(self) -> int:
            """:meth:`Ledger.move_journal`."""

        def _writer_key(self) -> NodeKey: ...

    def stored_end(self) -> int:
        """Where our feed's durable entries end (largest seq + 1): database and commit journal."""
        key = self._writer_key()
        self.move_journal()
        with map_exceptions(SQL_ERRORS, f"ledger {self.path}"):
            row = self.conn.execute(
                "SELECT seq FROM entries WHERE feed = ? ORDER BY seq DESC LIMIT 1", (key.feed,)
            ).fetchone()
        end = 0 if row is None else int(row[0]) + 1
        if self._journal is not None:
            end = max(end, journal_end(self._journal.path, key.feed) or 0)
        return end

    def latest(self, type_: str) -> Entry | None:
        """Our feed's newest stored entry of type ``type_`` (None when there is none).

        Raises:
            NotCanonical: the stored entry is damaged (``verify`` says where).
        """
        key = self._writer_key()
        self.move_journal()
        with map_exceptions(SQL_ERRORS, f"ledger {self.path}"):
            row = self.conn.execute(
                "SELECT raw FROM entries WHERE type = ? AND feed = ? ORDER BY seq DESC LIMIT 1",
                (type_, key.feed),
            ).fetchone()
        return None if row is None else parse_entry(bytes(row[0]))

    def last_entry(self, *, skip: Sequence[str] = ()) -> Entry | None:
        """Our feed's newest stored entry whose type is not in ``skip`` (None when none).

        Raises:
            NotCanonical: the stored entry is damaged (``verify`` says where).
        """
        key = self._writer_key()
        marks = ", ".join("?" * len(skip))
        self.move_journal()
        where = f" AND type NOT IN ({marks})" if skip else ""
        with map_exceptions(SQL_ERRORS, f"ledger {self.path}"):
            row = self.conn.execute(
                f"SELECT raw FROM entries WHERE feed = ?{where} ORDER BY seq DESC LIMIT 1",
                (key.feed, *skip),
            ).fetchone()
        return None if row is None else parse_entry(bytes(row[0]))

    def stored_state(self, name: str) -> tuple[int, bytes] | None:
        """The stored ``engine_state`` row ``name`` of our feed: (feed size it reflects, state)."""
        key = self._writer_key()
        self.move_journal()
        with map_exceptions(SQL_ERRORS, f"ledger {self.path}"):
            row = self.conn.execute(
                "SELECT size, state FROM engine_state WHERE name = ? AND feed = ?",
                (name, key.feed),
            ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def last_reading_ts(self) -> str | None:
        """The newest durable reading's time (RFC 3339), closed blocks and the open one."""
        self.move_journal()
        with map_exceptions(SQL_ERRORS, f"ledger {self.path}"):
            (closed,) = self.conn.execute("SELECT max(last_ts) FROM reading_blocks").fetchone()
        stamps = [t for t in (closed, self._open_block.last_ts) if t is not None]
        return max(stamps) if stamps else None

    def _load_own_feed(self, feed: str) -> None:
        conn = self.conn
        with map_exceptions(SQL_ERRORS, f"ledger {self.path}"):
            row = conn.execute(
                "SELECT seq, raw FROM entries WHERE feed = ? ORDER BY seq DESC LIMIT 1", (feed,)
            ).fetchone()
            end, last = (0, None) if row is None else (row[0] + 1, row[1])
            recorded = conn.execute(
                "SELECT max(size) FROM checkpoints WHERE feed = ?", (feed,)
            ).fetchone()[0]
            self._open_block = OpenBlock.recover(conn, feed)
            frontier = stored_frontier(conn, feed, end, last)
            if frontier is not None:
                count = conn.execute(
                    "SELECT count(*) FROM entries WHERE feed = ?", (feed,)
                ).fetchone()[0]
                if count != end:
                    frontier = None  # a gap: the rebuild below names it
            self.frontier_rebuilt = frontier is None
            self._frontier = (
                frontier if frontier is not None else rebuild_frontier(conn, self.path, feed)
            )
        if recorded is not None and recorded >= self._frontier.size:
            raise RollbackRefused(
                f"ledger {self.path}: feed {feed[:16]} holds {self._frontier.size} entries but a checkpoint "
                f"of size {recorded} was recorded; restore the feed before appending"
            )
        from edge.ledger.replica_witness import refuse_if_behind  # peers hold more: rollback

        refuse_if_behind(conn, f"ledger {self.path}", feed, self._frontier.size)
        if last is not None:
            self._head = self._tip = parse_entry(last)
        self._size = self._seq = self._frontier.size
