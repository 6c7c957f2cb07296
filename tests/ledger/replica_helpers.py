"""Helpers for the replica tests: real ledger files, real keys, batches forged the hard way."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edge.ledger.entry import CHECKPOINT, build_entry, checkpoint_message, parse_entry
from edge.ledger.keys import NodeKey
from edge.ledger.merkle import Frontier, leaf_hash
from edge.ledger.replica import Replica
from edge.ledger.replica_types import Outcome
from edge.ledger.store import Ledger, connect
from edge.ledger.trust import Trusted, TrustList
from edge.ledger.verify import verify_db

T0 = 1_795_000_000.0


def trust(*keys: NodeKey, own: NodeKey | None = None) -> TrustList:
    """A trust list of ``keys`` (named k0, k1 ...) with ``own`` as the node's own key."""
    return TrustList(
        tuple(Trusted(f"k{i}", k.feed) for i, k in enumerate(keys) if k is not own),
        Trusted("self", own.feed) if own is not None else None,
    )


def grow(ledger: Ledger, n: int, *, batch: int = 5, t0: float = T0, lot: str = "LOT-1") -> None:
    """Append ``n`` alarm entries to ``ledger``, committing every ``batch`` (and at the end)."""
    for i in range(n):
        ledger.append(
            "alarm",
            {"rule": "r", "point": "p", "value": f"{i}", "n": i},
            ts=t0 + i,
            lots=[lot] if i % 4 == 0 else (),
        )
        if (i + 1) % batch == 0:
            ledger.commit(now=t0 + i)
    ledger.commit(now=t0 + n)


def feed_raws(path: Path, feed: str) -> list[bytes]:
    """Every raw entry of ``feed`` in the file, in seq order."""
    conn = connect(path, readonly=True)
    try:
        return [
            bytes(r[0])
            for r in conn.execute("SELECT raw FROM entries WHERE feed = ? ORDER BY seq", (feed,))
        ]
    finally:
        conn.close()


def feed_ids(path: Path, feed: str) -> list[str]:
    """Every id of ``feed`` in the file, in seq order."""
    conn = connect(path, readonly=True)
    try:
        return [
            str(r[0])
            for r in conn.execute("SELECT id FROM entries WHERE feed = ? ORDER BY seq", (feed,))
        ]
    finally:
        conn.close()


def replicate(src: Replica, dst: Replica, feed: str, *, max_entries: int = 7) -> int:
    """Copy ``feed`` from ``src`` to ``dst`` range by range; returns entries stored."""
    stored = 0
    while True:
        start = dst.end(feed)
        raws = src.read_range(feed, start, max_entries=max_entries)
        if not raws:
            return stored
        result = dst.accept(feed, start, raws, now=T0)
        assert result.outcome is Outcome.STORED, result
        stored += result.stored


def continue_feed(
    held: Sequence[bytes],
    key: NodeKey,
    n: int,
    *,
    signer: NodeKey | None = None,
    root: str | None = None,
    t0: float = T0 + 10_000,
    tag: str = "",
) -> list[bytes]:
    """``n`` new entries of ``key``'s feed after ``held`` and a checkpoint over all of it.

    ``signer`` signs the checkpoint (default the feed's key); ``root`` replaces its Merkle root.
    """
    frontier = Frontier()
    prev: str | None = None
    for raw in held:
        entry = parse_entry(raw)
        frontier.append(leaf_hash(bytes.fromhex(entry.id)))
        prev = entry.id
    out = []
    seq = len(held)
    for i in range(n):
        entry = build_entry(
            key.feed, seq, prev, t0 + i, "alarm", {"forged": f"{tag}{i}"}, [], "", []
        )
        frontier.append(leaf_hash(bytes.fromhex(entry.id)))
        out.append(entry.raw)
        prev = entry.id
        seq += 1
    assert prev is not None
    the_root = root or frontier.root().hex()
    sig = (signer or key).sign(checkpoint_message(key.feed, seq, prev, the_root))
    body = {"size": seq, "head": prev, "root": the_root, "sig": sig}
    checkpoint = build_entry(key.feed, seq, prev, t0 + n, CHECKPOINT, body, [], "", [])
    out.append(checkpoint.raw)
    return out


def assert_verifies(path: Path, names: dict[str, str] | None = None) -> None:
    """``verify`` finds nothing wrong in the file."""
    conn = connect(path, readonly=True)
    try:
        report = verify_db(conn, trusted=names)
    finally:
        conn.close()
    assert report.ok, report.problems
