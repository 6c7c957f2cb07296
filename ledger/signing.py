"""When the async writer signs: one checkpoint per journal move, not one per alarm.

With the commit journal, a small batch needs no checkpoint of its own: it is durable in the
journal, chained by ``prev``, and a later batch's checkpoint signs it with every entry before
(:mod:`edge.ledger.journal`; the commit process moves the journal into SQLite with that batch).
One checkpoint per ``journal_age`` instead of one per alarm halves the rows each move writes
into SQLite (SD-card wear, docs/design.md). Bulk batches (many entries), the last batch and a
reader's sync are signed at once. A batch that closes readings blocks is not bulk any more: a
compressed block of 1,000 readings is a few KB, so its digest entry waits in the journal like an
alarm (signing it moved the journal into SQLite at every block close, a transaction and an
fsync every 2.5 s on the 40-point job: issue 18 point 3, docs/design.md).

While peers listen (a node with ``[sync]`` connected to its broker: :attr:`SignClock.live`),
pushed entries need a checkpoint a peer can verify, so small batches are signed sooner, at most
one checkpoint per :data:`LIVE_SIGN_AGE` seconds unless :data:`LIVE_SIGN_ENTRIES` entries wait:
a cut is signed when the last checkpoint is that old (an alarm after a quiet spell is signed in
its own batch, its own journal record: no wait, no extra write), when that many entries wait
unsigned, and a checkpoint alone is cut when the oldest unsigned entry has waited that long. The
journal still moves every ``journal_age``: a signed record no longer moves it (the commit
process moves by age and size), so signing often costs a checkpoint entry per dozen entries in
the move, not a move (measured: docs/design.md, "Sync nodes keep the commit journal").
"""

from __future__ import annotations

from edge.ledger.batch import Batch
from edge.ledger.store import Ledger

__all__ = ["LIVE_SIGN_AGE", "LIVE_SIGN_ENTRIES", "UNSIGNED_BATCH_MAX", "UNSIGNED_MAX", "SignClock"]

#: A batch of this many entries is signed (bulk: it gains nothing from sharing a checkpoint) ...
UNSIGNED_BATCH_MAX = 64
#: ... and so is any batch once this many entries wait unsigned (bounds the journal).
UNSIGNED_MAX = 4096
#: While peers listen: a cut is signed once this many entries wait unsigned ...
LIVE_SIGN_ENTRIES = 16
#: ... or the last checkpoint is this many seconds old (and the oldest unsigned entry waits
#: this long at most).
LIVE_SIGN_AGE = 2.5


class SignClock:
    """The signing policy of one writer, and the time its oldest unsigned entry was cut.

    Args:
        journal_max: the writer's journal threshold (0: no journal, every batch signed).
        journal_age: seconds an unsigned entry waits at most for its checkpoint.
    """

    __slots__ = ("journal_age", "journal_max", "live", "signed_at", "since")

    def __init__(self, journal_max: int, journal_age: float) -> None:
        self.journal_max = journal_max
        self.journal_age = journal_age
        #: clock time of the oldest batch cut unsigned since the last checkpoint (None: none)
        self.since: float | None = None
        #: peers listen (sync): sign within LIVE_SIGN_ENTRIES entries or LIVE_SIGN_AGE seconds
        self.live = False
        #: clock time of the last signed cut (None: none yet)
        self.signed_at: float | None = None

    def due(self, ledger: Ledger, *, closing: bool, now: float) -> bool:
        """Whether a cut now ends with a checkpoint (else it is journaled unsigned)."""
        if self.journal_max <= 0 or closing:
            return True
        if ledger.uncut >= UNSIGNED_BATCH_MAX:
            return True
        if ledger.unsigned + ledger.uncut >= (LIVE_SIGN_ENTRIES if self.live else UNSIGNED_MAX):
            return True
        if self.live and (self.signed_at is None or now >= self.signed_at + LIVE_SIGN_AGE):
            return True
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def deadline(self) -> float | None:
        """When a checkpoint is due for what waits unsigned (None: nothing waits)."""
        if self.since is None:
            return None
        return self.since + (
            min(LIVE_SIGN_AGE, self.journal_age) if self.live else self.journal_age
        )

    def cut(self, ledger: Ledger, *, sign: bool | None, closing: bool, now: float) -> Batch | None:
        """Cut a batch, signed when ``sign`` (None: when :meth:`due`), and keep the clock."""
        if sign is None:
            sign = self.due(ledger, closing=closing, now=now)
        batch = ledger.cut(sign=sign)
        if batch is not None:
            if batch.checkpoint is not None:
                self.since = None
                self.signed_at = now
            elif batch.entries and self.since is None:
                self.since = now
        return batch
