"""The commit thread: the committer (:mod:`edge.ledger.committer`) in a thread of the node.

The writer's default worker. It does what the commit process (:mod:`edge.ledger.commit_process`)
does, with the same requests, replies and files, without a second interpreter: at a gateway's
rates the process's ~18 MB resident and its pickling and pipe round trip per batch cost more
than the GIL contention it avoids (docs/design.md, "The commit worker"). SQLite and the
journal's fdatasync release the GIL, so the event loop runs while a batch is written.

Requests are queued to the thread with the future their reply resolves (on the event loop,
through ``call_soon_threadsafe``), answered in order. The thread also keeps the journal's age
trigger: it wakes when the oldest journal record is due to move.

A request sent ``lazy`` (a batch of readings and state only: nobody waits for it) is answered
without waking the loop: the reply is held until the next reply that does wake it, or until the
writer looks (:meth:`CommitThread.collect`, each time it runs). At a slow poll that is one
wake-up of the node fewer per batch (docs/design.md, "Where the CPU goes"). A failure is never
held.

A failpoint hit in the thread kills the whole node (it is one process): what a power cut does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import signal
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from edge.errors import StorageError
from edge.ledger.commit import prepare
from edge.ledger.committer import JOURNAL_FRAME_MAX, JOURNAL_MOVE_AGE, Committer, encode
from edge.ledger.database import connect
from edge.ledger.journal import Journal

__all__ = ["CommitThread"]

log = logging.getLogger(__name__)

_Item = tuple[tuple[Any, ...], asyncio.Future[Any], bool] | None
#: a reply: the future, "ok"/"ready"/"error", the value, when it was answered (monotonic; None
#: when it is resolved at once: only a held answer's time differs from its resolution's)
_Reply = tuple[asyncio.Future[Any], str, Any, float | None]


def _resolve(future: asyncio.Future[Any], kind: str, value: Any, where: str) -> None:
    if future.done():
        return
    if kind in ("ok", "ready"):
        future.set_result(value)
    else:
        future.set_exception(StorageError(f"{where}: {value}"))


class CommitThread:
    """Send requests to the commit thread, get a future for each reply (resolved in order).

    The same interface as :class:`edge.ledger.commit_client.CommitProcess`, so the writer
    drives either. When the thread ends, every request still waiting fails with
    :class:`StorageError`.
    """

    def __init__(self, path: Path, where: str, journal_max: int, journal_age: float) -> None:
        self.path = path
        self._where = where
        self._journal_max = journal_max
        self._journal_age = journal_age
        self._loop = asyncio.get_running_loop()
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._ready: asyncio.Future[None] = self._loop.create_future()
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._killed = False
        self._ending = False
        self.alive = False
        self._thread: threading.Thread | None = None
        self._held: deque[_Reply] = deque()  # lazy replies not posted to the loop yet
        #: when each collected reply was answered (loop time), until the writer takes it
        self.answered_at: dict[asyncio.Future[Any], float] = {}

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
    ) -> CommitThread:
        """Start the thread on the ledger at ``path`` and wait until it opened the database.

        ``lock_fd`` is unused: the thread writes under the writer's own single-writer lock.

        Raises:
            StorageError: it could not open the database, or did not within ``timeout``.
        """
        del lock_fd
        _ignore_file_size_signal()
        worker = cls(path, where, journal_max, journal_age)
        worker.alive = True
        worker._thread = threading.Thread(target=worker._main, name="edge-commit", daemon=True)
        worker._thread.start()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(worker._ready)
        except TimeoutError:
            worker.kill()
            raise StorageError(
                f"{where}: the commit thread did not start in {timeout:.0f}s"
            ) from None
        except StorageError:
            await worker.wait()
            raise
        except asyncio.CancelledError:
            # The node is going down while the thread opens the database: let it finish and
            # end, so nothing opens (and creates) the ledger after its owner is gone.
            worker.kill()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(5.0):
                    await worker.wait()
            raise
        return worker

    @property
    def pid(self) -> int | None:
        """None: no process of its own (the node's pid writes)."""
        return None

    # -- requests ------------------------------------------------------------------------------

    def request(self, *message: Any, lazy: bool = False) -> asyncio.Future[Any]:
        """Queue one request; the future gets the reply's value or a :class:`StorageError`.

        ``lazy``: a success is resolved only by a later reply or :meth:`collect` (no wake-up).
        """
        future: asyncio.Future[Any] = self._loop.create_future()
        if not self.alive or self._ending:
            future.set_exception(StorageError(f"{self._where}: the commit thread is not running"))
            return future
        self._queue.put((message, future, lazy))
        return future

    def collect(self) -> None:
        """Resolve the lazy replies held so far (on the loop: the writer calls it as it runs)."""
        held = self._held
        while held:
            try:
                reply = held.popleft()
            except IndexError:  # the thread posted it meanwhile
                return
            self._settle([reply])

    def _settle(self, replies: list[_Reply]) -> None:
        for future, kind, value, at in replies:
            if at is not None and not future.done():
                self.answered_at[future] = at  # the writer's commit time figure takes it
            _resolve(future, kind, value, self._where)

    async def close(self) -> int:
        """Answer what is queued, move the journal, end the thread. Returns 0 (1 if it failed)."""
        if not self._ending:
            self._ending = True
            self._queue.put(None)
        return await self.wait()

    def kill(self) -> None:
        """Stop after the request being written; fail those still queued.

        A thread cannot be killed: a write under way finishes, or fails, by itself.
        """
        self._killed = True
        if not self._ending:
            self._ending = True
            self._queue.put(None)

    async def wait(self) -> int:
        """Wait until the thread has ended; its status (0: it ended cleanly)."""
        return await asyncio.shield(self._exited)

    # -- the thread ----------------------------------------------------------------------------

    def _reply(
        self, future: asyncio.Future[Any], kind: str, value: Any, lazy: bool = False
    ) -> None:
        if lazy and kind == "ok":
            self._held.append((future, kind, value, time.monotonic()))
            return
        reply: _Reply = (future, kind, value, None)
        replies: list[_Reply] = []
        held = self._held
        while held:  # answered before this one: posted with it
            try:
                replies.append(held.popleft())
            except IndexError:  # the loop collected it meanwhile
                break
        replies.append(reply)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(self._settle, replies)

    def _main(self) -> None:
        status = 1
        committer: Committer | None = None
        conn: sqlite3.Connection | None = None
        try:
            try:
                conn = connect(self.path)
                prepare(conn)
                committer = Committer(
                    conn, Journal(self.path), self._journal_max, self._journal_age
                )
            except (StorageError, sqlite3.Error, OSError) as exc:
                self._reply(self._ready, "error", str(exc))
                return
            self._reply(self._ready, "ready", None)
            status = self._serve(committer)
        except Exception as exc:  # a bug: the thread ends as the process would die, said once
            log.exception("the commit thread failed")
            self._fail_queued(f"the commit thread failed: {exc!r}")
        except BaseException as exc:  # must fail the waiting requests, not hang them
            self._fail_queued(f"the commit thread failed: {exc!r}")
            raise
        finally:
            if committer is not None:
                if not self._killed:
                    committer.move_quietly()
                committer.journal.close()
            if conn is not None:
                conn.close()
            self._fail_queued("the commit thread ended")
            self._end(status)

    def _serve(self, committer: Committer) -> int:
        get = self._queue.get
        while True:
            try:
                item = get(timeout=committer.move_due())
            except queue.Empty:
                committer.move_quietly()
                continue
            if item is None or self._killed:
                if item is not None:
                    self._reply(item[1], "error", "the commit thread was stopped")
                return 0
            message, future, lazy = item
            try:
                kind, value = committer.handle(encode(message), message)
            except BaseException as exc:
                # the request being written fails with the thread, as with a process that
                # died under it: its caller must not wait for ever
                self._reply(future, "error", f"the commit thread failed: {exc!r}")
                raise
            self._reply(future, kind, value, lazy)

    def _fail_queued(self, why: str) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._reply(item[1], "error", why)

    def _end(self, status: int) -> None:
        def ended() -> None:
            self.collect()  # lazy replies still held: answered before the end
            self.alive = False
            if not self._exited.done():
                self._exited.set_result(status)

        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(ended)


def _ignore_file_size_signal() -> None:
    """Ignore SIGXFSZ: a file-size limit then fails the write with EFBIG.

    It surfaces as "disk full" (an error the writer retries) instead of killing the node.
    """
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
