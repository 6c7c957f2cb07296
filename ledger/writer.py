"""The runtime's way into the ledger: an async, bounded, group-committing writer.

Entries are built (chained and hashed) on the event loop as soon as :meth:`LedgerWriter.append`
is called, so the caller gets a :class:`~edge.ledger.entry.NotCanonical` error at once for bad
content. :meth:`LedgerWriter.run` cuts them into batches — when the oldest pending entry has
waited ``flush_interval`` or ``batch_max`` entries are pending — and hands each batch (with its
signed checkpoint) to its commit worker (:mod:`edge.ledger.committer`, in a thread by default,
``commit_worker="process"`` for a child process), which writes it while the loop keeps
building the next batch. Capacity is bounded:
``append`` waits while ``queue_size`` entries are not yet durable, so a stalled disk slows the
producers down instead of eating memory.

A failed write (disk full, I/O error, the commit worker died) is logged and retried with
backoff; the batch keeps its place, nothing appended is dropped while the process lives.

Urgent entries (alarm transitions, operator actions, lot records: what a subscriber waits for)
do not wait for the flush timer: :meth:`LedgerWriter.commit_now` cuts their batch at once.
Bulk work (readings, their digests) keeps batching. :meth:`LedgerWriter.on_durable` runs a
callback once an entry is durable: outputs of an event (MQTT alerts) leave from there, never
before.

Raw readings (:meth:`LedgerWriter.stage_readings`) and the tracked engine state
(:meth:`Ledger.track_state`) ride with the batches: a batch may carry only them.

A batch is cut up to an eighth of ``flush_interval`` early (:data:`FLUSH_EARLY`) when something
is added to it then: the next poll's readings arrive about one interval after the first ones,
and cutting in that wake-up spares the writer a wake-up of its own a few milliseconds later
(docs/design.md, "Where the CPU goes"). Never later than the interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from edge.errors import LedgerClosed, StorageError
from edge.failpoints import hit
from edge.ledger.commit import batch_params, block_rows
from edge.ledger.committer import JOURNAL_FRAME_MAX, JOURNAL_MOVE_AGE
from edge.ledger.entry import Entry
from edge.ledger.keys import NodeKey
from edge.ledger.signing import SignClock
from edge.ledger.store import Batch, Ledger
from edge.ledger.writer_commits import (
    _FIRST_RETRY,
    COMMIT_WORKERS,
    CommitProcessLink,
    CommitWorker,
)
from edge.ledger.writer_prune import WriterPrunes
from edge.readings import Reading

__all__ = ["LedgerWriter"]

log = logging.getLogger("edge.ledger")

#: How early (a fraction of ``flush_interval``) a batch may be cut in a wake-up the writer has
#: anyway (see the module doc).
FLUSH_EARLY = 0.125


class LedgerWriter(CommitProcessLink, WriterPrunes):
    """Async single writer of a node's feed.

    Its commit-process plumbing is in :mod:`edge.ledger.writer_commits`, its prunes of raw
    readings in :mod:`edge.ledger.writer_prune` (mixins of this class).

    Typical use in the runtime::

        writer = LedgerWriter.open(config.ledger_path, key)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(writer.run(), name="ledger-writer")
            await writer.append("node.start", {...}, ts=now)
            ...
        # cancelling run() drains and commits what is pending, then closes the ledger.

    Attributes:
        committed: appended entries (checkpoints not counted) that are durably committed.
        entry_commits: durable batches that carried appended entries (each a commit of its
            own: an fsync'd journal append or an SQLite transaction).
        signed: durable batches that ended with a checkpoint.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        flush_interval: float = 0.05,
        batch_max: int = 1000,
        queue_size: int = 10_000,
        retry_max: float = 5.0,
        stall_warning: float = 30.0,
        journal_max: int = JOURNAL_FRAME_MAX,
        journal_age: float = JOURNAL_MOVE_AGE,
        commit_worker: str = COMMIT_WORKERS[0],
    ) -> None:
        if ledger.key is None:
            raise StorageError(f"ledger {ledger.path} was opened without a key: cannot write")
        if commit_worker not in COMMIT_WORKERS:
            raise ValueError(
                f"commit_worker must be one of {COMMIT_WORKERS}, not {commit_worker!r}"
            )
        #: "thread" (:mod:`edge.ledger.commit_thread`) or "process" (:mod:`.commit_process`)
        self.commit_worker = commit_worker
        self.ledger = ledger
        self.flush_interval = flush_interval
        self.batch_max = batch_max
        self.queue_size = queue_size
        self.retry_max = retry_max
        self.stall_warning = stall_warning
        #: Batches of at most this many bytes go to the commit journal (0: none do); see
        #: :mod:`edge.ledger.journal`.
        self.journal_max = journal_max
        #: A journal record waits at most this many seconds before it is moved into SQLite.
        self.journal_age = journal_age
        self.committed = 0
        #: batch writes answered ok, their total and longest time from sent to durable (s)
        self.commits = 0
        self.commit_seconds = 0.0
        self.commit_seconds_max = 0.0
        self.entry_commits = 0
        self.signed = 0
        self._waiting_entries = 0  # appended, not yet durable (checkpoints not counted)
        self._work = asyncio.Event()  # set when run() may have something to do
        self._progress = asyncio.Event()  # set (and replaced) after every durable batch
        self._first_pending: float | None = None  # loop time of the oldest entry in no batch
        self._signing = SignClock(journal_max, journal_age)  # when a cut ends signed
        self._closing = False
        self._closed = False
        self._done = asyncio.Event()
        self._running = False
        self._commits: CommitWorker | None = None  # writes our batches (see committer)
        # Batches handed to it, oldest first: (batch, completion, loop time it was sent).
        self._inflight: deque[tuple[Batch, asyncio.Future[None], float]] = deque()
        self._stall_warned: asyncio.Future[None] | None = None  # the write last warned about
        self._retry_delay = _FIRST_RETRY
        # (seq, callback) in seq order: run once our feed's size passes seq (on_durable).
        self._watchers: deque[tuple[int, Callable[[], None]]] = deque()
        # called with the entries of every durable batch, in order (add_listener)
        self._listeners: list[Callable[[Sequence[Entry]], None]] = []

    @classmethod
    def open(cls, path: str | os.PathLike[str], key: NodeKey, **options: Any) -> LedgerWriter:
        """Open the ledger at ``path`` for writing (see :meth:`Ledger.open` for errors)."""
        return cls(Ledger.open(path, key), **options)

    @property
    def size(self) -> int:
        """Durable entries in our feed, checkpoints included."""
        return self.ledger.size

    @property
    def commit_pid(self) -> int | None:
        """Process id of the commit process writing our batches.

        None while it is not running, and with the default commit thread.
        """
        commits = self._commits
        return commits.pid if commits is not None and commits.alive else None

    # -- producers ---------------------------------------------------------------------------

    async def append(
        self,
        type: str,
        body: Mapping[str, Any],
        *,
        ts: float,
        lots: Sequence[str] = (),
        actor: str = "",
        refs: Sequence[str] = (),
    ) -> Entry:
        """Append an entry; waits while the writer is full. Durable once :attr:`committed` covers it.

        Returns:
            The entry (its ``seq`` can be passed to :meth:`durable`).

        Raises:
            NotCanonical: bad content (raised here, never later in the writer task).
            LedgerClosed: the writer was closed.
        """
        if self._waiting_entries >= self.queue_size or self._closing:
            await self._wait_for_space()
        # Builds, checks and chains the entry at once; on NotCanonical nothing has changed.
        entry = self.ledger.append(type, body, ts=ts, lots=lots, actor=actor, refs=refs)
        self._entered()
        return entry

    async def add_readings(self, readings: Sequence[Reading]) -> Entry:
        """Store a block of raw readings and append its ``readings.digest`` entry."""
        if self._waiting_entries >= self.queue_size or self._closing:
            await self._wait_for_space()
        entry = self.ledger.append_readings(readings)
        self._entered()
        return entry

    async def room(self) -> None:
        """Wait until the writer has room (back-pressure); then the ``*_now`` calls may follow.

        The ``*_now`` methods never wait, so a caller can change its state and append the entries
        that record the change without yielding to the loop in between (where batches are cut).

        Raises:
            LedgerClosed: the writer was closed.
        """
        if self._waiting_entries >= self.queue_size or self._closing:
            await self._wait_for_space()

    def append_now(
        self,
        type: str,
        body: Mapping[str, Any],
        *,
        ts: float,
        lots: Sequence[str] = (),
        actor: str = "",
        refs: Sequence[str] = (),
    ) -> Entry:
        """Append an entry without waiting for room (call :meth:`room` first).

        Unlike :meth:`append`, never cuts a batch here, even at ``batch_max``: the batch is cut
        when the caller next yields to the loop, so entries appended together land together.

        Raises:
            NotCanonical: bad content.
            LedgerClosed: the writer was closed.
        """
        self._check_open()
        entry = self.ledger.append(type, body, ts=ts, lots=lots, actor=actor, refs=refs)
        self._entered(cut=False)
        return entry

    def stage_readings(self, readings: Sequence[Reading]) -> None:
        """Add raw readings to the open block; the next batch makes them durable."""
        self._check_open()
        self.ledger.add_readings(readings)
        hit("readings.staged")
        self._dirtied()

    def close_block(self) -> Entry | None:
        """Close the open readings block: its ``readings.digest`` entry is appended (None: empty)."""
        self._check_open()
        entry = self.ledger.close_block()
        if entry is not None:
            self._entered(cut=False)
        return entry

    def state_changed(self) -> None:
        """The state tracked by the ledger changed (:meth:`Ledger.track_state`): store it."""
        self.ledger.state_changed()
        self._dirtied()

    def commit_now(self) -> None:
        """Cut what is pending into a batch now and send it to disk (no flush timer)."""
        if self.ledger.dirty and not self._closed:
            self._cut()
            hit("batch.cut")
            self._first_pending = None
            self._work.set()

    def _cut(self, *, sign: bool | None = None) -> Batch | None:
        """Cut a batch: signed when ``sign``, else when the signing policy says (:mod:`.signing`)."""
        now = asyncio.get_running_loop().time()
        return self._signing.cut(self.ledger, sign=sign, closing=self._closing, now=now)

    async def sync(self) -> None:
        """Sign what is durable unsigned and move the commit journal into the database now.

        For readers of the database (``edge ledger verify``, ``query``, ``trace`` through the
        control socket's ``sync``, and the node's own lookups): afterwards the database holds
        every entry appended before the call, under a checkpoint.

        Raises:
            LedgerClosed: the writer was closed.
            StorageError: the commit worker could not be reached.
        """
        self._check_open()
        ledger = self.ledger
        if not self._running:
            self._drain_sync()
            ledger.move_journal()
            return
        batch = self._cut(sign=True) if ledger.dirty or ledger.unsigned else None
        if batch is not None:
            hit("batch.cut")
            self._first_pending = None
            self._work.set()
            while batch in ledger.unwritten:
                self._check_open()
                await self._progress.wait()
        commits = await self._commit_process()
        await commits.request("move")

    def sign_for_peers(self, on: bool) -> None:
        """Peers listen to our feed (sync connected): sign small batches within seconds.

        Pushed entries need a checkpoint a peer can verify; without peers the journal's pace
        (one checkpoint per ``journal_age``) saves the card (:mod:`edge.ledger.signing`).
        """
        if self._signing.live != on:
            self._signing.live = on
            self._work.set()  # the signing deadline moved

    def on_durable(self, seq: int, callback: Callable[[], None]) -> None:
        """Run ``callback`` (on the loop) once the entry at ``seq`` of our feed is durable.

        Callbacks run in seq order; one whose entry is never committed (the writer closed
        first) never runs: what was not recorded is not announced.
        """
        if self.ledger.size > seq:
            callback()
        else:
            self._watchers.append((seq, callback))

    def add_listener(self, listener: Callable[[Sequence[Entry]], None]) -> None:
        """Call ``listener`` with the entries of every batch once it is durable, in seq order.

        The MQTT outbox (:mod:`edge.outbox`) publishes from here: it sees every durable entry
        once, however it was appended. Checkpoint entries are included; a listener filters.
        """
        self._listeners.append(listener)

    async def _wait_for_space(self) -> None:
        """Block while ``queue_size`` entries are not yet durable (back-pressure, not drops)."""
        while True:
            self._check_open()
            if self._waiting_entries < self.queue_size:
                return
            await self._progress.wait()

    def _check_open(self) -> None:
        if self._closing:
            raise LedgerClosed(f"ledger writer for {self.ledger.path} is closed")

    def _entered(self, cut: bool = True) -> None:
        self._waiting_entries += 1
        if self.ledger.uncut >= self.batch_max:
            if cut:
                # Entries chain as they are appended, so a batch boundary can only be drawn
                # now, not later: cut here (one signature) and let run() write it.
                self._cut(sign=True)
                self._first_pending = None
            self._work.set()  # (not cut: run() cuts when the appender yields)
        else:
            self._dirtied()

    def _dirtied(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._first_pending is None:
            self._first_pending = now
            self._work.set()  # starts the flush clock; later entries ride on it
        elif now >= self._cut_from(self._first_pending):
            self._work.set()  # due within the slack: cut in this wake-up, not a later one

    def _cut_from(self, first_pending: float) -> float:
        """From when pending entries may be cut in a wake-up the writer has anyway."""
        return first_pending + self.flush_interval * (1.0 - FLUSH_EARLY)

    async def durable(self, seq: int) -> None:
        """Wait until the entry at ``seq`` of our feed is durably committed.

        Raises:
            LedgerClosed: the writer closed before it was (it was not committed).
        """
        while self.ledger.size <= seq:
            if self._closed:
                raise LedgerClosed(
                    f"ledger writer for {self.ledger.path} closed before seq {seq} was committed"
                )
            await self._progress.wait()

    # -- the writer task ----------------------------------------------------------------------

    async def run(self) -> None:
        """Commit batches until cancelled or closed; then drain, commit, checkpoint and close."""
        if self._running:
            raise RuntimeError("LedgerWriter.run() is already running")
        if self._closed:
            return  # aclose() came first and already committed everything
        self._running = True
        try:
            while True:
                if await self._wait_for_batch():
                    self._cut()
                    hit("batch.cut")
                    self._first_pending = None
                if self._inflight and self._inflight[0][1].done():
                    await self._harvest()
                # Every cut batch goes to the commit worker at once, behind those in flight:
                # it goes from one batch to the next without waiting for this loop.
                unsent = self.ledger.unwritten[len(self._inflight) :]
                if unsent:
                    try:
                        commits = await self._commit_process()
                    except StorageError as exc:
                        if self._closing:
                            break  # the finally block writes what is left in this process
                        await self._pause(exc)
                        continue
                    for batch in unsent:
                        done = commits.request(
                            "write",
                            batch_params(batch),
                            block_rows(batch),
                            batch.readings,
                            batch.state,
                            # readings and state only: nobody waits, the answer need not
                            # wake the loop (edge.ledger.commit_thread)
                            lazy=not batch.entries,
                        )
                        done.add_done_callback(self._wake)
                        self._inflight.append((batch, done, asyncio.get_running_loop().time()))
                if self._closing and not self.ledger.unwritten and not self.ledger.dirty:
                    break
        finally:
            # Cancelled or closing: let the commit worker finish what it was given, record
            # what it committed, then commit what is left here (blocking the loop briefly at
            # shutdown beats losing entries).
            await self._stop_commit_process()
            self._drain_sync()
            self._closed = True
            self._closing = True
            self.ledger.close()
            self._done.set()
            self._notify_progress()

    def _wake(self, _: object) -> None:
        self._work.set()

    async def _wait_for_batch(self) -> bool:
        """Wait until there is something to do; True when pending entries are due a flush.

        Meanwhile, a write not answered within ``stall_warning`` seconds is logged once (a disk
        or a commit worker that hangs would otherwise only show as producers waiting).
        """
        loop = asyncio.get_running_loop()
        ledger = self.ledger
        inflight = self._inflight
        while True:
            self._work.clear()
            if self._commits is not None:
                self._commits.collect()  # answers held for this wake-up (lazy requests)
            if self._closing and (ledger.dirty or not ledger.unwritten):
                return True
            if ledger.uncut >= self.batch_max:
                return True  # appended without a cut (append_now): cut now that we run
            if len(ledger.unwritten) > len(inflight) or (inflight and inflight[0][1].done()):
                return False
            now = loop.time()
            deadlines = []
            if self._first_pending is not None and ledger.dirty:
                if self._cut_from(self._first_pending) <= now:
                    return True  # due, or due soon and we are awake anyway
                deadlines.append(self._first_pending + self.flush_interval)
            sign_at = self._signing.deadline()  # a checkpoint for what waits unsigned
            if sign_at is not None:
                if sign_at <= now:
                    return True
                deadlines.append(sign_at)
            if inflight and inflight[0][1] is not self._stall_warned:
                batch, done, sent = inflight[0]
                if sent + self.stall_warning <= now:
                    self._stall_warned = done
                    log.warning(
                        "ledger %s: a batch of %d entries sent %.0fs ago is not committed yet "
                        "(disk or commit worker stuck?); %d entries waiting",
                        ledger.path,
                        len(batch.entries),
                        now - sent,
                        ledger.pending,
                    )
                    continue
                deadlines.append(sent + self.stall_warning)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(min(deadlines) if deadlines else None):
                    await self._work.wait()

    def _written(self, batch: Batch) -> None:
        self.ledger.written(batch)
        # the checkpoint took no queue space
        appended = len(batch.entries) - (batch.checkpoint is not None)
        self.committed += appended
        self.entry_commits += appended > 0
        self.signed += batch.checkpoint is not None
        self._waiting_entries -= appended
        if batch.entries:
            hit("batch.durable")
            for listener in self._listeners:
                try:
                    listener(batch.entries)
                except Exception:  # an output's failure must not stop the ledger
                    log.exception("ledger %s: a durable-batch listener failed", self.ledger.path)
        self._notify_progress()
        watchers = self._watchers
        size = self.ledger.size
        while watchers and watchers[0][0] < size:
            _, callback = watchers.popleft()
            try:
                callback()
            except Exception:  # an output's failure must not stop the ledger
                log.exception("ledger %s: a durable-entry callback failed", self.ledger.path)

    def _notify_progress(self) -> None:
        # Wake every durable() waiter; later waiters wait on a fresh event.
        self._progress.set()
        self._progress = asyncio.Event()

    def _drain_sync(self) -> None:
        try:
            self.ledger.cut()
            for batch in self.ledger.unwritten:
                self.ledger.write(batch)
                self._written(batch)
        except (StorageError, LedgerClosed) as exc:
            log.error(
                "ledger writer closing with %d entries not committed: %s", self.ledger.pending, exc
            )

    async def aclose(self) -> None:
        """Stop accepting entries, commit everything pending, close the ledger. Idempotent."""
        if self._closed:
            return
        self._closing = True
        if self._running:
            self._work.set()
            await self._done.wait()
        else:
            self._drain_sync()
            self._closed = True
            self.ledger.close()
            self._done.set()

    async def __aenter__(self) -> LedgerWriter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
