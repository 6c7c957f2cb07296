"""The commit process: a child process that writes the async writer's batches to SQLite.

Why a process and not a thread: the node builds entries (Python, holding the GIL) while a batch
is written (SQLite, mostly without it). From a thread, every return from SQLite into Python waits
for the GIL, up to the interpreter's 5 ms switch interval while the event loop is busy, several
times per batch; measured here, a thread made building and writing together slower than the two
one after the other. A child process has a GIL of its own: measured here, building and writing
in two processes each ran as fast as alone.

Protocol, over the child's stdin and stdout: frames of a 4-byte big-endian length and a pickle
(our own values, between our own two processes). The child first answers ``("ready", None)`` or
``("error", message)``; then one reply per request, in order:

* ``("write", BatchParams | None, [BlockRows], [StagedRow], StateRow | None)`` -> ``("ok", None)``
  once durable, or ``("error", message)`` (the transaction was rolled back; a batch that is not
  next in its feed is refused);
* ``("prune", blocks)`` -> ``("ok", readings deleted)`` or ``("error", message)``;
* ``("move",)`` -> ``("ok", journal empty)``: move the journal now (a reader's sync).

"Durable" means on disk in one of two places: a batch whose frame is at most
:data:`JOURNAL_FRAME_MAX` bytes, and every batch without a checkpoint (an *unsigned* one,
:mod:`edge.ledger.signing`), is appended to the commit journal (:mod:`edge.ledger.journal`) and
fdatasync'd; a larger signed one is written to SQLite in one transaction with what the journal
holds. The journal is moved into SQLite in bulk with each signed batch (the checkpoint that
signs what it holds), and, holding no unsigned entries, when it holds
:data:`JOURNAL_MOVE_BYTES`, when its oldest record has waited :data:`JOURNAL_MOVE_AGE` seconds,
before a prune, and at end of input (why: SD-card wear, docs/design.md). It never moves while
its last entries are unsigned: the database never ends in unsigned entries.

At end of input the child has answered everything before it, and exits. It holds the ledger's
single-writer lock with its parent (the lock's file descriptor is inherited) and, on Linux, is
killed when its parent dies, so no batch lands behind a node that was restarted.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import sqlite3
import sys
import time
from typing import Any

import orjson

from edge import failpoints
from edge.errors import StorageError
from edge.ledger.commit import prepare, prune_readings, write_batch
from edge.ledger.database import connect
from edge.ledger.journal import Journal, journal_end, load_frame, move, unsigned_tail

__all__ = ["JOURNAL_FRAME_MAX", "JOURNAL_MOVE_AGE", "JOURNAL_MOVE_BYTES", "main"]

_HEADER = 4
_loads = orjson.loads
_PR_SET_PDEATHSIG = 1
_F_SETPIPE_SZ = 1031
_PIPE_SIZE = 1 << 20  # a batch of 2,000 entries is ~1 MB: one write instead of sixteen

#: A batch whose frame is at most this many bytes goes to the commit journal (an alarm's batch
#: is ~1.5 KB; a bulk batch of readings digests, tens to hundreds of KB, goes to SQLite).
JOURNAL_FRAME_MAX = 16 * 1024
#: The journal is moved into SQLite once it holds this many bytes ...
JOURNAL_MOVE_BYTES = 256 * 1024
#: ... or once its oldest record has waited this many seconds (the lag of read-only readers).
JOURNAL_MOVE_AGE = 120.0


# -- the child ---------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """The child: ``python -m edge.ledger.commit_process DB PARENT_PID [JOURNAL_MAX [AGE]]``."""
    path, parent = argv[0], int(argv[1])
    journal_max = int(argv[2]) if len(argv) > 2 else JOURNAL_FRAME_MAX
    journal_age = float(argv[3]) if len(argv) > 3 else JOURNAL_MOVE_AGE
    _die_with_parent(parent)
    # A file-size limit must surface as "disk full" (an error the writer retries), not kill us.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    # Ctrl-C, and a service manager's SIGTERM (systemd's default KillMode signals the whole
    # control group), reach us as well as the parent: the parent decides when we stop (end of
    # input, after the last batch), and if it dies we die with it (PDEATHSIG).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    failpoints.kill_parent_too(parent)
    stdout = sys.stdout.buffer
    try:
        conn = connect(path)
        prepare(conn)
        committer = _Committer(conn, Journal(path), journal_max, journal_age)
    except (StorageError, sqlite3.Error) as exc:
        _send(stdout, ("error", str(exc)))
        return 1
    _send(stdout, ("ready", None))
    requests = _Requests(sys.stdin.fileno())
    while True:
        try:
            body = requests.next(committer.move_due())
        except _Timeout:
            committer.move_quietly()
            continue
        if body is None:
            break  # end of input (the parent is closing or gone), or a request cut short
        reply = committer.handle(body)
        try:
            _send(stdout, reply)
        except BrokenPipeError:
            break  # the parent is gone; what was committed (or journaled) stays
    committer.move_quietly()
    committer.journal.close()
    conn.close()
    return 0


class _Timeout(Exception):
    pass


class _Requests:
    """Frames from the parent on ``fd``, with a timeout (the journal's age trigger)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()
        self._eof = False

    def next(self, timeout: float | None) -> bytes | None:
        """The next request's frame; None at end of input.

        Raises:
            _Timeout: none arrived within ``timeout`` seconds (None: wait for ever).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        buffer = self._buffer
        while True:
            if len(buffer) >= _HEADER:
                size = int.from_bytes(buffer[:_HEADER], "big")
                if len(buffer) >= _HEADER + size:
                    body = bytes(buffer[_HEADER : _HEADER + size])
                    del buffer[: _HEADER + size]
                    return body
            if self._eof:
                return None  # a request cut short: the parent died mid-send, never acknowledged
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._fd], [], [], left)[0]:
                    raise _Timeout
            chunk = os.read(self._fd, _PIPE_SIZE)
            if not chunk:
                self._eof = True
            buffer += chunk


class _Committer:
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

    def handle(self, body: bytes) -> tuple[str, Any]:
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
            # checkpoint; a signed batch is journaled, then moves everything in with it.
            self.journal.append(body)
            if params is not None:
                self._unsigned = not signed
            if self._oldest is None:
                self._oldest = time.monotonic()
            if signed or (not self._unsigned and self.journal.size >= self._move_bytes):
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


def _send(out: Any, message: tuple[str, Any]) -> None:
    header, frame = _encode(message)
    out.write(header + frame)
    out.flush()


def _encode(message: tuple[Any, ...]) -> tuple[bytes, bytes]:
    """One frame of the protocol: its 4-byte big-endian length, and the pickle."""
    frame = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(frame).to_bytes(_HEADER, "big"), frame


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill us when the parent dies (Linux); exit if it is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # without it, end of input still stops us once the queued batches are written
    if os.getppid() != parent:
        sys.exit(0)  # the parent died before prctl took effect


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
