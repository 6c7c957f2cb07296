"""Raw readings kept locally in blocks, each block committed to the ledger by its digest.

Readings are many (hundreds to thousands per second); ledger entries are few. So raw readings
go to the ``readings`` table in blocks of ``readings_block`` readings, and each block is hashed
(SHA-256 of its canonical bytes) into a ``readings.digest`` ledger entry written in the same
transaction. Raw data stays tamper-evident (``verify`` re-hashes every block still present)
without bloating the chain; old blocks are pruned by retention or by an operator, each prune
recorded first by a ``readings.prune`` entry naming the blocks and why, and their digests stay on
the chain, so ``verify`` can tell a block pruned by the rules from one removed behind the node's
back.

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

__all__ = [
    "OPERATOR",
    "PRUNE",
    "RETENTION",
    "PrunePlan",
    "ReadingsBlock",
    "block_digest",
    "block_ranges",
    "encode_value",
    "make_block",
    "plan_prune",
    "pruned_blocks",
    "row_of",
]

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


# -- pruning: recorded on the ledger before anything is deleted ----------------------------------

#: Entry type recording a prune of raw readings (see :func:`plan_prune`).
PRUNE = "readings.prune"
#: Why readings were pruned: the node's retention, or an operator's request (the entry's actor).
RETENTION, OPERATOR = "retention", "operator"
#: At most this many block numbers are read out of one prune entry's ranges (a damaged entry
#: must not make verify allocate without bound).
MAX_PRUNED_BLOCKS = 10_000_000


@dataclass(frozen=True, slots=True)
class PrunePlan:
    """Blocks to prune and the body of the ``readings.prune`` entry that records it.

    The entry is committed first and the blocks deleted after (:func:`edge.ledger.commit.prune_readings`):
    a crash in between leaves blocks recorded as pruned but still present, which verify accepts
    (they still hash to their digests) and the next prune records and deletes again; the other
    order would leave readings gone with nothing on the ledger to say why.
    """

    blocks: tuple[int, ...]
    body: dict[str, Any]


def plan_prune(
    conn: Any, before: float, *, retention: float | None = None, comment: str = ""
) -> PrunePlan | None:
    """The blocks whose last reading is before ``before`` (epoch s) and not pruned yet.

    Args:
        conn: a connection to the ledger database (read only here).
        before: the cutoff; every pruned block ended before it.
        retention: the node's retention in seconds (reason ``retention``); None for an
            operator's request (reason ``operator``; the entry's actor says who).
        comment: why (an operator's reason).

    Returns:
        The plan, or None when no block is due.
    """
    cutoff = format_ts(before)
    rows = conn.execute(
        "SELECT block, count FROM reading_blocks WHERE last_ts < ? AND pruned = 0 ORDER BY block",
        (cutoff,),
    ).fetchall()
    if not rows:
        return None
    blocks = tuple(int(b) for b, _ in rows)
    body: dict[str, Any] = {
        "blocks": block_ranges(blocks),
        "count": len(blocks),
        "readings": sum(int(c) for _, c in rows),
        "before": cutoff,
        "reason": RETENTION if retention is not None else OPERATOR,
    }
    if retention is not None:
        # seconds, as a decimal string: "2592000" for 30 days (whole seconds written as such)
        body["retention"] = decimal(int(retention) if float(retention).is_integer() else retention)
    if comment:
        body["comment"] = comment
    return PrunePlan(blocks, body)


def block_ranges(blocks: Sequence[int]) -> list[list[int]]:
    """Ascending block numbers as inclusive ``[first, last]`` runs: ``1,2,3,7`` -> ``[[1,3],[7,7]]``."""
    runs: list[list[int]] = []
    for block in blocks:
        if runs and block == runs[-1][1] + 1:
            runs[-1][1] = block
        else:
            runs.append([block, block])
    return runs


def pruned_blocks(body: Any) -> list[int]:
    """The block numbers a ``readings.prune`` body names (empty when it is malformed)."""
    runs = body.get("blocks") if isinstance(body, dict) else None
    if not isinstance(runs, list):
        return []
    out: list[int] = []
    for run in runs:
        if (
            not isinstance(run, list)
            or len(run) != 2
            or not all(type(b) is int for b in run)
            or run[0] > run[1]
            or len(out) + run[1] - run[0] >= MAX_PRUNED_BLOCKS
        ):
            return []
        out.extend(range(run[0], run[1] + 1))
    return out
