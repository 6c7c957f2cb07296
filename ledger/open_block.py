"""The readings block being filled: its rows are durable before the block is closed.

A block (``ledger.readings_block`` readings, one ``readings.digest`` entry) closes when it is
full or the run ends. Until then its readings are not on the chain, but they must not be lost
by a kill: each batch stores the rows that arrived since the previous one (:meth:`take`), so a
kill loses at most a flush interval of readings. At the next start the rows of a block left open
by a killed run are read back (:meth:`OpenBlock.recover`) and the block is closed with its digest,
so blocks and digests keep their meaning: a digest covers exactly its block's rows.

This is the whole interface between the writer and how raw readings are persisted (a later
store of compressed blocks replaces it behind the same methods).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from edge.ledger.commit import StagedRow, reading_rowid
from edge.ledger.readings_store import ReadingsBlock, Row, block_digest, row_of
from edge.readings import Reading

__all__ = ["OpenBlock"]


class OpenBlock:
    """The rows of block ``number`` so far; ``staged`` of them are handed to a batch already."""

    __slots__ = ("number", "rows", "staged")

    def __init__(self, number: int, rows: Sequence[Row] = (), staged: int = 0) -> None:
        self.number = number
        self.rows: list[Row] = list(rows)
        self.staged = staged

    @classmethod
    def recover(cls, conn: sqlite3.Connection) -> OpenBlock:
        """The open block as the database holds it: the rows of the block after the last closed one.

        Rows of a block left open by a killed run come back (all durable: ``staged`` = all).
        """
        (last,) = conn.execute("SELECT max(block) FROM reading_blocks").fetchone()
        number = int(last or 0) + 1
        rows: list[Row] = [
            (point, ts, value, quality, unit)
            for point, ts, value, quality, unit in conn.execute(
                "SELECT point, ts, value, quality, unit FROM readings WHERE block = ? "
                "ORDER BY rowid",
                (number,),
            )
        ]
        return cls(number, rows, len(rows))

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def unstaged(self) -> int:
        """Rows not yet handed to a batch."""
        return len(self.rows) - self.staged

    @property
    def last_ts(self) -> str | None:
        """The newest reading time in the block (RFC 3339), None when empty."""
        return max(row[1] for row in self.rows) if self.rows else None

    def add(self, readings: Sequence[Reading]) -> None:
        """Append readings (arrival order)."""
        self.rows.extend(row_of(r) for r in readings)

    def take(self) -> list[StagedRow]:
        """The rows not yet handed to a batch, as ``readings`` rows; they count as staged now."""
        n = self.number
        start = self.staged
        out = [
            (reading_rowid(n, i), n, *row) for i, row in enumerate(self.rows[start:], start=start)
        ]
        self.staged = len(self.rows)
        return out

    def close(self) -> ReadingsBlock:
        """The block's final form (its digest over every row); the caller starts the next one.

        Raises:
            ValueError: the block is empty.
        """
        if not self.rows:
            raise ValueError("a readings block needs at least one reading")
        rows = tuple(self.rows)
        stamps = [row[1] for row in rows]
        return ReadingsBlock(
            rows=rows,
            sha256=block_digest(rows),
            first_ts=min(stamps),
            last_ts=max(stamps),
            points=tuple(sorted({row[0] for row in rows})),
        )
