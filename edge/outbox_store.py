"""The outbox's own view of the ledger database: entries of a stream, and the delivery cursors.

Everything here runs in a worker thread (``asyncio.to_thread``) on a connection of its own, so a
replay reading thousands of entries, or a cursor write waiting for the commit worker's
transaction, never stalls the event loop (where alarms are evaluated and published).

Cursor writes are cheap by design (SD-card wear, issue 12): the outbox writes them lazily (at
most every few seconds, and at a clean stop), as one small transaction with
``synchronous=NORMAL`` (no fsync of its own: the WAL frames reach the card with the next commit
of a batch, which syncs the WAL). A cursor lost to a power cut is only older than the truth:
entries after it are published again, and subscribers de-duplicate by entry id.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from edge.errors import StorageError, map_exceptions
from edge.ledger.database import SQL_ERRORS
from edge.ledger.entry import Entry, format_ts, parse_entry

__all__ = ["OutboxStore"]


class OutboxStore:
    """Reads a feed's stream entries and reads/writes its cursors (thread-safe, one connection).

    Every query is read to its end (``fetchall``): a statement left unfinished keeps its read
    transaction, and the connection would go on seeing the database as it was then.
    """

    def __init__(self, path: str | os.PathLike[str], feed: str) -> None:
        self.path = Path(path)
        self.feed = feed
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one statement sequence at a time on the connection

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                os.fspath(self.path), isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA busy_timeout=10000")
            # See the module docstring: a cursor may lag, it costs no fsync of its own.
            conn.execute("PRAGMA synchronous=NORMAL")
            self._conn = conn
        return self._conn

    def cursors(self) -> dict[str, int]:
        """The stored cursor of every stream of our feed (stream -> seq)."""
        with self._lock, map_exceptions(SQL_ERRORS, f"ledger {self.path}: outbox cursors"):
            rows = (
                self._connection()
                .execute("SELECT stream, seq FROM outbox_cursors WHERE feed = ?", (self.feed,))
                .fetchall()
            )
            return {stream: int(seq) for stream, seq in rows}

    def save(self, cursors: Mapping[str, int], now: float) -> None:
        """Store the cursors (one small transaction)."""
        where = f"ledger {self.path}: outbox cursors"
        with self._lock, map_exceptions(SQL_ERRORS, where):
            conn = self._connection()
            stamp = format_ts(now)
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR REPLACE INTO outbox_cursors(stream, feed, seq, updated) "
                    "VALUES (?, ?, ?, ?)",
                    [(s, self.feed, seq, stamp) for s, seq in cursors.items()],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def entries(self, types: Sequence[str], after: int, upto: int, limit: int) -> list[Entry]:
        """Entries of ``types`` with ``after < seq <= upto``, oldest first, at most ``limit``."""
        marks = ",".join("?" * len(types))
        with self._lock, map_exceptions(SQL_ERRORS, f"ledger {self.path}: outbox replay"):
            rows = (
                self._connection()
                .execute(
                    f"SELECT raw FROM entries WHERE feed = ? AND seq > ? AND seq <= ? "
                    f"AND type IN ({marks}) ORDER BY seq LIMIT ?",
                    (self.feed, after, upto, *types, limit),
                )
                .fetchall()
            )
        out = [parse_entry(raw) for (raw,) in rows]
        if out and out[-1].seq > upto:  # pragma: no cover - the query bounds it
            raise StorageError(f"ledger {self.path}: outbox read past seq {upto}")
        return out

    def stored_end(self) -> int:
        """Our feed's largest seq in the database + 1 (entries still in a commit journal aside)."""
        with self._lock, map_exceptions(SQL_ERRORS, f"ledger {self.path}: outbox replay"):
            row = (
                self._connection()
                .execute("SELECT max(seq) FROM entries WHERE feed = ?", (self.feed,))
                .fetchall()
            )
        return -1 if row[0][0] is None else int(row[0][0]) + 1

    def count(self, types: Sequence[str], after: int, upto: int) -> int:
        """How many entries of ``types`` have ``after < seq <= upto``."""
        marks = ",".join("?" * len(types))
        with self._lock, map_exceptions(SQL_ERRORS, f"ledger {self.path}: outbox depth"):
            row = (
                self._connection()
                .execute(
                    f"SELECT count(*) FROM entries WHERE feed = ? AND seq > ? AND seq <= ? "
                    f"AND type IN ({marks})",
                    (self.feed, after, upto, *types),
                )
                .fetchall()
            )
        return int(row[0][0])

    def latest_per_rule(self, types: Sequence[str], upto: int) -> dict[str, int]:
        """Per alarm rule, the seq of its latest transition with ``seq <= upto``."""
        marks = ",".join("?" * len(types))
        with self._lock, map_exceptions(SQL_ERRORS, f"ledger {self.path}: outbox states"):
            rows = (
                self._connection()
                .execute(
                    f"SELECT json_extract(raw, '$.body.rule'), max(seq) FROM entries "
                    f"WHERE feed = ? AND seq <= ? AND type IN ({marks}) GROUP BY 1",
                    (self.feed, upto, *types),
                )
                .fetchall()
            )
        return {str(rule): int(seq) for rule, seq in rows if rule is not None}

    def entry(self, seq: int) -> Entry | None:
        """Our feed's entry at ``seq``."""
        with self._lock, map_exceptions(SQL_ERRORS, f"ledger {self.path}: outbox read"):
            row = (
                self._connection()
                .execute("SELECT raw FROM entries WHERE feed = ? AND seq = ?", (self.feed, seq))
                .fetchall()
            )
        return parse_entry(row[0][0]) if row else None

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
