"""Raw readings kept locally in blocks, each block committed to the ledger by its digest.

Readings are many (hundreds to thousands per second); ledger entries are few. So raw readings
go to the ``readings`` table in blocks of ``readings_block`` readings, and each block is hashed
(SHA-256 of its canonical bytes) into a ``readings.digest`` ledger entry written in the same
transaction. Raw data stays tamper-evident (``verify`` re-hashes every block still present)
without bloating the chain; old blocks are pruned by retention, their digests stay on the chain.

A block's canonical bytes are the RFC 8785 JSON array of its readings in arrival order, each
``[point, ts, value, quality, unit]`` with ``ts`` as fixed-width RFC 3339 and ``value`` a decimal
string for numbers (:func:`edge.ledger.canonical.decimal`), the string itself for text points,
``true``/``false`` for bits, ``null`` when there is no value. The ``value`` column holds that
hashed form as JSON text (SQL NULL for null).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from edge.ledger.canonical import canonical, decimal
from edge.ledger.entry import format_ts
from edge.readings import Reading

__all__ = ["ReadingsBlock", "block_digest", "encode_value", "make_block", "row_of"]

#: One stored reading: (point, ts, value, quality, unit), value as stored in the ``readings`` table.
Row = tuple[str, str, str | None, str, str]


def encode_value(value: object) -> Any:
    """A reading's value in hashed form: decimal string, str, bool or None."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return decimal(value)
    return str(value)


def _store_value(value: Any) -> str | None:
    """Hashed form -> the TEXT column: its JSON (``"8.25"``, ``true``, ``"OK"``), SQL NULL for None.

    JSON keeps a text point whose value looks like a number or a bool distinct from one.
    """
    if value is None:
        return None
    return orjson.dumps(value).decode()


def _hashed_value(stored: str | None) -> Any:
    return None if stored is None else orjson.loads(stored)


def row_of(reading: Reading) -> Row:
    """The stored row for one reading."""
    return (
        reading.point,
        format_ts(reading.ts),
        _store_value(encode_value(reading.value)),
        str(reading.quality),
        reading.unit,
    )


def block_digest(rows: Sequence[Row]) -> str:
    """Hex SHA-256 of a block's canonical bytes, computed from its stored rows."""
    items = [
        [point, ts, _hashed_value(value), quality, unit] for point, ts, value, quality, unit in rows
    ]
    return hashlib.sha256(canonical(items)).hexdigest()


@dataclass(frozen=True, slots=True)
class ReadingsBlock:
    """One block of readings ready to store, with what its digest entry says about it."""

    rows: tuple[Row, ...]
    sha256: str
    first_ts: str
    last_ts: str
    points: tuple[str, ...]

    def digest_body(self, block: int) -> dict[str, Any]:
        """Body of the ``readings.digest`` entry for this block stored as number ``block``."""
        return {
            "block": block,
            "count": len(self.rows),
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "points": list(self.points),
            "sha256": self.sha256,
        }


def make_block(readings: Sequence[Reading]) -> ReadingsBlock:
    """Encode and hash a block of readings (pure).

    Raises:
        ValueError: ``readings`` is empty.
    """
    if not readings:
        raise ValueError("a readings block needs at least one reading")
    rows = tuple(row_of(r) for r in readings)
    stamps = [row[1] for row in rows]
    return ReadingsBlock(
        rows=rows,
        sha256=block_digest(rows),
        first_ts=min(stamps),
        last_ts=max(stamps),
        points=tuple(sorted({row[0] for row in rows})),
    )
