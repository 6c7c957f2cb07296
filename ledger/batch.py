"""What one ledger transaction writes: :class:`Batch`, and the commit request made of it.

:class:`~edge.ledger.store.Ledger` cuts batches; :func:`_request` turns one into the arguments
of :func:`edge.ledger.commit.write_batch` (in this process or the commit process's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.ledger.commit import StagedRow, StateRow, batch_params, block_rows
from edge.ledger.entry import Entry
from edge.ledger.readings_store import ReadingsBlock

__all__ = ["Batch"]


@dataclass(frozen=True, slots=True)
class Batch:
    """What one transaction writes: entries, readings that arrived meanwhile, the engine state.

    Entries come with the checkpoint covering them; the engine state reflects the entries. A batch may have no entries (readings or a state only, e.g. timer progress); it then has
    no checkpoint either.

    Attributes:
        entries: in seq order; the last one is the checkpoint entry (empty: none).
        blocks: readings blocks closed by this batch; their digest entries are in ``entries``.
        checkpoint: the ``checkpoints`` row (feed, size, head, root, sig); None without entries.
        frontier: the Merkle frontier over the ``size`` entries the checkpoint covers
            (:meth:`Frontier.packed`), stored so that opening the feed need not rebuild it.
        readings: raw readings received since the previous batch (see :mod:`.open_block`).
        state: the engine state to store with it (:meth:`Ledger.track_state`), None: unchanged.
    """

    entries: tuple[Entry, ...]
    blocks: tuple[tuple[int, ReadingsBlock, str], ...]
    checkpoint: tuple[str, int, str, str, str] | None
    frontier: bytes | None
    readings: tuple[StagedRow, ...] = ()
    state: StateRow | None = None


def _request(batch: Batch) -> tuple[Any, ...]:
    return (batch_params(batch), block_rows(batch), batch.readings, batch.state)
