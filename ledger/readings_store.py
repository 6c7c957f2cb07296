"""Raw readings kept locally in blocks, each block committed to the ledger by its digest.

Readings are many (hundreds to thousands per second); ledger entries are few. So raw readings
are stored in blocks of ``readings_block`` readings, and each block is hashed (SHA-256 of its
canonical bytes) into a ``readings.digest`` ledger entry written in the same transaction. Raw
data stays tamper-evident (``verify`` re-hashes every block still present) without bloating the
chain; old blocks are pruned by retention, by the disk budget or by an operator, each prune
recorded first by a ``readings.prune`` entry naming the blocks and why, and their digests stay on
the chain, so ``verify`` can tell a block pruned by the rules from one removed behind the node's
back.

A block's canonical bytes are the RFC 8785 JSON array of its readings in arrival order, each
``[point, ts, value, quality, unit]`` with ``ts`` as fixed-width RFC 3339 and ``value`` a decimal
string for numbers (:func:`edge.ledger.canonical.decimal`), the string itself for text points,
``true``/``false`` for bits, ``null`` when there is no value (docs/reference/ledger.md spells it
out for auditors). The digest is over those bytes, never over how the block is stored: a block
is stored compressed (:mod:`edge.ledger.readings_codec`, table ``reading_data``), and files
written before that hold it as rows of the ``readings`` table (value: the JSON of its hashed
form); :mod:`edge.ledger.readings_read` reads both.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from edge.errors import NotCanonical
from edge.ledger.canonical import canonical, decimal
from edge.ledger.entry import format_ts
from edge.ledger.readings_codec import Item, encode, format_micros
from edge.ledger.readings_summary import SummaryRow, summarize
from edge.readings import Reading

__all__ = [
    "BUDGET",
    "OPERATOR",
    "PRUNE",
    "RETENTION",
    "PrunePlan",
    "ReadingsBlock",
    "block_digest",
    "block_of",
    "block_ranges",
    "encode_value",
    "item_of",
    "items_digest",
    "items_of",
    "legacy_item",
    "make_block",
    "plan_budget_prune",
    "plan_prune",
    "pruned_blocks",
]

#: One legacy stored row: (point, ts, value, quality, unit), value as the ``readings`` table
#: holds it (the JSON of its hashed form).
Row = tuple[str, str, str | None, str, str]


def encode_value(value: object) -> Any:
    """A reading's value in hashed form: decimal string, str, bool or None."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return decimal(value)
    return str(value)


def item_of(reading: Reading) -> Item:
    """One reading as the codec stores it (time in whole microseconds, as ``format_ts`` rounds).

    Raises:
        NotCanonical: the value is NaN or infinite (no decimal names it: refused, never stored).
    """
    value = reading.value
    if type(value) is float and not math.isfinite(value):
        raise NotCanonical(f"{value!r} has no decimal representation")
    return (reading.point, reading.unit, round(reading.ts * 1_000_000), value, str(reading.quality))


def items_of(readings: Iterable[Reading]) -> list[Item]:
    """:func:`item_of` of each reading, a poll's batch at once.

    The readings of a poll share a time: it is rounded once.

    Raises:
        NotCanonical: a value is NaN or infinite.
    """
    out: list[Item] = []
    append = out.append
    last_ts: float | None = None
    micros = 0
    for r in readings:
        value = r.value
        if type(value) is float and not math.isfinite(value):
            raise NotCanonical(f"{value!r} has no decimal representation")
        ts = r.ts
        if ts != last_ts:
            last_ts = ts
            micros = round(ts * 1_000_000)
        append((r.point, r.unit, micros, value, str(r.quality)))
    return out


def items_digest(items: Iterable[Item]) -> str:
    """Hex SHA-256 of a block's canonical bytes (see the module doc)."""
    # The readings of one poll share a time, and a process repeats its values: each distinct
    # time and float is formatted once (a third of the cost of closing a block before).
    stamps: dict[int, str] = {}
    texts: dict[float, str] = {}  # 0.0 and -0.0 share a key: both are "0.0"
    rows: list[list[Any]] = []
    append = rows.append
    for point, unit, micros, value, quality in items:
        ts = stamps.get(micros)
        if ts is None:
            ts = stamps[micros] = format_micros(micros)
        if type(value) is float:
            text = texts.get(value)
            if text is None:  # NaN is never kept (decimal refuses it), so always lands here
                text = texts[value] = decimal(value)
            append([point, ts, text, quality, unit])
        else:
            append([point, ts, encode_value(value), quality, unit])
    # Rows hold only strings, booleans and None, which orjson writes as RFC 8785 does (no keys
    # to order, no floats or wide integers): canonical()'s walk of every row (a fifth of the
    # digest's cost) can only fail where orjson fails too, and then it names the culprit.
    try:
        data = orjson.dumps(rows, option=_CANONICAL)
    except orjson.JSONEncodeError:  # a lone surrogate: canonical() raises the NotCanonical
        data = canonical(rows)
    return hashlib.sha256(data).hexdigest()


#: canonical()'s orjson options (the rows have no objects: key order does not arise).
_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER


def legacy_item(row: Row) -> Item:
    """A row of the legacy ``readings`` table as an item with the same hashed form.

    The table kept only the hashed form, so a number comes back as the int or float its decimal
    names (which hashes to the same decimal) and any other string as itself.

    Raises:
        ValueError: the stored value is not JSON of a hashed form (orjson's error is one).
    """
    from edge.ledger.readings_codec import parse_micros

    point, ts, stored, quality, unit = row
    value = None if stored is None else orjson.loads(stored)
    if isinstance(value, str):
        value = _number(value)
    elif value is not None and not isinstance(value, bool):
        raise ValueError(f"stored value {stored!r} is not a hashed form")
    return (point, unit, parse_micros(ts), value, quality)


def _number(text: str) -> Any:
    """``text`` as the int or float whose decimal it is exactly; else ``text`` itself."""
    try:
        if text.lstrip("-").isdigit():
            return int(text) if str(int(text)) == text else text
        number = float(text)
        return number if math.isfinite(number) and decimal(number) == text else text
    except ValueError:
        return text


def block_digest(rows: Sequence[Row]) -> str:
    """Hex SHA-256 of a legacy block's canonical bytes, computed from its stored rows."""
    items = [
        [point, ts, None if value is None else orjson.loads(value), quality, unit]
        for point, ts, value, quality, unit in rows
    ]
    return hashlib.sha256(canonical(items)).hexdigest()


@dataclass(frozen=True, slots=True)
class ReadingsBlock:
    """One closed block ready to store, with what its digest entry says about it.

    Attributes:
        count: its readings.
        data: the readings, encoded (:func:`edge.ledger.readings_codec.encode`).
        sha256: the digest of its canonical bytes.
        summaries: per point per minute and hour (:mod:`edge.ledger.readings_summary`).
    """

    count: int
    data: bytes
    sha256: str
    first_ts: str
    last_ts: str
    points: tuple[str, ...]
    summaries: tuple[SummaryRow, ...] = ()

    def digest_body(self, block: int) -> dict[str, Any]:
        """Body of the ``readings.digest`` entry for this block stored as number ``block``."""
        return {
            "block": block,
            "count": self.count,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "points": list(self.points),
            "sha256": self.sha256,
        }


def block_of(items: Sequence[Item]) -> ReadingsBlock:
    """Encode, hash and summarise a block of items (pure).

    Raises:
        ValueError: ``items`` is empty.
    """
    if not items:
        raise ValueError("a readings block needs at least one reading")
    stamps = [item[2] for item in items]
    return ReadingsBlock(
        count=len(items),
        data=encode(items),
        sha256=items_digest(items),
        first_ts=format_micros(min(stamps)),
        last_ts=format_micros(max(stamps)),
        points=tuple(sorted({item[0] for item in items})),
        summaries=summarize(items),
    )


def make_block(readings: Sequence[Reading]) -> ReadingsBlock:
    """Encode and hash a block of readings (pure).

    Raises:
        ValueError: ``readings`` is empty.
        NotCanonical: a value is NaN or infinite.
    """
    return block_of(items_of(readings))


# -- pruning: recorded on the ledger before anything is deleted ----------------------------------

#: Entry type recording a prune of raw readings (see :func:`plan_prune`).
PRUNE = "readings.prune"
#: Why readings were pruned: the node's retention, an operator's request (the entry's actor), or
#: the disk budget (``readings_max_bytes`` / ``readings_min_free_bytes``).
RETENTION, OPERATOR, BUDGET = "retention", "operator", "budget"
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
    #: a budget prune: the bytes still to free once these blocks are gone, from the oldest
    #: minute summaries (:mod:`edge.ledger.summary_retention`); the body is empty when there
    #: are no blocks (nothing is recorded then: see that module)
    summary_bytes: int = 0


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


def plan_budget_prune(
    conn: Any,
    *,
    max_bytes: int | None = None,
    min_free_bytes: int | None = None,
    free_bytes: int | None = None,
    summary_bytes: int = 0,
) -> PrunePlan | None:
    """The oldest blocks to prune so the store fits the disk budget; None when it fits.

    The stored bytes are the blocks' compressed sizes (``reading_blocks.bytes``) plus
    ``summary_bytes``, the minute summaries' estimated size; pruning frees them inside the
    database file, whose next writes reuse them (the file stops growing rather than shrinking),
    which is what the free-space floor needs too. Raw blocks go first; what they cannot free is
    the plan's ``summary_bytes``, taken from the oldest minute summaries.

    Args:
        conn: a connection to the ledger database (read only here).
        max_bytes: the most the stored blocks may take (None: no such bound).
        min_free_bytes: the free space to keep on the file system (None: no such floor).
        free_bytes: the free space there now (with ``min_free_bytes``).
        summary_bytes: the minute summaries' estimated bytes (counted in ``max_bytes``).
    """
    rows = conn.execute(
        "SELECT block, count, bytes, last_ts FROM reading_blocks WHERE pruned = 0 ORDER BY block"
    ).fetchall()
    stored = sum(int(r[2]) for r in rows)
    excess = 0
    if max_bytes is not None:
        excess = stored + summary_bytes - max_bytes
    if min_free_bytes is not None and free_bytes is not None:
        excess = max(excess, min_free_bytes - free_bytes)
    if excess <= 0 or (not rows and summary_bytes <= 0):
        return None
    chosen = []
    freed = 0
    for row in rows:
        chosen.append(row)
        freed += int(row[2])
        if freed >= excess:
            break
    rest = min(excess - freed, summary_bytes) if freed < excess else 0
    if not chosen:
        return PrunePlan((), {}, rest) if rest > 0 else None
    from edge.ledger.readings_codec import format_micros, parse_micros

    blocks = tuple(int(r[0]) for r in chosen)
    body: dict[str, Any] = {
        "blocks": block_ranges(blocks),
        "count": len(blocks),
        "readings": sum(int(r[1]) for r in chosen),
        # every pruned block ended before it: one microsecond after the newest one's last reading
        "before": format_micros(parse_micros(max(str(r[3]) for r in chosen)) + 1),
        "reason": BUDGET,
        "stored_bytes": stored,
        "freed_bytes": freed,
    }
    if summary_bytes:
        body["summary_bytes"] = summary_bytes
    if max_bytes is not None:
        body["max_bytes"] = max_bytes
    if min_free_bytes is not None and free_bytes is not None:
        body["min_free_bytes"] = min_free_bytes
        body["free_bytes"] = free_bytes
    return PrunePlan(blocks, body, rest)


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
