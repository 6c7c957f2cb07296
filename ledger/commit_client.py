"""The node's side of the commit process (:mod:`edge.ledger.commit_process`): start it, send requests.

Kept apart from the child's code so that the child imports no asyncio (and, through it, no ssl
and OpenSSL): the commit process is a second Python process for the whole life of a node, and
what it imports is resident memory for as long (docs/design.md, "Memory and CPU of a running
node"). The protocol is described in :mod:`edge.ledger.commit_process`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pickle
import sys
from collections import deque
from pathlib import Path
from typing import Any

from edge.errors import StorageError
from edge.ledger.commit_process import _F_SETPIPE_SZ, _HEADER, _PIPE_SIZE, _encode
from edge.ledger.committer import JOURNAL_FRAME_MAX, JOURNAL_MOVE_AGE

__all__ = ["CommitProcess"]


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
        #: the commit thread's (answer times of lazy replies); a process has none
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
                # Its own process group: a SIGTERM or Ctrl-C to the node's group (a service
                # manager's stop, a terminal) must not reach it while it starts, before it
                # ignores them (status -15 seen when a stop came within ~150 ms of its start).
                # The node ends it by closing its input; PDEATHSIG when the node dies.
                process_group=0,
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

    def request(self, *message: Any, lazy: bool = False) -> asyncio.Future[Any]:
        """Send one request; the future gets the reply's value or a :class:`StorageError`.

        ``lazy`` is the commit thread's (a reply that need not wake the loop); a process's
        replies come through a pipe the loop watches anyway, so it answers each at once.
        """
        del lazy
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self.alive or self._stdin is None:
            future.set_exception(StorageError(f"{self._where}: the commit process is not running"))
            return future
        header, frame = _encode(message)
        self._stdin.write(header)
        self._stdin.write(frame)  # not joined to the header: a batch's frame is ~1 MB
        self._waiting.append(future)
        return future

    def collect(self) -> None:
        """Nothing to do: every reply is resolved as it arrives (the commit thread's has)."""

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
