"""Entries messages on their way to the ledger: the batch, merging, and the gap buffer.

What the sync service's apply worker (:mod:`edge.sync.service`) works on: a :class:`Batch` per
entries message (a live push or part of an answer), consecutive batches of one feed merged into
one transaction (:func:`merge_queued`), and live batches that arrived past a gap kept until the
gap is fetched (:class:`HeldBatches`). Bounded: the caller's queue, and :data:`BUFFER_MAX` /
:data:`BUFFER_BYTES` per feed here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from edge.ledger.replica import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES

__all__ = ["BUFFER_BYTES", "BUFFER_MAX", "Batch", "HeldBatches", "merge_queued"]

BUFFER_MAX = 32  #: live messages held per feed while the gap before them is fetched
BUFFER_BYTES = 8 * 1024 * 1024  #: and their canonical bytes (not yet verified: anyone's)


@dataclass(frozen=True, slots=True)
class Batch:
    """The entries of one message, to verify and store."""

    feed: str
    start: int
    raws: tuple[bytes, ...]
    source: str  #: the node it came from
    key: int = 0  #: the range request it answers (0: a live push)


def merge_queued(batch: Batch, queue: asyncio.Queue[Batch]) -> tuple[Batch, Batch | None, int]:
    """``batch`` joined with the consecutive batches of its feed waiting in ``queue``.

    Stored in one transaction: one fsync instead of one per message (live pushes of a busy
    feed, an answer's stream); the ledger verifies every checkpoint inside either way.

    Returns:
        (the merged batch, the first queued batch that did not join (None: none taken), how
        many joined).
    """
    parts = [batch]
    count, size = len(batch.raws), sum(map(len, batch.raws))
    peeked: Batch | None = None
    while not queue.empty():
        nxt = queue.get_nowait()
        last = parts[-1]
        if (
            nxt.feed != batch.feed
            or nxt.start != last.start + len(last.raws)
            or count + len(nxt.raws) > MAX_BATCH_ENTRIES
            or size + sum(map(len, nxt.raws)) > MAX_BATCH_BYTES // 2
        ):
            peeked = nxt
            break
        parts.append(nxt)
        count += len(nxt.raws)
        size += sum(map(len, nxt.raws))
    if len(parts) == 1:
        return batch, peeked, 0
    raws = tuple(r for p in parts for r in p.raws)
    key = next((p.key for p in parts if p.key), 0)
    return Batch(batch.feed, batch.start, raws, batch.source, key), peeked, len(parts) - 1


class HeldBatches:
    """Live batches that arrived past a gap, per feed, until the store reaches them."""

    def __init__(self) -> None:
        self._held: dict[str, dict[int, Batch]] = {}  # feed -> start -> live batch

    def keep(self, batch: Batch) -> bool:
        """Keep a live batch past a gap; False when it is an answer or the buffer is full."""
        held = self._held.setdefault(batch.feed, {})
        size = sum(len(r) for b in held.values() for r in b.raws) + sum(map(len, batch.raws))
        if batch.key == 0 and len(held) < BUFFER_MAX and size <= BUFFER_BYTES:
            held[batch.start] = batch
            return True
        return False

    def next_after(self, feed: str, end: int) -> Batch | None:
        """The held batch that extends a store now ending at ``end`` (those it covers dropped)."""
        held = self._held.get(feed)
        for s in sorted(held or ()):
            if s > end:
                return None
            assert held is not None
            batch = held.pop(s)
            if s + len(batch.raws) > end:
                return batch
        return None
