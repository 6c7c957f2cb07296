"""The commit process: the committer (:mod:`edge.ledger.committer`) in a child process.

The writer's default worker is a thread (:mod:`edge.ledger.commit_thread`); this one is chosen
with ``[ledger] commit_worker = "process"`` (``LedgerWriter(commit_worker="process")``). Why a
process at all: the node builds entries (Python, holding the GIL) while a batch is written
(SQLite, mostly without it). From a thread, every return from SQLite into Python waits for the
GIL, up to the interpreter's 5 ms switch interval while the event loop is busy, several times
per batch; measured here, a thread made bulk building and writing together slower than the two
one after the other, while in two processes each ran as fast as alone. At a gateway's rates
(hundreds of readings and a few entries a second) that contention is negligible and the second
interpreter's ~18 MB resident is not (docs/design.md, "The commit worker").

Protocol, over the child's stdin and stdout: frames of a 4-byte big-endian length and a pickle
(our own values, between our own two processes). The child first answers ``("ready", None)`` or
``("error", message)``; then one reply per request, in order (the requests:
:mod:`edge.ledger.committer`).

At end of input the child has answered everything before it, and exits. It holds the ledger's
single-writer lock with its parent (the lock's file descriptor is inherited) and, on Linux, is
killed when its parent dies, so no batch lands behind a node that was restarted.
"""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import sys
import time
from typing import Any

from edge import failpoints
from edge.errors import StorageError
from edge.ledger.commit import prepare
from edge.ledger.committer import JOURNAL_FRAME_MAX, JOURNAL_MOVE_AGE, Committer, encode
from edge.ledger.database import connect
from edge.ledger.journal import Journal

__all__ = ["main"]

_HEADER = 4
_PR_SET_PDEATHSIG = 1
_F_SETPIPE_SZ = 1031
_PIPE_SIZE = 1 << 20  # a batch of 2,000 entries is ~1 MB: one write instead of sixteen

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
        committer = Committer(conn, Journal(path), journal_max, journal_age)
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


def _send(out: Any, message: tuple[str, Any]) -> None:
    header, frame = _encode(message)
    out.write(header + frame)
    out.flush()


def _encode(message: tuple[Any, ...]) -> tuple[bytes, bytes]:
    """One frame of the protocol: its 4-byte big-endian length, and the pickle."""
    frame = encode(message)
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
