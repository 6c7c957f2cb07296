"""The writer's link to its commit worker: start it, stop it, record what it wrote, back off.

:class:`CommitProcessLink` is a mixin of :class:`~edge.ledger.writer.LedgerWriter` (its
attributes are the writer's, set in ``LedgerWriter.__init__``): the plumbing between the
writer task on the event loop and the worker that writes the batches, a thread
(:mod:`edge.ledger.commit_thread`, the default) or a child process
(:mod:`edge.ledger.commit_process`); both run :mod:`edge.ledger.committer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING

from edge.errors import StorageError
from edge.ledger.commit_client import CommitProcess
from edge.ledger.commit_thread import CommitThread
from edge.ledger.store import Batch, Ledger

__all__ = ["COMMIT_WORKERS", "CommitProcessLink", "CommitWorker"]

#: The commit workers a writer can use (``[ledger] commit_worker``), the default first.
COMMIT_WORKERS = ("thread", "process")
CommitWorker = CommitThread | CommitProcess

log = logging.getLogger("edge.ledger")

_FIRST_RETRY = 0.05  # seconds before a failed batch write is retried; doubles up to retry_max
_START_TIMEOUT = 30.0  # seconds for the commit worker to start and open the database
_STOP_TIMEOUT = 60.0  # seconds for it to finish the batches it holds (at most queue_size entries)


def _retrieved(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()


class CommitProcessLink:
    """Start/restart, stop and harvest the commit worker of a :class:`LedgerWriter`."""

    # the writer's (edge.ledger.writer.LedgerWriter.__init__)
    ledger: Ledger
    retry_max: float
    journal_max: int
    journal_age: float
    commit_worker: str
    commits: int
    commit_seconds: float
    commit_seconds_max: float
    _commits: CommitWorker | None
    _inflight: deque[tuple[Batch, asyncio.Future[None], float]]
    _retry_delay: float

    if TYPE_CHECKING:

        def _written(self, batch: Batch) -> None: ...

    async def _commit_process(self) -> CommitWorker:
        """The running commit worker (started, or restarted after it died)."""
        if self._commits is None or not self._commits.alive:
            if self._commits is not None:
                await self._commits.wait()
            worker = CommitThread if self.commit_worker == "thread" else CommitProcess
            self._commits = await worker.start(
                self.ledger.path,
                lock_fd=self.ledger.lock_fd,
                where=f"ledger {self.ledger.path}: commit",
                timeout=_START_TIMEOUT,
                journal_max=self.journal_max,
                journal_age=self.journal_age,
            )
        return self._commits

    async def _stop_commit_process(self) -> None:
        """End the commit worker; record every batch it committed (by the database's word)."""
        commits, self._commits = self._commits, None
        if commits is not None:
            try:
                async with asyncio.timeout(_STOP_TIMEOUT):
                    await commits.close()
            except (TimeoutError, asyncio.CancelledError):
                commits.kill()
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    async with asyncio.timeout(_STOP_TIMEOUT):
                        await commits.wait()
        # A reply may be lost (the process was killed after COMMIT): the feed's end in the
        # database says which in-flight batches landed.
        for _, done, _ in self._inflight:
            done.add_done_callback(_retrieved)  # failed for the process's sake: nothing to report
        self._inflight.clear()
        self._reconcile()

    def _reconcile(self) -> None:
        """Record as written the unwritten batches the database holds (their replies were lost).

        Batches are written one after another, each in its own transaction: every batch up to
        the last one whose entries the feed holds landed. A batch without entries after it may
        or may not have: it is written again (its readings and state are keyed: no doubles).
        """
        unwritten = self.ledger.unwritten
        if not unwritten:
            return
        end = self.ledger.stored_end()
        landed = 0
        for i, batch in enumerate(unwritten):
            if batch.entries:
                if batch.entries[-1].seq >= end:
                    break
                landed = i + 1
        for batch in unwritten[:landed]:
            self._written(batch)

    async def _harvest(self) -> None:
        """Record the finished writes, oldest first; after a failed one, pause before retrying."""
        inflight = self._inflight
        while inflight and inflight[0][1].done():
            batch, done, sent = inflight[0]
            exc = done.exception()
            if exc is None:
                inflight.popleft()
                commits = self._commits
                answered = commits.answered_at.pop(done, None) if commits is not None else None
                took = (answered or asyncio.get_running_loop().time()) - sent
                self.commits += 1
                self.commit_seconds += took
                self.commit_seconds_max = max(self.commit_seconds_max, took)
                self._written(batch)
                self._retry_delay = _FIRST_RETRY
                continue
            if not isinstance(exc, StorageError):
                raise exc
            # The commit worker refuses a batch whose predecessor is not written, so the
            # batches behind this one fail too. Once all have answered, forget them: after the
            # pause, run() sends them again, this one first.
            await asyncio.wait([done for _, done, _ in inflight])
            for _, later, _ in inflight:
                later.exception()  # retrieved: they failed for this one's sake
            inflight.clear()
            if self._commits is not None and not self._commits.alive:
                # It died: batches it committed before its replies were lost are not sent
                # again (they would be refused as not next in the feed, for ever).
                try:
                    self._reconcile()
                except StorageError as read_failed:
                    exc = read_failed
            await self._pause(exc)

    async def _pause(self, exc: StorageError) -> None:
        """Log a failed write (or a commit worker that would not start) and back off."""
        log.error(
            "%s; retrying in %.2fs (%d entries waiting)",
            exc,
            self._retry_delay,
            self.ledger.pending,
        )
        await asyncio.sleep(self._retry_delay)
        self._retry_delay = min(self._retry_delay * 2, self.retry_max)
