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
* ``("prune", blocks)`` -> ``("ok", readings deleted)`` or ``("error", message)``.

"Durable" means on disk in one of two places: a batch whose frame is at most
:data:`JOURNAL_FRAME_MAX` bytes is appended to the commit journal (:mod:`edge.ledger.journal`)
and fdatasync'd; a larger one is written to SQLite in its own transaction, after the journal is
moved. The journal is moved into SQLite in bulk when it holds :data:`JOURNAL_MOVE_BYTES`, when
its oldest record has waited :data:`JOURNAL_MOVE_AGE` seconds, before a prune, and at end of
input (why: SD-card wear, docs/design.md).

At end of input the child has answered everything before it, and exits. It holds the ledger's
single-writer lock with its parent (the lock's file descriptor is inherited) and, on Linux, is
killed when its parent dies, so no batch lands behind a node that was restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pickle
import select
import signal
import sqlite3
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from edge import failpoints
from edge.errors import StorageError
from edge.ledger.commit import prepare, prune_readings, write_batch
from edge.ledger.database import connect
from edge.ledger.journal import Journal, move

__all__ = ["JOURNAL_FRAME_MAX", "JOURNAL_MOVE_AGE", "JOURNAL_MOVE_BYTES", "CommitProcess", "main"]

_HEADER = 4
_PR_SET_PDEATHSIG = 1
_F_SETPIPE_SZ = 1031
_PIPE_SIZE = 1 << 20  # a batch of 2,000 entries is ~1 MB: one write instead of sixteen

#: A batch whose frame is at most this many bytes goes to the commit journal (an alarm's batch
#: is ~1.5 KB; a bulk batch of readings digests, tens to hundreds of KB, goes to SQLite).
JOURNAL_FRAME_MAX = 16 * 1024
#: The journal is moved into SQLite once it holds this many bytes ...
JOURNAL_MOVE_BYTES = 256 * 1024
#: ... or once its oldest record has waited this many seconds (the lag of read-only readers).
JOURNAL_MOVE_AGE = 10.0


class CommitProcess(asyncio.SubprocessProtocol):
    """The parent's side: send requests, get a future for each reply (resolved in order).

    Replies are parsed by the event loop as they arrive (protocol callbacks, no task). When the
    child exits, every request still waiting fails with :class:`StorageError`.
    """

    def __init__(self, path: Path, where: str) -> None:
        self.path = path
        self._where = where
        self._transport: asyncio.SubprocessTransport | None = None
        self._stdin: asyncio.WriteTransport | None = None
        self._buffer = bytearray()
        self._waiting: deque[asyncio.Future[Any]] = deque()
        # Created here, so only inside a running loop: start() is the way to make one.
        self._exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.alive = False

    @classmethod
    async def start(
        cls,
        path: Path,
        *,
        lock_fd: int | None,
        where: str,
        timeout: float,  # noqa: ASYNC109
        journal_max: int = JOURNAL_FRAME_MAX,
        journal_age: float = JOURNAL_MOVE_AGE,
    ) -> CommitProcess:
        """Start the child on the ledger at ``path`` and wait until it is ready.

        ``journal_max``: batches whose frame is at most this many bytes go to the commit
        journal (:data:`JOURNAL_FRAME_MAX` is the node's choice; 0: every batch to SQLite);
        ``journal_age``: seconds a journal record waits at most before it is moved.

        Raises:
            StorageError: it could not start, or could not open the database.
        """
        loop = asyncio.get_running_loop()
        protocol = cls(path, where)
        ready = loop.create_future()
        protocol._waiting.append(ready)
        try:
            await loop.subprocess_exec(
                lambda: protocol,
                sys.executable,
                "-m",
                "edge.ledger.commit_process",
                os.fspath(path),
                str(os.getpid()),
                str(journal_max),
                str(journal_age),
                stderr=None,
                pass_fds=() if lock_fd is None else (lock_fd,),
            )
        except OSError as exc:
            ready.cancel()
            raise StorageError(f"{where}: cannot start the commit process: {exc}") from exc
        except BaseException:
            # Cancelled while starting (the node is going down): nobody waits for its answer,
            # and asyncio has killed the half-started child.
            ready.cancel()
            raise
        try:
            async with asyncio.timeout(timeout):
                await ready
        except StorageError:
            await protocol.wait()  # it exits after saying why
            raise
        except TimeoutError:
            protocol.kill()
            await protocol.wait()
            raise StorageError(
                f"{where}: the commit process did not start in {timeout:.0f}s"
            ) from None
        except asyncio.CancelledError:
            # The node is going down while the child starts: a child left to finish starting
            # would open (and create) the ledger after its owner is gone, e.g. behind the
            # demo's removal of its directory. Kill it and wait until it is gone.
            ready.cancel()
            protocol.kill()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(5.0):
                    await protocol.wait()
            raise
        return protocol

    @property
    def pid(self) -> int | None:
        """The child's process id (None before it started)."""
        return None if self._transport is None else self._transport.get_pid()

    # -- requests ------------------------------------------------------------------------------

    def request(self, *message: Any) -> asyncio.Future[Any]:
        """Send one request; the future gets the reply's value or a :class:`StorageError`."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self.alive or self._stdin is None:
            future.set_exception(StorageError(f"{self._where}: the commit process is not running"))
            return future
        header, frame = _encode(message)
        self._stdin.write(header)
        self._stdin.write(frame)  # not joined to the header: a batch's frame is ~1 MB
        self._waiting.append(future)
        return future

    async def close(self) -> int:
        """End the input: the child answers what it has, then exits. Returns its exit status."""
        if self._stdin is not None and not self._stdin.is_closing():
            self._stdin.close()
        return await self.wait()

    def kill(self) -> None:
        """Kill the child now (what it has not committed is rolled back by SQLite)."""
        if self._transport is not None and self.alive:
            with contextlib.suppress(ProcessLookupError):
                self._transport.kill()

    async def wait(self) -> int:
        """Wait until the child has exited; its exit status."""
        return await asyncio.shield(self._exited)

    # -- protocol callbacks --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """The child is started: keep its stdin, with a pipe big enough for a batch."""
        assert isinstance(transport, asyncio.SubprocessTransport)
        self._transport = transport
        stdin = transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        self._stdin = stdin
        self.alive = True
        # A smaller pipe only means more write calls; a closed one (start was cancelled) none.
        with contextlib.suppress(OSError, ValueError):
            fcntl.fcntl(stdin.get_extra_info("pipe").fileno(), _F_SETPIPE_SZ, _PIPE_SIZE)

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        """Replies arrive: resolve the oldest waiting request per complete frame."""
        buffer = self._buffer
        buffer += data
        while len(buffer) >= _HEADER:
            size = int.from_bytes(buffer[:_HEADER], "big")
            if len(buffer) < _HEADER + size:
                break
            kind, value = pickle.loads(buffer[_HEADER : _HEADER + size])
            del buffer[: _HEADER + size]
            if not self._waiting:
                continue
            future = self._waiting.popleft()
            if future.done():
                continue
            if kind in ("ok", "ready"):
                future.set_result(value)
            else:
                future.set_exception(StorageError(f"{self._where}: {value}"))

    def process_exited(self) -> None:
        """The child exited: send nothing more (its last replies may still be in the pipe)."""
        self.alive = False

    def connection_lost(self, exc: Exception | None) -> None:
        """The child exited and its output is read: fail what it did not answer."""
        self.alive = False
        assert self._transport is not None
        status = self._transport.get_returncode()
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(
                    StorageError(f"{self._where}: the commit process exited (status {status})")
                )
        self._transport.close()
        if not self._exited.done():
            self._exited.set_result(status if status is not None else -1)


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
        self._ends: dict[str, int] = {}  # feed -> its end, SQLite and the journal together
        self._oldest: float | None = None  # monotonic time of our oldest unmoved record
        with journal.locked():
            move(journal, conn)  # what a crash left: applied before anything new

    def move_due(self) -> float | None:
        """Seconds until the oldest journal record is due to move (None: nothing waits)."""
        if self._oldest is None:
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
        self._oldest = None

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
                return ("error", f"unknown request {request[0]!r}")
        except (StorageError, sqlite3.Error, OSError) as exc:
            self._ends.clear()  # read again from the database and the journal
            return ("error", str(exc))

    def _write(self, body: bytes, request: tuple[Any, ...]) -> None:
        params = request[1]
        if len(body) > self._frame_max:
            self._move()  # order: every journaled batch lands before this one
            write_batch(self.conn, *request[1:5])
            if params is not None:
                self._ends[params[0]] = params[5] + 1
            return
        if params is not None:
            feed, first = params[0], params[1]
            end = self._ends.get(feed)
            if end is None:
                self._move()
                row = self.conn.execute(
                    "SELECT max(seq) FROM entries WHERE feed = ?", (feed,)
                ).fetchone()
                end = 0 if row[0] is None else int(row[0]) + 1
            if first != end:
                raise StorageError(f"batch at seq {first} is not next in its feed")
        self.journal.append(body)
        if params is not None:
            self._ends[params[0]] = params[5] + 1  # the checkpoint's seq is the size it covers
        if self._oldest is None:
            self._oldest = time.monotonic()
        if self.journal.size >= JOURNAL_MOVE_BYTES:
            try:
                self._move()
            except (StorageError, sqlite3.Error, OSError) as exc:
                # The batch is durable in the journal: its reply stays "ok"; moving is retried.
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
