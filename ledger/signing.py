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
"""

from __future__ import annotations

from edge.ledger.batch import Batch
from edge.ledger.store import Ledger

__all__ = ["UNSIGNED_BATCH_MAX", "UNSIGNED_MAX", "SignClock"]

#: A batch of this many entries is signed (bulk: it gains nothing from sharing a checkpoint) ...
UNSIGNED_BATCH_MAX = 64
#: ... and so is any batch once this many entries wait unsigned (bounds the journal).
UNSIGNED_MAX = 4096


class SignClock:
    """The signing policy of one writer, and the time its oldest unsigned entry was cut.

    Args:
        journal_max: the writer's journal threshold (0: no journal, every batch signed).
        journal_age: seconds an unsigned entry waits at most for its checkpoint.
    """

    __slots__ = ("journal_age", "journal_max", "since")

    def __init__(self, journal_max: int, journal_age: float) -> None:
        self.journal_max = journal_max
        self.journal_age = journal_age
        #: clock time of the oldest batch cut unsigned since the last checkpoint (None: none)
        self.since: float | None = None

    def due(self, ledger: Ledger, *, closing: bool, now: float) -> bool:
        """Whether a cut now ends with a checkpoint (else it is journaled unsigned)."""
        if self.journal_max <= 0 or closing:
            return True
        if ledger.uncut >= UNSIGNED_BATCH_MAX:
            return True
        if ledger.unsigned + ledger.uncut >= UNSIGNED_MAX:
            return True
        return self.since is not None and now >= self.since + self.journal_age

    def deadline(self) -> float | None:
        """When a checkpoint is due for what waits unsigned (None: nothing waits)."""
        return None if self.since is None else self.since + self.journal_age

    def cut(self, ledger: Ledger, *, sign: bool | None, closing: bool, now: float) -> Batch | None:
        """Cut a batch, signed when ``sign`` (None: when :meth:`due`), and keep the clock."""
        if sign is None:
            sign = self.due(ledger, closing=closing, now=now)
        batch = ledger.cut(sign=sign)
        if batch is not None:
            if batch.checkpoint is not None:
                self.since = None
            elif batch.entries and self.since is None:
                self.since = now
        return batch
