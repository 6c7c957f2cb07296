"""The committer: writes the async writer's batches, small ones to the journal, the rest to SQLite.

One :class:`Committer` runs in whichever worker the writer uses (:mod:`edge.ledger.commit_thread`
by default, :mod:`edge.ledger.commit_process` on request): the requests and their replies are
the same, and so are the files they leave (docs/design.md, "The commit worker").

Requests, as tuples (the process receives them pickled; the journal stores the pickle):

* ``("write", BatchParams | None, [BlockRows], [StagedRow], StateRow | None)`` -> ``("ok", None)``
  once durable, or ``("error", message)`` (the transaction was rolled back; a batch that is not
  next in its feed is refused);
* ``("prune", blocks)`` -> ``("ok", readings deleted)`` or ``("error", message)``;
* ``("move",)`` -> ``("ok", journal empty)``: move the journal now (a reader's sync).

"Durable" means on disk in one of two places: a batch whose frame is at most
:data:`JOURNAL_FRAME_MAX` bytes, and every batch without a checkpoint (an *unsigned* one,
:mod:`edge.ledger.signing`), is appended to the commit journal (:mod:`edge.ledger.journal`) and
fdatasync'd; a larger signed one is written to SQLite in one transaction with what the journal
holds. The journal is moved into SQLite in bulk, holding no unsigned entries, when it holds
:data:`JOURNAL_MOVE_BYTES`, when its oldest record has waited :data:`JOURNAL_MOVE_AGE` seconds
(a signed batch arriving then moves it at once), before a prune, on a ``move`` request, and at
the worker's end (why: SD-card wear, docs/design.md). It never moves while its last entries are
unsigned: the database never ends in unsigned entries. A signed small batch alone does not move
it: a node whose peers listen signs every few entries (:mod:`edge.ledger.signing`), and a move
per checkpoint would cost the card what the journal saves.
"""

from __future__ import annotations

import pickle
import sqlite3
import sys
import time
from typing import Any

import orjson

from edge.errors import StorageError
from edge.ledger.commit import prune_readings, write_batch
from edge.ledger.journal import Journal, journal_end, load_frame, move, unsigned_tail

__all__ = ["JOURNAL_FRAME_MAX", "JOURNAL_MOVE_AGE", "JOURNAL_MOVE_BYTES", "Committer", "encode"]

_loads = orjson.loads

#: A batch whose frame is at most this many bytes goes to the commit journal (an alarm's batch
#: is ~1.5 KB; a bulk batch of readings digests, tens to hundreds of KB, goes to SQLite).
JOURNAL_FRAME_MAX = 16 * 1024
#: The journal is moved into SQLite once it holds this many bytes (a record takes 4 KiB at
#: least: five alarms a second for ``JOURNAL_MOVE_AGE`` are 2.4 MB) ...
JOURNAL_MOVE_BYTES = 8 * 1024 * 1024
#: ... or once its oldest record has waited this many seconds (the lag of read-only readers).
JOURNAL_MOVE_AGE = 120.0


class Committer:
    """Writes requests: small batches to the commit journal, the rest to SQLite.

    Every step holds the journal's lock (see :mod:`edge.ledger.journal`): the node may move the
    journal itself (before reading its own ledger) while we run.
    """

    def __init__(
        self, conn: sqlite3.Connection, journal: Journal, frame_max: int, age: float
    ) -> None:
        self.conn = conn
        self.journal = journal
        self._frame_max = frame_max
        self._age = age
        self._move_bytes = JOURNAL_MOVE_BYTES
        self._ends: dict[str, int] = {}  # feed -> its end, SQLite and the journal together
        self._oldest: float | None = None  # monotonic time of our oldest unmoved record
        #: The journal's last entries are unsigned: nothing moves until a checkpoint comes.
        self._unsigned = False
        with journal.locked():
            move(journal, conn)  # what a restart left: applied before anything new (if signed)
            self._unsigned = unsigned_tail([load_frame(f) for f in journal.read().frames])
            if journal.size:
                self._oldest = time.monotonic()

    def move_due(self) -> float | None:
        """Seconds until the oldest journal record is due to move (None: nothing may move).

        Unsigned entries wait for the node's signing batch (its ``journal_age`` clock).
        """
        if self._oldest is None or self._unsigned:
            return None
        return max(0.0, self._oldest + self._age - time.monotonic())

    def move_quietly(self) -> None:
        """Move the journal now; a failure is logged and retried after the age trigger."""
        try:
            with self.journal.locked():
                self._move()
        except (StorageError, sqlite3.Error, OSError) as exc:
            print(f"{self.journal.path}: cannot move into the database: {exc}", file=sys.stderr)
            self._oldest = time.monotonic()

    def _move(self) -> None:
        move(self.journal, self.conn)
        if self.journal.size == 0:
            self._moved()

    def _moved(self) -> None:
        self._oldest = None
        self._unsigned = False

    def handle(self, body: bytes, request: tuple[Any, ...] | None = None) -> tuple[str, Any]:
        """Write one request (``body`` its pickle; ``request`` the decoded tuple, if at hand).

        Returns ``("ok", value)`` or ``("error", message)`` (the transaction rolled back).
        """
        if request is None:
            request = pickle.loads(body)
        try:
            with self.journal.locked():
                if request[0] == "write":
                    self._write(body, request)
                    return ("ok", None)
                if request[0] == "prune":
                    self._move()
                    return ("ok", prune_readings(self.conn, request[1]))
                if request[0] == "move":
                    self._move()
                    return ("ok", self.journal.size == 0)
                return ("error", f"unknown request {request[0]!r}")
        except (StorageError, sqlite3.Error, OSError) as exc:
            self._ends.clear()  # read again from the database and the journal
            return ("error", str(exc))

    def _write(self, body: bytes, request: tuple[Any, ...]) -> None:
        params = request[1]
        if params is not None:
            feed, first = params[0], params[1]
            end = self._ends.get(feed)
            if end is None:
                end = self._stored_end(feed)
            if first != end:
                raise StorageError(f"batch at seq {first} is not next in its feed")
        signed = params is not None and params[8] is not None
        big = len(body) > self._frame_max
        if signed and big:
            # Bulk: into SQLite after the journal, in one transaction with what it signs.
            move(self.journal, self.conn, extra=request[1:5])
            self._moved()
        elif big and params is None and not self._unsigned:
            # A bulk batch without entries (readings): SQLite directly, after the journal.
            self._move()
            write_batch(self.conn, *request[1:5])
        else:
            # Unsigned entries (and whatever follows them) wait in the journal for their
            # checkpoint; a signed batch is journaled, then moves everything in with it once
            # the journal is due (its age: the writer's own signing clock, started at its cut
            # a little before our record, is what brings that batch: a second early counts).
            self.journal.append(body)
            if params is not None:
                self._unsigned = not signed
            if self._oldest is None:
                self._oldest = time.monotonic()
            due = time.monotonic() >= self._oldest + max(0.0, self._age - 1.0)
            if not self._unsigned and (due or self.journal.size >= self._move_bytes):
                self._move_durable()
        if params is not None:
            self._ends[params[0]] = params[1] + len(_loads(params[3]))

    def _stored_end(self, feed: str) -> int:
        """Our feed's end in the database and the journal (after a restart or an error)."""
        row = self.conn.execute("SELECT max(seq) FROM entries WHERE feed = ?", (feed,)).fetchone()
        end = 0 if row[0] is None else int(row[0]) + 1
        self._unsigned = unsigned_tail([load_frame(f) for f in self.journal.read().frames])
        return max(end, journal_end(self.journal.path, feed) or 0)

    def _move_durable(self) -> None:
        """Move after an append: the batch is durable in the journal, so its reply stays "ok"."""
        try:
            self._move()
        except (StorageError, sqlite3.Error, OSError) as exc:
            print(f"{self.journal.path}: cannot move into the database: {exc}", file=sys.stderr)
            self._oldest = time.monotonic()


def encode(message: tuple[Any, ...]) -> bytes:
    """A request's or a reply's pickle (our own values, between our own two processes)."""
    return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
