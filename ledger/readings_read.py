"""Reading raw readings and their summaries back: the one interface every reader goes through.

Where readings are kept (:mod:`edge.ledger.schema`): a closed block as one compressed blob in
``reading_data`` (:mod:`edge.ledger.readings_codec`), or -- in files written before migration 8
-- as rows of ``readings``; the open block as staged pieces in ``reading_stage`` (or rows).
Export, ``verify``, the writer's recovery of a killed run's open block and the quality office
read them through the functions here and never select those tables themselves, so the storage
can change again behind them. A read-only connection on a file not yet migrated (no
``reading_data``) reads its rows.

Times are fixed-width RFC 3339 UTC strings (they sort as text); windows are ``[since, until)``.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from edge.errors import ReadingsDamaged
from edge.ledger.readings_codec import Item, decode, format_micros, parse_micros
from edge.ledger.readings_store import legacy_item

__all__ = [
    "StoredReading",
    "Summary",
    "block_items",
    "open_block_items",
    "pruned_in_window",
    "read_readings",
    "read_summaries",
    "stored_blocks",
]


@dataclass(frozen=True, slots=True)
class StoredReading:
    """One stored raw reading, as recorded.

    ``value`` is what was recorded (float, int, bool, str or None); in files written before
    migration 8 only its hashed form was kept, so a number comes back as the int or float its
    decimal names.
    """

    point: str
    ts: str
    value: Any
    quality: str
    unit: str
    block: int

    @property
    def epoch(self) -> float:
        """``ts`` as seconds since the epoch."""
        return parse_micros(self.ts) / 1_000_000


@dataclass(frozen=True, slots=True)
class Summary:
    """One point's numeric ``good`` readings in one minute or hour (:mod:`.readings_summary`)."""

    point: str
    start: str
    seconds: int
    count: int
    min: float
    max: float
    mean: float
    std: float  #: sample standard deviation (n - 1); 0.0 for a single reading


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _legacy_rows(conn: sqlite3.Connection, block: int) -> list[Item]:
    rows = conn.execute(
        "SELECT point, ts, value, quality, unit FROM readings WHERE block = ? ORDER BY rowid",
        (block,),
    ).fetchall()
    try:
        return [legacy_item(row) for row in rows]
    except (ValueError, TypeError) as exc:
        raise ReadingsDamaged(f"readings block {block}: a stored row is damaged: {exc}") from exc


def block_items(conn: sqlite3.Connection, block: int) -> list[Item] | None:
    """A closed block's readings in arrival order; None when none are stored (pruned or absent).

    Raises:
        ReadingsDamaged: the stored block does not decode (the message names the block).
    """
    if "reading_data" in _tables(conn):
        row = conn.execute("SELECT data FROM reading_data WHERE block = ?", (block,)).fetchone()
        if row is not None:
            try:
                return decode(bytes(row[0]))
            except ReadingsDamaged as exc:
                raise ReadingsDamaged(f"readings block {block}: {exc}") from exc
    items = _legacy_rows(conn, block)
    return items or None


def open_block_items(conn: sqlite3.Connection, block: int) -> list[Item]:
    """The durable readings of the open block ``block``: legacy rows, then staged pieces."""
    items = _legacy_rows(conn, block)
    if "reading_stage" in _tables(conn):
        for start, data in conn.execute(
            "SELECT start, data FROM reading_stage WHERE block = ? ORDER BY start", (block,)
        ):
            if start != len(items):  # a piece lost or doubled: keep what is contiguous
                break
            try:
                items.extend(decode(bytes(data)))
            except ReadingsDamaged as exc:
                raise ReadingsDamaged(f"readings block {block} (open): {exc}") from exc
    return items


def stored_blocks(conn: sqlite3.Connection) -> Iterator[tuple[int, list[Item] | ReadingsDamaged]]:
    """Every block with readings stored (closed or open), in block order, with its readings.

    A block that does not decode comes with the error instead, so a checker names it and goes on.
    """
    tables = _tables(conn)
    blocks: set[int] = {b for (b,) in conn.execute("SELECT DISTINCT block FROM readings")}
    if "reading_data" in tables:
        blocks.update(b for (b,) in conn.execute("SELECT block FROM reading_data"))
        blocks.update(b for (b,) in conn.execute("SELECT DISTINCT block FROM reading_stage"))
    closed = {b for (b,) in conn.execute("SELECT block FROM reading_blocks")}
    if "reading_data" in tables:
        closed.update(b for (b,) in conn.execute("SELECT block FROM reading_data"))
    for block in sorted(blocks):
        try:
            items = block_items(conn, block) if block in closed else open_block_items(conn, block)
        except ReadingsDamaged as exc:
            yield block, exc
            continue
        if items:
            yield block, items


def read_readings(
    conn: sqlite3.Connection,
    *,
    points: Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
) -> Iterator[StoredReading]:
    """Raw readings still stored in the window, in arrival order (closed blocks, then the open one).

    Raises:
        ReadingsDamaged: a block in the window does not decode.
    """
    wanted = set(points)
    lo = None if since is None else parse_micros(since)
    hi = None if until is None else parse_micros(until)
    clauses, args = ["pruned = 0"], list[str]()
    if since is not None:
        clauses.append("last_ts >= ?")
        args.append(since)
    if until is not None:
        clauses.append("first_ts < ?")
        args.append(until)
    sql = f"SELECT block FROM reading_blocks WHERE {' AND '.join(clauses)} ORDER BY block"
    blocks = [b for (b,) in conn.execute(sql, args)]
    (last,) = conn.execute("SELECT max(block) FROM reading_blocks").fetchone()
    open_number = int(last or 0) + 1
    if "reading_stage" in _tables(conn):
        # after a restore from peers the open block's number continues after the restored
        # digests, past the last block row: its staged pieces say where it is
        (staged,) = conn.execute("SELECT max(block) FROM reading_stage").fetchone()
        open_number = max(open_number, int(staged or 0))
    for block in [*blocks, open_number]:
        items = block_items(conn, block) if block != open_number else open_block_items(conn, block)
        for point, unit, micros, value, quality in items or ():
            if wanted and point not in wanted:
                continue
            if (lo is not None and micros < lo) or (hi is not None and micros >= hi):
                continue
            yield StoredReading(point, format_micros(micros), value, quality, unit, block)


def read_summaries(
    conn: sqlite3.Connection,
    *,
    seconds: int = 60,
    points: Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
) -> Iterator[Summary]:
    """Per-point summaries of ``seconds`` (60 or 3600) starting in the window, by point then start.

    Empty for a file without summaries (written before migration 8 and opened read-only).
    """
    if "reading_summaries" not in _tables(conn):
        return
    clauses: list[str] = ["seconds = ?"]
    args: list[Any] = [seconds]
    if points:
        clauses.append(f"point IN ({', '.join('?' for _ in points)})")
        args.extend(points)
    if since is not None:  # periods starting in the window: a start is a whole second
        clauses.append("start >= ?")
        args.append(-(-parse_micros(since) // 1_000_000))
    if until is not None:
        clauses.append("start < ?")
        args.append(-(-parse_micros(until) // 1_000_000))
    sql = (
        "SELECT point, start, count, vmin, vmax, mean, m2 FROM reading_summaries"
        f" WHERE {' AND '.join(clauses)} ORDER BY point, start"
    )
    for point, start, count, vmin, vmax, mean, m2 in conn.execute(sql, args):
        std = math.sqrt(max(m2, 0.0) / (count - 1)) if count > 1 else 0.0
        yield Summary(
            point, format_micros(start * 1_000_000), seconds, count, vmin, vmax, mean, std
        )


def pruned_in_window(conn: sqlite3.Connection, since: str | None, until: str | None) -> int:
    """Blocks overlapping the window whose raw readings were pruned (by any reason)."""
    clauses, args = ["pruned = 1"], []
    if since is not None:
        clauses.append("last_ts >= ?")
        args.append(since)
    if until is not None:
        clauses.append("first_ts < ?")
        args.append(until)
    sql = f"SELECT count(*) FROM reading_blocks WHERE {' AND '.join(clauses)}"
    return int(conn.execute(sql, args).fetchone()[0])
