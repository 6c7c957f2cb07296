"""Test access to the stored readings: counting them through the read interface, and changing a
stored block as someone editing the database file behind the node's back would."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from edge.ledger.readings_codec import Item, decode, encode
from edge.ledger.readings_read import StoredReading, read_readings


def stored(db: Path | sqlite3.Connection, block: int | None = None) -> list[StoredReading]:
    """Every stored raw reading (closed and open blocks), optionally of one block."""
    conn = sqlite3.connect(db) if isinstance(db, Path) else db
    try:
        return [r for r in read_readings(conn) if block is None or r.block == block]
    finally:
        if isinstance(db, Path):
            conn.close()


def rewrite_block(
    conn: sqlite3.Connection, block: int, change: Callable[[list[Item]], list[Item]]
) -> None:
    """Decode closed block ``block``, ``change`` its items, store it re-encoded (a valid blob)."""
    (data,) = conn.execute("SELECT data FROM reading_data WHERE block = ?", (block,)).fetchone()
    conn.execute(
        "UPDATE reading_data SET data = ? WHERE block = ?", (encode(change(decode(data))), block)
    )


def set_value(items: list[Item], index: int, value: object) -> list[Item]:
    """``items`` with item ``index``'s value replaced."""
    point, unit, micros, _, quality = items[index]
    return [*items[:index], (point, unit, micros, value, quality), *items[index + 1 :]]


def flip_byte(conn: sqlite3.Connection, block: int, offset: int = -1) -> None:
    """Change one byte of closed block ``block``'s stored data."""
    (data,) = conn.execute("SELECT data FROM reading_data WHERE block = ?", (block,)).fetchone()
    raw = bytearray(data)
    raw[offset] ^= 0x01
    conn.execute("UPDATE reading_data SET data = ? WHERE block = ?", (bytes(raw), block))
