"""The ``checkpoints`` table checked against the checkpoint entries of the chain.

The table is the rollback guard: every checkpoint a node ever wrote or accepted, kept even if the
feed's tail is cut, so that a truncated feed is caught (and a writer refuses to append over it).
It is not hashed, so it must agree with what the chain signed: each row ``(size, head, root,
sig)`` must be exactly the body of the checkpoint entry at seq ``size``, and every checkpoint
entry must have its row. A row beyond the end of the feed is the rollback case, named by
:meth:`~edge.ledger.verify_chain.FeedVerifier.finish`.

Rows come sorted by size and are matched as the verifier meets the checkpoint entries (a merge
of two sorted streams), so a feed with a million checkpoints costs no memory here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from edge.ledger.verify_report import Kind

__all__ = ["CheckpointTable", "Recorded"]

#: A ``checkpoints`` row of one feed: (size, head, root, sig).
Recorded = tuple[int, str, str, str]
#: How a finding is reported: (seq, kind, detail).
Report = Callable[[int, Kind, str], None]

_FIELDS = ("size", "head", "root", "sig")


class CheckpointTable:
    """The ``checkpoints`` rows of one feed, in ascending size, matched to its checkpoint entries."""

    def __init__(self, rows: Iterable[Recorded], problem: Report) -> None:
        self._rows: Iterator[Recorded] = iter(rows)
        self._next: Recorded | None = next(self._rows, None)
        self._problem = problem

    def _advance(self) -> None:
        self._next = next(self._rows, None)

    def _orphans(self, below: int) -> None:
        """Name the rows of size < ``below`` that no checkpoint entry matched."""
        while self._next is not None and self._next[0] < below:
            size = self._next[0]
            self._problem(
                size,
                Kind.CHECKPOINT_TABLE,
                f"the checkpoints table holds a checkpoint of size {size} "
                f"(head {str(self._next[1])[:16]}) but entry {size} is no such checkpoint",
            )
            self._advance()

    def match(self, seq: int, body: tuple[Any, Any, Any, Any]) -> None:
        """The checkpoint entry at ``seq`` with body (size, head, root, sig): its row must equal it."""
        self._orphans(seq)
        row = self._next
        if row is None or row[0] != seq:
            self._problem(
                seq,
                Kind.CHECKPOINT_TABLE,
                f"checkpoint entry {seq} has no row in the checkpoints table",
            )
            return
        self._advance()
        differ = [name for name, a, b in zip(_FIELDS, row, body, strict=True) if a != b]
        if differ:
            self._problem(
                seq,
                Kind.CHECKPOINT_TABLE,
                f"the checkpoints table's row differs from checkpoint entry {seq} in "
                + ", ".join(differ),
            )

    def finish(self, end: int) -> None:
        """The feed (or chunk) ends before ``end``: name the rows below it left unmatched.

        Rows at or beyond ``end`` are left alone: beyond the feed's end they are the rollback
        case; beyond a chunk's, the next chunk's.
        """
        self._orphans(end)
