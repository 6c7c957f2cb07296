"""The ledger is the outbox: what a stream of entries still owes the broker, and its cursor.

Every alarm transition, lot record and operator action is a durable ledger entry before anyone
hears of it; the outbox delivers them from there. Per stream (:data:`STREAMS`) it keeps a
**cursor**: the seq of the last entry the broker acknowledged (PUBACK, QoS 1), advanced only in
order. Entries after the cursor are delivered, oldest first, from one of two places:

- **memory** (the fast path): the writer hands every durable batch to :meth:`Stream.offer`, and an
  entry published at once from there reaches a subscriber a few milliseconds after its commit;
- **the ledger** (replay): after a reconnect, a restart, or when more entries wait than memory
  holds, the publisher reads them back from the database in chunks.

Memory is bounded (``memory`` entries per stream; more waiting switch the stream to the
ledger); what waits on disk is not. The bookkeeping that keeps the two paths gap-free: ``live``
holds every durable entry of the stream with seq above ``complete_after``; entries at or below
it that are not yet handed out are read from the ledger. An overflow empties ``live`` and
raises ``complete_after`` to the entry that did not fit, so nothing falls between the two.

Delivery is at least once: a cursor is persisted lazily (:mod:`edge.outbox_store`), and a lost
PUBACK means a message is sent again; payloads carry the entry id to de-duplicate by.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from edge.ledger.entry import Entry, parse_ts
from edge.outbox_payloads import STREAMS

__all__ = ["STREAMS", "OutboxStats", "Stream", "StreamStats"]


@dataclass(slots=True)
class StreamStats:
    """One stream's figures (read by ``node.stats`` and the metrics endpoint).

    Attributes:
        depth: durable entries of the stream not yet acknowledged by the broker.
        delivered: entries acknowledged this run.
        replayed: of those, entries read back from the ledger (not sent from memory).
        cursor: seq of the last acknowledged entry (-1: none yet).
        overflows: times more entries waited than memory holds (the stream went to the ledger).
        oldest: RFC 3339 time of the oldest entry not yet acknowledged, when known (None: none).
    """

    depth: int = 0
    delivered: int = 0
    replayed: int = 0
    cursor: int = -1
    overflows: int = 0
    oldest: str | None = None

    def oldest_age(self, now: float) -> float:
        """Seconds the oldest unacknowledged entry has waited (0.0 when none waits)."""
        if self.depth <= 0 or self.oldest is None:
            return 0.0
        return max(0.0, now - parse_ts(self.oldest))


@dataclass(slots=True)
class OutboxStats:
    """Every figure of the MQTT side (see /work/prompts/outbox-interface.md for names)."""

    streams: dict[str, StreamStats] = field(default_factory=dict)
    telemetry_published: int = 0  #: telemetry batches (messages) published
    telemetry_readings: int = 0  #: readings in them
    telemetry_dropped: int = 0  #: readings dropped, oldest first, when the queue was full
    telemetry_queued: int = 0  #: readings waiting

    @property
    def depth(self) -> int:
        """Entries not yet acknowledged, over every stream."""
        return sum(s.depth for s in self.streams.values())


class Stream:
    """One stream's delivery state (driven by :class:`edge.alerts.AlertPublisher`; no I/O here).

    Args:
        name: the stream's name (a key of :data:`STREAMS`).
        memory: most entries kept in memory waiting for the broker.
    """

    def __init__(self, name: str, *, memory: int = 1000) -> None:
        self.name = name
        self.types = STREAMS[name]
        self.memory = memory
        self.stats = StreamStats()
        self.cursor = -1  #: last acknowledged seq
        self.covered = -1  #: every entry up to here is handed out (or acknowledged)
        self.fetched = -1  #: the ledger has been read up to here (into the replay buffer)
        self.complete_after = -1  #: ``live`` holds every durable entry above this seq
        self.live: deque[Entry] = deque()
        self.wake = asyncio.Event()  #: set on new entries and finished publishes
        self.dirty = False  #: the cursor moved since it was last stored

    def start(self, cursor: int, durable_end: int) -> None:
        """Begin at stored ``cursor``; entries up to ``durable_end`` (exclusive) are on disk."""
        self.cursor = self.covered = self.fetched = cursor
        self.stats.cursor = cursor
        self.complete_after = max(self.complete_after, durable_end - 1, cursor)

    def offer(self, entry: Entry) -> None:
        """A durable entry of this stream (called in seq order by the writer's listener)."""
        st = self.stats
        st.depth += 1
        if st.depth == 1:
            st.oldest = entry.ts
        if entry.seq <= self.complete_after:
            return  # already known to be on disk (offered before start() was called)
        if len(self.live) >= self.memory:
            # Too many wait: forget them all here (they are on the ledger) and read them back.
            self.live.clear()
            self.complete_after = entry.seq
            st.overflows += 1
        else:
            self.live.append(entry)
        self.wake.set()

    def rewind(self) -> None:
        """The connection is gone: everything not acknowledged is sent again, in order."""
        self.covered = self.fetched = self.cursor

    def needs_ledger(self) -> bool:
        """Whether entries wait on disk that are not in the replay buffer yet."""
        return self.fetched < self.complete_after

    def take_live(self) -> Entry | None:
        """The next entry from memory (only once nothing older waits on disk)."""
        if self.needs_ledger():
            return None
        while self.live:
            entry = self.live.popleft()
            self.complete_after = entry.seq  # popped: from here on, it is the ledger's to give
            self.fetched = entry.seq
            if entry.seq > self.covered:
                return entry
        return None

    def acked(self, entry: Entry, replayed: bool, next_oldest: str | None) -> None:
        """The broker acknowledged ``entry`` (the oldest handed out): the cursor moves to it."""
        self.cursor = entry.seq
        self.dirty = True
        st = self.stats
        st.cursor = entry.seq
        st.depth = max(0, st.depth - 1)
        st.delivered += 1
        if replayed:
            st.replayed += 1
        if st.depth == 0:
            st.oldest = None
        elif next_oldest is not None:
            st.oldest = next_oldest
        elif self.live and not self.needs_ledger():
            st.oldest = self.live[0].ts
        else:
            st.oldest = entry.ts  # the next one is on disk, at least this old: a bound
