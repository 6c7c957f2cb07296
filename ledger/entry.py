"""Ledger entries: building them, their id, their timestamps, checkpoint messages (pure, no I/O)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from edge.errors import NotCanonical
from edge.ledger.canonical import canonical, check

__all__ = [
    "CHECKPOINT",
    "ENTRY_TYPES",
    "Entry",
    "build_entry",
    "checkpoint_message",
    "format_ts",
    "make_entry",
    "parse_entry",
    "parse_ts",
]

#: The type of the signed checkpoint entries the store writes after every batch.
CHECKPOINT = "checkpoint"

#: Every entry type edge-qc writes. A new type joins this tuple and the table in
#: docs/reference/ledger.md (tests/docs checks both against the types the code appends).
ENTRY_TYPES = (
    "node.start",
    "node.stop",
    "rules.change",
    "config.change",
    "alarm",
    "alarm.ack",
    "alarm.shelve",
    "alarm.unshelve",
    "lot.start",
    "lot.end",
    "readings.digest",
    "readings.prune",
    "correction",
    "bus.gaps",
    "ledger.fork",
    "ledger.rollback",
    CHECKPOINT,
)

_HEX = frozenset("0123456789abcdef")


def format_ts(epoch: float) -> str:
    """Epoch seconds -> fixed-width RFC 3339 UTC with microseconds (sorts as text).

    >>> format_ts(0.5)
    '1970-01-01T00:00:00.500000Z'
    """
    micros = round(epoch * 1_000_000)
    seconds, fraction = divmod(micros, 1_000_000)
    global _last_second, _last_prefix
    if seconds != _last_second:  # entries come in bursts within one second: format it once
        at = time.gmtime(seconds)
        # the year padded here: glibc's %Y writes year 999 as '999', not fixed-width, and
        # '999-...' sorts after '2026-...' as text (an operator's prune before 0999-01-01
        # pruned every block)
        _last_prefix = f"{at.tm_year:04d}" + time.strftime("-%m-%dT%H:%M:%S.", at)
        _last_second = seconds
    return f"{_last_prefix}{fraction:06d}Z"


_last_second = -1
_last_prefix = ""


def parse_ts(text: str) -> float:
    """The inverse of :func:`format_ts` (also accepts any RFC 3339 time with an offset)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class Entry(NamedTuple):
    """One ledger entry, with the canonical bytes it was hashed from (immutable).

    A NamedTuple rather than a frozen dataclass: it is built once per entry on the append path,
    where a frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field) cost more
    than hashing the entry.

    Attributes:
        feed: hex Ed25519 public key of the writing node.
        seq: 0-based position in the feed.
        prev: id of entry ``seq - 1``; None at seq 0.
        ts: RFC 3339 UTC, fixed width (:func:`format_ts`).
        type: ``alarm``, ``lot.end``, ``checkpoint`` ... (see docs/reference/ledger.md).
        lots: lots the entry belongs to (indexed for trace).
        actor: who caused it (an operator for acks; empty for the node itself).
        body: the type-specific content.
        refs: ids of entries this one refers to (a correction names the entry it corrects).
        id: hex SHA-256 of ``raw``.
        raw: the canonical JSON bytes; the only thing that is hashed and stored as truth.
    """

    feed: str
    seq: int
    prev: str | None
    ts: str
    type: str
    lots: tuple[str, ...]
    actor: str
    body: Mapping[str, Any]
    refs: tuple[str, ...]
    id: str
    raw: bytes


def _is_id(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and _HEX.issuperset(value)


def make_entry(
    *,
    feed: str,
    seq: int,
    prev: str | None,
    ts: float | str,
    type: str,
    body: Mapping[str, Any],
    lots: Sequence[str] = (),
    actor: str = "",
    refs: Sequence[str] = (),
) -> Entry:
    """Build an entry and compute its id.

    Args:
        feed: hex public key of the writer.
        seq: position in the feed.
        prev: id of the entry at ``seq - 1`` (None at 0).
        ts: epoch seconds, or an already formatted RFC 3339 string.
        type: the entry type (``alarm``, ``lot.end`` ...).
        body: type-specific content, inside the hashable subset.
        lots: lots the entry belongs to (repeats dropped).
        actor: who caused it.
        refs: ids of entries referred to.

    Raises:
        NotCanonical: a field has the wrong shape, or ``body`` holds something outside the
            hashable subset (the message names its path, e.g. ``body.value``).
    """
    return build_entry(feed, seq, prev, ts, type, body, lots, actor, refs)


def build_entry(
    feed: str,
    seq: int,
    prev: str | None,
    ts: float | str,
    kind: str,
    body: Mapping[str, Any],
    lots: Sequence[str],
    actor: str,
    refs: Sequence[str],
) -> Entry:
    """:func:`make_entry` with positional arguments (``kind`` is the entry type).

    The store's append path calls this once per entry: passing nine arguments by keyword
    through a wrapper costs about a microsecond here, a tenth of building the entry.
    """
    # Common shapes are recognised by exact type (C-level set checks); anything else takes
    # the general checks, which also produce the error messages.
    if not kind or not isinstance(kind, str):
        raise NotCanonical(f"type: must be a non-empty str, got {kind!r}")
    if body.__class__ is not dict and not isinstance(body, Mapping):
        raise NotCanonical(f"body: must be a mapping, got {body.__class__.__name__}")
    if lots:
        if not (
            (lots.__class__ is list or lots.__class__ is tuple)
            and _STR.issuperset(map(type, lots))
            and all(lots)
        ) and (isinstance(lots, str) or not all(isinstance(lot, str) and lot for lot in lots)):
            raise NotCanonical(f"lots: must be a list of non-empty str, got {lots!r}")
        # keep order, drop repeats: entry_lots has one row per lot
        lot_list = list(dict.fromkeys(lots)) if len(lots) > 1 else list(lots)
    else:
        lot_list = []
    if refs and (isinstance(refs, str) or not all(_is_id(ref) for ref in refs)):
        raise NotCanonical(f"refs: must be a list of entry ids (64 hex digits), got {refs!r}")
    if not isinstance(actor, str):
        raise NotCanonical(f"actor: must be a str, got {actor!r}")
    stamp = ts if isinstance(ts, str) else format_ts(ts)
    # type, actor, ts and lots are also index columns; SQLite cuts text at a NUL when it passes
    # through its JSON functions (the store's batch insert), so a NUL would make the index
    # disagree with the entry. A NUL in a lot code or a name is a mistake, not data.
    if (
        "\x00" in kind
        or "\x00" in actor
        or "\x00" in stamp
        or (lot_list and any("\x00" in lot for lot in lot_list))  # most entries have no lots
    ):
        raise NotCanonical("type, actor, ts and lots must not contain NUL (U+0000)")
    ref_list = list(refs) if refs else []
    content = {
        "actor": actor,
        "body": body,
        "feed": feed,
        "lots": lot_list,
        "prev": prev,
        "refs": ref_list,
        "seq": seq,
        "ts": stamp,
        "type": kind,
    }
    # Only body needs the walk: the other members are str/int/None or lists of str checked
    # above, and orjson itself refuses lone surrogates and integers beyond 53 bits.
    if check(body, "body"):
        raw = canonical(content)  # keys needing UTF-16 order (or a non-dict mapping): slow path
    else:
        try:
            raw = _dumps(content, option=_OPTIONS)
        except orjson.JSONEncodeError:
            raw = canonical(content)  # raises NotCanonical naming the path
    # tuple.__new__ directly: the NamedTuple's own __new__ is a Python function (a frame per
    # entry); the field order is Entry's.
    return _new_entry(
        Entry,
        (
            feed,
            seq,
            prev,
            stamp,
            kind,
            tuple(lot_list),
            actor,
            body,
            tuple(ref_list),
            _sha256(raw).hexdigest(),
            raw,
        ),
    )


_STR = frozenset({str})


_new_entry = tuple.__new__
_sha256 = hashlib.sha256
_dumps = orjson.dumps
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER


def parse_entry(raw: bytes) -> Entry:
    """Rebuild an :class:`Entry` from its canonical bytes (the id is recomputed, not trusted).

    Raises:
        NotCanonical: ``raw`` is not a ledger entry.
    """
    try:
        data = orjson.loads(raw)
        return Entry(
            feed=data["feed"],
            seq=data["seq"],
            prev=data["prev"],
            ts=data["ts"],
            type=data["type"],
            lots=tuple(data["lots"]),
            actor=data["actor"],
            body=data["body"],
            refs=tuple(data["refs"]),
            id=hashlib.sha256(raw).hexdigest(),
            raw=bytes(raw),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise NotCanonical(f"not a ledger entry: {exc}") from exc


def checkpoint_message(feed: str, size: int, head: str, root: str) -> bytes:
    """The bytes a checkpoint signature covers: canonical ``{"feed","size","head","root"}``."""
    return canonical({"feed": feed, "size": size, "head": head, "root": root})
