"""The pure verify core: property tests over in-memory rows, two implementations compared."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.ledger import verify, verify_parallel
from edge.ledger.entry import checkpoint_message
from edge.ledger.keys import NodeKey
from edge.ledger.store import connect
from edge.ledger.verify import FeedVerifier, Kind, verify_feed

from .conftest import build_ledger

Row = tuple[int, str, "str | None", str, str, str, bytes]
KEY = NodeKey.generate()


def _load(tmp: Path) -> tuple[str, list[Row], list[tuple[int, str, str, str]]]:
    ledger = build_ledger(tmp / "l.db", KEY, batches=(7, 1, 9, 5, 12))
    conn = ledger.conn
    rows = conn.execute(
        "SELECT seq, id, prev, ts, type, actor, raw FROM entries ORDER BY seq"
    ).fetchall()
    recorded = conn.execute(
        "SELECT size, head, root, sig FROM checkpoints ORDER BY size DESC"
    ).fetchall()
    ledger.close()
    return KEY.feed, rows, recorded


@pytest.fixture(scope="module")
def chain(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, list[Row], list[tuple[int, str, str, str]]]:
    return _load(tmp_path_factory.mktemp("chain"))


def slow(
    feed: str, rows: list[Row], recorded: list[tuple[int, str, str, str]]
) -> set[tuple[int, Kind]]:
    """Second implementation: the per-row path only (no byte-level fast path)."""
    v = FeedVerifier(feed, table=sorted(recorded))
    for row in rows:
        v.add(row)
    return {(p.seq, p.kind) for p in v.finish(recorded).problems}


def fast(
    feed: str, rows: list[Row], recorded: list[tuple[int, str, str, str]]
) -> set[tuple[int, Kind]]:
    return {(p.seq, p.kind) for p in verify_feed(feed, rows, recorded=recorded).problems}


def test_intact_chain_verifies_both_ways(
    chain: tuple[str, list[Row], list[tuple[int, str, str, str]]],
) -> None:
    feed, rows, recorded = chain
    report = verify_feed(feed, rows, recorded=recorded)
    assert report.ok
    assert report.entries == len(rows) == 39
    assert report.checkpoints == 5
    assert report.signed == 38
    assert slow(feed, rows, recorded) == set()


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_flipped_byte_is_named_at_its_seq(
    chain: tuple[str, list[Row], list[tuple[int, str, str, str]]], data: st.DataObject
) -> None:
    feed, rows, recorded = chain
    seq = data.draw(st.integers(0, len(rows) - 1))
    raw = rows[seq][6]
    at = data.draw(st.integers(0, len(raw) - 1))
    bit = data.draw(st.integers(0, 7))
    forged = raw[:at] + bytes([raw[at] ^ (1 << bit)]) + raw[at + 1 :]
    mutated = list(rows)
    mutated[seq] = (*rows[seq][:6], forged)
    got = fast(feed, mutated, recorded)
    assert (seq, Kind.CHANGED) in got
    assert got == slow(feed, mutated, recorded)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_deletions_swaps_and_column_edits_are_named(
    chain: tuple[str, list[Row], list[tuple[int, str, str, str]]], data: st.DataObject
) -> None:
    feed, rows, recorded = chain
    mutated = list(rows)
    action = data.draw(st.sampled_from(["delete", "swap", "column", "truncate"]))
    i = data.draw(st.integers(1, len(rows) - 2))
    if action == "delete":
        del mutated[i]
        want = {(i, Kind.MISSING)}
    elif action == "swap":
        a, b = rows[i], rows[i + 1]
        mutated[i], mutated[i + 1] = (i, *b[1:]), (i + 1, *a[1:])
        want = {(i, Kind.REORDERED), (i + 1, Kind.REORDERED)}
    elif action == "column":
        column = data.draw(st.sampled_from([3, 4, 5]))
        row = list(rows[i])
        row[column] = str(row[column]) + "x"
        mutated[i] = tuple(row)  # type: ignore[assignment]
        want = {(i, Kind.INDEX_MISMATCH)}
    else:
        del mutated[i:]
        want = {(i, Kind.ROLLBACK)}
    got = fast(feed, mutated, recorded)
    assert want <= got
    assert got == slow(feed, mutated, recorded)


def test_parallel_verify_matches_sequential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of 8 entries in 2 worker processes: the Merkle roots combine across chunks."""
    import sqlite3

    path = tmp_path / "l.db"
    build_ledger(path, KEY, batches=(7, 1, 9, 5, 12, 20, 3)).close()
    monkeypatch.setattr(verify, "PARALLEL_MIN", 10)
    monkeypatch.setattr(verify_parallel, "CHUNK", 8)
    conn = connect(path, readonly=True)
    good = verify.verify_db(conn, workers=2)
    assert good.ok
    assert good.entries == 64
    assert good.feeds[0].signed == 63
    conn.close()
    attack = sqlite3.connect(path)
    attack.execute("DROP TRIGGER entries_no_delete")
    attack.execute("DROP TRIGGER entries_no_update")
    attack.execute("DELETE FROM entries WHERE seq IN (20, 40, 41)")
    attack.execute("UPDATE entries SET raw = raw || ' ' WHERE seq = 33")
    attack.execute("DROP TRIGGER checkpoints_no_update")
    attack.execute("UPDATE checkpoints SET sig = '00' WHERE size = 25")  # in the 4th chunk
    attack.commit()
    attack.close()
    conn = connect(path, readonly=True)
    par = {(p.seq, p.kind) for p in verify.verify_db(conn, workers=2).problems}
    seq = {(p.seq, p.kind) for p in verify.verify_db(conn, workers=1).problems}
    conn.close()
    assert {(20, Kind.MISSING), (33, Kind.CHANGED), (40, Kind.MISSING)} <= par
    assert (25, Kind.CHECKPOINT_TABLE) in par
    assert par == seq


def test_wrong_root_signed_by_the_feed_key_needs_merkle(
    chain: tuple[str, list[Row], list[tuple[int, str, str, str]]],
) -> None:
    """A checkpoint whose root is wrong but genuinely signed (a writer bug) is caught by the
    Merkle check; without it the chain and signature still hold, so nothing is reported."""
    feed, rows, _ = chain
    last = rows[-1]
    content = orjson.loads(last[6])
    assert content["type"] == "checkpoint"
    body = content["body"]
    body["root"] = "00" * 32
    body["sig"] = KEY.sign(checkpoint_message(feed, body["size"], body["head"], body["root"]))
    raw = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    mutated = [*rows[:-1], (last[0], hashlib.sha256(raw).hexdigest(), *last[2:6], raw)]
    seq = last[0]
    full = {(p.seq, p.kind) for p in verify_feed(feed, mutated).problems}
    assert (seq, Kind.BAD_CHECKPOINT) in full
    assert verify_feed(feed, mutated, merkle=False).ok
    assert verify_feed(feed, rows, merkle=False).ok
