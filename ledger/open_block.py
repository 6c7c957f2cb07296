"""The readings block being filled: its readings are durable before the block is closed.

A block (``ledger.readings_block`` readings, one ``readings.digest`` entry) closes when it is
full or the run ends. Until then its readings are not on the chain, but they must not be lost
by a kill: each batch stores the readings that arrived since the previous one as one compressed
piece (:meth:`take`; JSON and zlib, cheap for the few readings of a batch), so a kill loses at most a
flush interval of readings. At the next start the pieces of a block left open by a killed run
are read back (:meth:`OpenBlock.recover`) and the block is closed with its digest, so blocks and
digests keep their meaning: a digest covers exactly its block's readings. The batch that closes
a block stores it whole (lzma) and drops its pieces.

This is the whole interface between the writer and how raw readings are persisted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from edge.ledger.commit import StagedRow
from edge.ledger.readings_codec import Item, encode_piece, format_micros
from edge.ledger.readings_store import ReadingsBlock, block_of, items_of
from edge.readings import Reading

__all__ = ["OpenBlock"]


class OpenBlock:
    """The readings of block ``number`` so far; ``staged`` of them are handed to a batch already."""

    __slots__ = ("items", "number", "staged")

    def __init__(self, number: int, items: Sequence[Item] = (), staged: int = 0) -> None:
        self.number = number
        self.items: list[Item] = list(items)
        self.staged = staged

    @classmethod
    def recover(cls, conn: sqlite3.Connection, feed: str | None = None) -> OpenBlock:
        """The open block as the database holds it: the readings of the block after the last closed one.

        The last closed block is the higher of the last ``reading_blocks`` row and the block the
        last ``readings.digest`` entry of ``feed`` names: a feed restored from peers brings its
        digests back without their blocks, and a new block must not take a number an old digest
        already names.
        Readings of a block left open by a killed run come back (all durable: ``staged`` = all).
        """
        from edge.ledger.readings_read import open_block_items

        (last,) = conn.execute("SELECT max(block) FROM reading_blocks").fetchone()
        if feed is not None:
            # The writer numbers blocks in feed order, so the feed's last digest names its
            # highest block: read backwards along the primary key to it (``+type``: not every
            # digest through the type index), cheap with years of digests.
            digest = conn.execute(
                "SELECT raw FROM entries WHERE feed = ? AND +type = 'readings.digest' "
                "ORDER BY seq DESC LIMIT 1",
                (feed,),
            ).fetchone()
            named = _block_named(digest[0]) if digest is not None else None
            last = max(int(last or 0), named or 0)
        number = int(last or 0) + 1
        items = open_block_items(conn, number)
        return cls(number, items, len(items))

    def __len__(self) -> int:
        return len(self.items)

    @property
    def unstaged(self) -> int:
        """Readings not yet handed to a batch."""
        return len(self.items) - self.staged

    @property
    def last_ts(self) -> str | None:
        """The newest reading time in the block (RFC 3339), None when empty."""
        return format_micros(max(item[2] for item in self.items)) if self.items else None

    def add(self, readings: Sequence[Reading]) -> None:
        """Append readings (arrival order).

        Raises:
            NotCanonical: a value is NaN or infinite (none of ``readings`` is added).
        """
        self.items.extend(items_of(readings))

    def take(self) -> list[StagedRow]:
        """The readings not yet handed to a batch, as one staged piece; they count as staged now."""
        start = self.staged
        if start >= len(self.items):
            return []
        self.staged = len(self.items)
        # every unstaged item came through add(), which refused NaN and infinities
        return [(self.number, start, encode_piece(self.items[start:], checked=True))]

    def close(self) -> ReadingsBlock:
        """The block's final form (encoded, its digest over every reading); the caller starts the next one.

        Raises:
            ValueError: the block is empty.
        """
        return block_of(self.items)


def _block_named(raw: bytes) -> int | None:
    """The block a ``readings.digest`` entry's bytes name (None when they do not)."""
    try:
        block = orjson.loads(raw)["body"]["block"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None  # a damaged entry: verify names it
    return block if type(block) is int else None
