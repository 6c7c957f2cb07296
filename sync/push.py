"""Our own feed on its way to peers: entries taken from the writer as they become durable.

The node's :class:`~edge.ledger.writer.LedgerWriter` hands every durable batch to its listeners
(:meth:`~edge.ledger.writer.LedgerWriter.add_listener`); :class:`LivePush` keeps the entries of
our feed from there until they are pushed. Why from the writer and not from the database: with
the commit journal on (the default), durable entries wait in ``<db>.eqj`` up to two minutes
before they reach SQLite (SD-card wear, docs/design.md), so the database would hold the push
back by as much. A peer verifies every message by the checkpoint it ends with, so only runs
that end on a checkpoint entry are taken; what follows the last checkpoint waits for the next
(a syncing node's writer signs within seconds: :meth:`LedgerWriter.sign_for_peers`).

Bounded: at most :data:`HELD_MAX` entries wait (the broker gone for a while); beyond, the
oldest are dropped and counted, and the push resumes after a gap, which peers fetch with a range
request (answered from the database, after the writer moved its journal there).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from itertools import islice

from edge.ledger.entry import CHECKPOINT, Entry

__all__ = ["HELD_MAX", "LivePush", "Run"]

#: Entries of our feed kept for the push at most (about 1 KB each; the oldest go first).
HELD_MAX = 20_000

#: A run of consecutive entries of our feed, ending on a checkpoint: (first seq, raws).
Run = tuple[int, tuple[bytes, ...]]


class LivePush:
    """The durable entries of our feed not yet pushed (see the module doc).

    Args:
        feed: our feed id (entries of other feeds are ignored).
        start: the first seq to push (what was durable before the writer was followed is
            there for peers' range requests).
    """

    def __init__(self, feed: str, start: int) -> None:
        self.feed = feed
        #: entries pushed, or skipped (their seq + 1): the next push starts here
        self.pushed = start
        #: the end of the last checkpoint entry durable (entries below it may be pushed)
        self.signed_end = start
        #: the last checkpoint entry durable (its raw bytes), for our head's announcement
        self.checkpoint: bytes | None = None
        self.dropped = 0  #: entries dropped unpushed (the bound), fetched by peers instead
        self.ready = asyncio.Event()  #: set when a new checkpoint makes entries pushable
        self._held: deque[tuple[int, bytes, bool]] = deque()  # (seq, raw, is a checkpoint)

    def on_durable(self, entries: Sequence[Entry]) -> None:
        """The writer's listener: keep our feed's entries of a durable batch (on the loop)."""
        held = self._held
        signed = False
        for e in entries:
            if e.feed != self.feed or e.seq < self.pushed:
                continue
            if held and e.seq != held[-1][0] + 1:
                held.clear()  # not contiguous (cannot happen with one writer): start again
            checkpoint = e.type == CHECKPOINT
            held.append((e.seq, e.raw, checkpoint))
            if checkpoint:
                self.signed_end = e.seq + 1
                self.checkpoint = e.raw
                signed = True
        while len(held) > HELD_MAX:
            held.popleft()
            self.dropped += 1
        if signed:
            self.ready.set()

    @property
    def pending(self) -> int:
        """Entries durable and signed that are not pushed yet."""
        return max(0, self.signed_end - self.pushed)

    def take(self, most: int) -> Run | None:
        """The next run to push: from :attr:`pushed` to a checkpoint; None when none follows.

        At most ``most`` entries where a checkpoint allows, else up to the first checkpoint.

        Entries dropped by the bound are skipped: the run then starts after a gap (a peer asks
        for it). Call :meth:`done` once the run is published.
        """
        held = self._held
        while held and held[0][0] < self.pushed:
            held.popleft()
        if not held or self.signed_end <= held[0][0]:
            return None
        cut = 0
        for i, (_, _, checkpoint) in enumerate(held):
            if checkpoint:
                cut = i + 1
                if cut >= most:
                    break
            elif cut and i + 1 > most:
                break
        if cut == 0:
            return None
        return held[0][0], tuple(raw for _, raw, _ in islice(held, cut))

    def done(self, run: Run) -> None:
        """``run`` was published: what it holds is pushed."""
        start, raws = run
        self.pushed = max(self.pushed, start + len(raws))
        held = self._held
        while held and held[0][0] < self.pushed:
            held.popleft()
