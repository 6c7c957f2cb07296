"""The SQLite store: group commit with checkpoints, reopen, rollback guard, single writer, readings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest
from stored_readings import stored

from edge.errors import LedgerClosed, NotCanonical, StorageError
from edge.ledger import merkle
from edge.ledger.entry import checkpoint_message, parse_entry
from edge.ledger.keys import NodeKey, verify_signature
from edge.ledger.store import Ledger
from edge.ledger.verify import verify_db
from edge.readings import Reading

from .conftest import T0, assert_verifies, build_ledger


def rows(path: Path) -> list[tuple[int, str, str | None, str, bytes]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT seq, id, prev, type, raw FROM entries ORDER BY seq").fetchall()
    finally:
        conn.close()


def test_each_commit_is_one_batch_ending_in_a_signed_checkpoint(
    tmp_path: Path, key: NodeKey
) -> None:
    path = tmp_path / "l.db"
    build_ledger(path, key).close()
    entries = rows(path)
    assert [seq for seq, *_ in entries] == list(range(18))
    assert [seq for seq, _, _, t, _ in entries if t == "checkpoint"] == [5, 10, 17]
    ids = [bytes.fromhex(i) for _, i, *_ in entries]
    for seq, _, prev, kind, raw in entries:
        assert prev == (entries[seq - 1][1] if seq else None)
        if kind == "checkpoint":
            body = orjson.loads(raw)["body"]
            # independent oracle: the Merkle root recomputed from scratch over the ids before it
            assert body["root"] == merkle.root([merkle.leaf_hash(i) for i in ids[:seq]]).hex()
            assert body["size"] == seq
            assert body["head"] == prev
            assert verify_signature(
                key.feed, checkpoint_message(key.feed, seq, prev, body["root"]), body["sig"]
            )


def test_reopen_continues_the_chain(tmp_path: Path, key: NodeKey) -> None:
    path = tmp_path / "l.db"
    first = build_ledger(path, key)
    head = first.head
    first.close()
    with Ledger.open(path, key) as again:
        assert again.head == head
        assert again.size == 18
        e = again.append("node.start", {"node_id": "n1"}, ts=T0 + 100)
        assert e.seq == 18
        assert e.prev == head.id  # type: ignore[union-attr]
        assert again.commit(now=T0 + 101) == 2
    assert_verifies(path)


def test_uncommitted_entries_are_not_stored(tmp_path: Path, key: NodeKey) -> None:
    path = tmp_path / "l.db"
    with Ledger.open(path, key) as ledger:
        ledger.append("a", {}, ts=T0)
        assert ledger.pending == 1
        assert ledger.size == 0
    assert rows(path) == []
    assert Ledger.open(path, key).commit() == 0  # nothing pending: no empty checkpoint


def test_bad_content_leaves_the_chain_untouched(tmp_path: Path, key: NodeKey) -> None:
    with Ledger.open(tmp_path / "l.db", key) as ledger:
        ledger.append("a", {"v": "1"}, ts=T0)
        with pytest.raises(NotCanonical, match=r"body\.v: float"):
            ledger.append("a", {"v": 1.5}, ts=T0)
        e = ledger.append("a", {"v": "2"}, ts=T0)
        assert e.seq == 1
        ledger.commit()
        assert verify_db(ledger.conn).ok


def test_one_writer_per_file(tmp_path: Path, key: NodeKey) -> None:
    path = tmp_path / "l.db"
    with Ledger.open(path, key), pytest.raises(StorageError, match="another process is writing"):
        Ledger.open(path, NodeKey.generate())
    Ledger.open(path, key).close()  # released on close


def test_closed_and_readonly_ledgers_refuse_appends(tmp_path: Path, key: NodeKey) -> None:
    path = tmp_path / "l.db"
    ledger = Ledger.open(path, key)
    ledger.close()
    ledger.close()  # idempotent
    with pytest.raises(LedgerClosed):
        ledger.append("a", {}, ts=T0)
    with Ledger.open(path) as reader, pytest.raises(StorageError, match="without a key"):
        reader.append("a", {}, ts=T0)


def test_failed_commit_keeps_the_batch_and_retries(tmp_path: Path, key: NodeKey) -> None:
    """A commit that fails (here: a conflicting row planted by another connection) changes nothing
    in memory; after the obstacle is gone the same batch commits and the chain is intact."""
    path = tmp_path / "l.db"
    ledger = Ledger.open(path, key)
    ledger.append("a", {"n": 1}, ts=T0)
    ledger.commit(now=T0)
    e = ledger.append("a", {"n": 2}, ts=T0 + 1)
    other = sqlite3.connect(path)
    other.execute(
        "INSERT INTO checkpoints VALUES (?, 3, 'x', 'y', 'z')", (key.feed,)
    )  # will collide
    other.commit()
    with pytest.raises(StorageError, match="UNIQUE constraint failed"):
        ledger.commit(now=T0 + 2)
    assert ledger.size == 2
    assert ledger.pending == 2
    other.execute("DROP TRIGGER checkpoints_no_delete")
    other.execute("DELETE FROM checkpoints WHERE head = 'x'")
    other.commit()
    other.close()
    assert ledger.commit(now=T0 + 3) == 2
    assert ledger.head is not None
    assert ledger.head.prev == e.id
    assert verify_db(ledger.conn).ok
    ledger.close()


def test_readings_block_digest_and_retention(tmp_path: Path, key: NodeKey) -> None:
    path = tmp_path / "l.db"
    with Ledger.open(path, key) as ledger:
        old = [Reading("temp", T0 + i, 4.0 + i / 4, unit="degC") for i in range(10)]
        new = [Reading("temp", T0 + 1000 + i, "OK" if i else True) for i in range(5)]
        d1 = ledger.append_readings(old)
        d2 = ledger.append_readings(new)
        ledger.commit()
        assert d1.body["block"] == 1
        assert d2.body["block"] == 2
        assert d1.body["count"] == 10
        assert d1.body["points"] == ["temp"]
        kept = stored(ledger.conn, block=1)
        assert (kept[1].point, kept[1].ts, kept[1].value, kept[1].quality, kept[1].unit) == (
            "temp",
            "2026-11-18T11:06:41.000000Z",
            4.25,
            "good",
            "degC",
        )
        assert [r.value for r in stored(ledger.conn, block=2)] == [True, "OK", "OK", "OK", "OK"]
        assert ledger.prune_readings(before=T0 + 500) == 10
        assert len(stored(ledger.conn)) == 5
        assert verify_db(
            ledger.conn
        ).ok  # pruned blocks are not re-hashed; digests stay on the chain
        assert (
            parse_entry(
                ledger.conn.execute("SELECT raw FROM entries WHERE id = ?", (d1.id,)).fetchone()[0]
            ).body
            == d1.body
        )
    with Ledger.open(path, key) as again:  # block numbers continue after a restart
        assert again.append_readings(new).body["block"] == 3


def test_block_digest_is_the_sha256_of_canonical_readings() -> None:
    """Independent oracle: rfc8785 over the documented block format."""
    import hashlib

    import rfc8785

    from edge.ledger.readings_store import make_block

    block = make_block(
        [Reading("p", 1.5, 2.5, unit="u"), Reading("q", 2.0, None, quality="comm_fail")]
    )  # type: ignore[arg-type]
    want = rfc8785.dumps(
        [
            ["p", "1970-01-01T00:00:01.500000Z", "2.5", "good", "u"],
            ["q", "1970-01-01T00:00:02.000000Z", None, "comm_fail", ""],
        ]
    )
    assert block.sha256 == hashlib.sha256(want).hexdigest()


def _rebuilt_root(path: Path, key: NodeKey) -> bytes:
    """The root a full rebuild gives (the stored frontier removed behind the ledger's back)."""
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM frontiers")
    conn.commit()
    conn.close()
    with Ledger.open(path, key) as ledger:
        assert ledger.frontier_rebuilt
        return ledger._frontier.root()


def test_reopen_takes_the_stored_frontier_and_continues(tmp_path: Path, key: NodeKey) -> None:
    path = tmp_path / "l.db"
    build_ledger(path, key).close()
    with Ledger.open(path, key) as again:
        assert not again.frontier_rebuilt  # vouched for by the last checkpoint's signed root
        stored_root = again._frontier.root()
        again.append("node.start", {"node_id": "n1"}, ts=T0 + 100)
        again.commit(now=T0 + 101)
    assert_verifies(path)  # the new checkpoint's root is right
    with Ledger.open(path, key) as third:
        assert not third.frontier_rebuilt
        size = third.size
    assert size == 20
    assert stored_root != _rebuilt_root(path, key)  # the tree grew since
    build_ledger(tmp_path / "m.db", key).close()
    with Ledger.open(tmp_path / "m.db", key) as fresh:
        assert not fresh.frontier_rebuilt
        stored = fresh._frontier.root()
    assert stored == _rebuilt_root(tmp_path / "m.db", key)


@pytest.mark.parametrize(
    "tamper",
    [
        "UPDATE frontiers SET stack = randomblob(length(stack))",  # other subtree roots
        "UPDATE frontiers SET stack = substr(stack, 33)",  # a root missing
        "UPDATE frontiers SET size = size - 1",  # not the last checkpoint's tree
        "UPDATE frontiers SET stack = 'not a blob'",
        "UPDATE frontiers SET stack = CAST(randomblob(length(stack)) AS TEXT)",  # not UTF-8
        "UPDATE frontiers SET size = 'twenty'",
    ],
)
def test_a_stored_frontier_the_checkpoint_does_not_vouch_for_is_rebuilt(
    tmp_path: Path, key: NodeKey, tamper: str
) -> None:
    path = tmp_path / "l.db"
    build_ledger(path, key).close()
    conn = sqlite3.connect(path)
    conn.execute(tamper)
    conn.commit()
    conn.close()
    with Ledger.open(path, key) as again:
        assert again.frontier_rebuilt
        again.append("node.start", {"node_id": "n1"}, ts=T0 + 100)
        again.commit(now=T0 + 101)
    assert_verifies(path)


def test_a_gap_in_the_feed_is_found_even_with_a_stored_frontier(
    tmp_path: Path, key: NodeKey
) -> None:
    path = tmp_path / "l.db"
    build_ledger(path, key).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER entries_no_delete")
    conn.execute("DELETE FROM entries WHERE seq = 3")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="has a gap at seq 3"):
        Ledger.open(path, key)
