"""Checking a peer's batch of a feed before anything of it is stored (pure: no I/O).

A batch is consecutive raw entries of one feed from seq ``start``, ending with a checkpoint
entry. :func:`check_batch` re-derives everything from the bytes: each entry's id (SHA-256), its
feed and seq, the ``prev`` chain from the entry held before ``start``, and at every checkpoint
entry its size, head and RFC 6962 root over ALL entries of the feed up to it (the Merkle frontier
of what is held, extended by the batch) and its Ed25519 signature by the feed's key. Verification
is hash-bound: one signature per checkpoint, a few microseconds per entry.

It returns the rows to insert; :mod:`edge.ledger.replica` writes them in one transaction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

from edge.ledger.entry import CHECKPOINT, checkpoint_message
from edge.ledger.keys import verify_signature
from edge.ledger.merkle import Frontier, leaf_hashes
from edge.ledger.replica_types import Reason

__all__ = ["Checked", "EntryRow", "Rejected", "check_batch"]

#: An ``entries`` row: (feed, seq, id, prev, ts, type, actor, raw).
EntryRow = tuple[str, int, str, str | None, str, str, str, bytes]

_FIELDS = frozenset(("actor", "body", "feed", "lots", "prev", "refs", "seq", "ts", "type"))
_sha256 = hashlib.sha256
_loads = orjson.loads
_fromhex = bytes.fromhex


class Rejected(Exception):
    """The batch fails a check; nothing of it may be stored."""

    def __init__(self, reason: Reason, seq: int, detail: str) -> None:
        self.reason = reason
        self.seq = seq
        super().__init__(f"seq {seq}: {detail}")


@dataclass(frozen=True, slots=True)
class Checked:
    """A batch that passed every check: what to store.

    Attributes:
        rows: the ``entries`` rows, in seq order.
        lots: the ``entry_lots`` rows (feed, seq, lot).
        checkpoints: the ``checkpoints`` rows (feed, size, head, root, sig), one per checkpoint.
        frontier: the Merkle frontier over the feed up to the batch's end (the last checkpoint
            entry's leaf included), to check the next batch against.
        stored_frontier: (size, packed stack) at the last checkpoint, before its own leaf: the
            ``frontiers`` row (the form the writer stores, :mod:`.stored_frontier`).
        first_checkpoint: index in the batch of its first checkpoint entry.
    """

    rows: list[EntryRow]
    lots: list[tuple[str, int, str]]
    checkpoints: list[tuple[str, int, str, str, str]]
    frontier: Frontier
    stored_frontier: tuple[int, bytes]
    first_checkpoint: int


def check_batch(
    feed: str, start: int, raws: list[bytes], prev: str | None, frontier: Frontier
) -> Checked:
    """Check ``raws`` as entries ``start..`` of ``feed``, following entry ``prev`` (held).

    Args:
        feed: the feed the batch claims to be of.
        start: seq of ``raws[0]``.
        raws: the raw entries (non-empty).
        prev: id of the held entry at ``start - 1`` (None when ``start`` is 0).
        frontier: the Merkle frontier over the held entries ``0..start-1``; extended in place.

    Raises:
        Rejected: a check failed (reason, seq, detail).
    """
    if frontier.size != start:
        raise ValueError(f"frontier of {frontier.size} entries, batch from {start}")
    rows: list[EntryRow] = []
    lots: list[tuple[str, int, str]] = []
    checkpoints: list[tuple[str, int, str, str, str]] = []
    leaves: list[bytes] = []  # ids of entries since the last checkpoint, as bytes
    stored: tuple[int, bytes] = (0, b"")
    first_checkpoint = -1
    seq = start
    for raw in raws:
        if type(raw) is not bytes:
            raise Rejected(Reason.MALFORMED, seq, "an entry is not bytes")
        try:
            data = _loads(raw)
        except orjson.JSONDecodeError:
            raise Rejected(Reason.MALFORMED, seq, "not JSON") from None
        if type(data) is not dict or data.keys() != _FIELDS:
            raise Rejected(Reason.MALFORMED, seq, "not a ledger entry")
        if data["feed"] != feed:
            raise Rejected(Reason.WRONG_FEED, seq, f"entry of feed {str(data['feed'])[:16]}")
        if data["seq"] != seq or type(data["seq"]) is not int:
            raise Rejected(Reason.WRONG_SEQ, seq, f"entry says seq {data['seq']!r}")
        if data["prev"] != prev:
            raise Rejected(Reason.BROKEN_CHAIN, seq, "prev is not the id of the entry before")
        ts, kind, actor, entry_lots = data["ts"], data["type"], data["actor"], data["lots"]
        if (
            type(ts) is not str
            or type(kind) is not str
            or not kind
            or type(actor) is not str
            or type(entry_lots) is not list
            or not all(type(lot) is str and lot for lot in entry_lots)
            or type(data["body"]) is not dict
            or type(data["refs"]) is not list
        ):
            raise Rejected(Reason.MALFORMED, seq, "a field has the wrong type")
        entry_id = _sha256(raw).hexdigest()
        if kind == CHECKPOINT:
            body = data["body"]
            if body.get("size") != seq or body.get("head") != prev or len(body) != 4:
                raise Rejected(Reason.BAD_CHECKPOINT, seq, "size or head is not its place")
            if actor or entry_lots or data["refs"]:  # as the writer makes them: only ts is free
                raise Rejected(Reason.BAD_CHECKPOINT, seq, "a checkpoint with actor, lots or refs")
            frontier.extend(leaf_hashes(leaves))
            leaves = []
            root, sig = body.get("root"), body.get("sig")
            if root != frontier.root().hex():
                raise Rejected(Reason.BAD_CHECKPOINT, seq, "Merkle root does not match")
            assert isinstance(prev, str)  # a checkpoint's head is the entry before it
            if not isinstance(sig, str) or not verify_signature(
                feed, checkpoint_message(feed, seq, prev, root), sig
            ):
                raise Rejected(Reason.BAD_SIGNATURE, seq, "checkpoint not signed by the feed key")
            checkpoints.append((feed, seq, prev, root, sig))
            stored = (seq, frontier.packed())
            if first_checkpoint < 0:
                first_checkpoint = seq - start
        if entry_lots:
            lots.extend((feed, seq, lot) for lot in dict.fromkeys(entry_lots))
        rows.append((feed, seq, entry_id, prev, ts, kind, actor, raw))
        leaves.append(_fromhex(entry_id))
        prev = entry_id
        seq += 1
    if not rows or rows[-1][5] != CHECKPOINT:
        raise Rejected(Reason.UNSIGNED_TAIL, seq - 1, "the batch does not end with a checkpoint")
    frontier.extend(leaf_hashes(leaves))  # the last checkpoint's own leaf
    return Checked(rows, lots, checkpoints, frontier, stored, first_checkpoint)
