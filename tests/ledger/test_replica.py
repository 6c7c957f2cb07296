"""Replica.accept: a peer's batch is verified before anything is stored, and stored whole or not.

Real SQLite files and real keys; the bad batches are built the way an attacker or a broken peer
would make them (wrong key, altered bytes, a root that is not the tree's, a gap ...).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from edge.ledger.keys import NodeKey
from edge.ledger.replica import MAX_BATCH_ENTRIES, Replica
from edge.ledger.replica_types import Outcome, Reason
from edge.ledger.store import Ledger

from .replica_helpers import (
    T0,
    assert_verifies,
    continue_feed,
    feed_ids,
    feed_raws,
    grow,
    replicate,
    trust,
)


@pytest.fixture
def keys() -> tuple[NodeKey, NodeKey, NodeKey]:
    return NodeKey.generate(), NodeKey.generate(), NodeKey.generate()


@pytest.fixture
def pair(tmp_path: Path, keys: tuple[NodeKey, NodeKey, NodeKey]):  # type: ignore[no-untyped-def]
    """A gateway A with 23 entries in its feed (+ checkpoints) and a peer B (its own 3)."""
    a, b, c = keys
    with Ledger.open(tmp_path / "a.db", a) as ledger:
        grow(ledger, 23, batch=5)
    with Ledger.open(tmp_path / "b.db", b) as ledger:
        grow(ledger, 3, t0=T0 + 50_000)
    ra = Replica.open(tmp_path / "a.db", a, trust(b, c, own=a), take_lock=True)
    rb = Replica.open(tmp_path / "b.db", b, trust(a, c, own=b), take_lock=True)
    yield ra, rb
    ra.close()
    rb.close()


def _entries(path: Path) -> int:
    from edge.ledger.store import connect

    conn = connect(path, readonly=True)
    try:
        return int(conn.execute("SELECT count(*) FROM entries").fetchone()[0])
    finally:
        conn.close()


def test_replicates_a_feed_identically_and_the_copy_verifies(pair, keys) -> None:  # type: ignore[no-untyped-def]
    ra, rb = pair
    a, b, _ = keys
    stored = replicate(ra, rb, a.feed, max_entries=4)
    assert stored == len(feed_raws(ra.path, a.feed)) == rb.end(a.feed)
    assert feed_ids(rb.path, a.feed) == feed_ids(ra.path, a.feed)
    assert_verifies(rb.path, {a.feed: "a", b.feed: "b"})
    head = rb.head(a.feed)
    assert head is not None
    assert head.checkpoint is not None
    assert head.checkpoint.seq == head.end - 1
    assert head.checkpoint.signed()
    assert rb.stats()["accepted_entries"] == stored


def test_read_range_ends_on_a_checkpoint_and_never_serves_unsigned_entries(pair, keys) -> None:  # type: ignore[no-untyped-def]
    ra, _ = pair
    a = keys[0]
    raws = feed_raws(ra.path, a.feed)
    for start in range(len(raws)):
        got = ra.read_range(a.feed, start, max_entries=3)
        assert got == raws[start : start + len(got)]
        assert got
        assert orjson.loads(got[-1])["type"] == "checkpoint"
    assert ra.read_range(a.feed, len(raws)) == []
    assert ra.read_range("0" * 64, 0) == []


def test_untrusted_feed_is_rejected_and_nothing_stored(tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = keys
    rogue = NodeKey.generate()
    with Ledger.open(tmp_path / "r.db", rogue) as ledger:
        grow(ledger, 6)
    rb = Replica.open(tmp_path / "b.db", b, trust(a, own=b), take_lock=True)
    raws = feed_raws(tmp_path / "r.db", rogue.feed)
    result = rb.accept(rogue.feed, 0, raws, now=T0)
    assert (result.outcome, result.reason, result.alarm) == (
        Outcome.REJECTED,
        Reason.UNTRUSTED,
        False,
    )
    assert _entries(tmp_path / "b.db") == 0  # not even its first entry
    assert rb.stats() == {"rejected.untrusted": 1}
    rb.close()


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        ("wrong_signer", Reason.BAD_SIGNATURE),
        ("wrong_root", Reason.BAD_CHECKPOINT),
        ("altered_entry", Reason.BROKEN_CHAIN),
        ("rechained", Reason.BAD_CHECKPOINT),
        ("no_checkpoint", Reason.UNSIGNED_TAIL),
        ("checkpoint_with_lots", Reason.BAD_CHECKPOINT),
        ("other_feed", Reason.WRONG_FEED),
        ("wrong_seq", Reason.WRONG_SEQ),
        ("garbage", Reason.MALFORMED),
        ("not_an_entry", Reason.MALFORMED),
    ],
)
def test_a_bad_batch_is_rejected_whole(pair, keys, make: str, reason: Reason) -> None:  # type: ignore[no-untyped-def]
    ra, rb = pair
    a, _, c = keys
    replicate(ra, rb, a.feed)
    held = feed_raws(rb.path, a.feed)
    before = feed_ids(rb.path, a.feed)
    good = continue_feed(held, a, 6)
    batch = list(good)
    if make == "wrong_signer":
        batch = continue_feed(held, a, 6, signer=c)
    elif make == "wrong_root":
        batch = continue_feed(held, a, 6, root="ab" * 32)
    elif make == "altered_entry":  # bytes changed on a disk: the next entry's prev no longer fits
        data = orjson.loads(batch[2])
        data["body"]["forged"] = "changed"
        batch[2] = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    elif make == "rechained":  # the tail relinked after the change: the checkpoint says no
        other = continue_feed(held, a, 6, tag="x")[:-1]  # every entry changed, chain relinked
        checkpoint = orjson.loads(good[-1])
        checkpoint["prev"] = hashlib.sha256(other[-1]).hexdigest()  # ... to the old signature
        batch = [*other, orjson.dumps(checkpoint, option=orjson.OPT_SORT_KEYS)]
    elif make == "no_checkpoint":
        batch = good[:-1]
    elif make == "checkpoint_with_lots":  # unsigned fields a writer never sets
        checkpoint = orjson.loads(good[-1])
        checkpoint["lots"] = ["LOT-FAKE"]
        batch = [*good[:-1], orjson.dumps(checkpoint, option=orjson.OPT_SORT_KEYS)]
    elif make == "other_feed":  # a's entries published as c's (spoofed topic)
        result = rb.accept(c.feed, 0, held[:6], now=T0)
        assert (result.outcome, result.reason) == (Outcome.REJECTED, reason)
        assert feed_ids(rb.path, a.feed) == before
        return
    elif make == "wrong_seq":
        batch = good[1:]
    elif make == "garbage":
        batch = [b"\x00\xffnot json", *good]
    elif make == "not_an_entry":
        batch = [b'{"feed": 1}', *good]
    result = rb.accept(a.feed, len(held), batch, now=T0)
    assert (result.outcome, result.reason, result.end) == (Outcome.REJECTED, reason, len(held))
    assert result.stored == 0
    assert result.detail
    # tampering with a trusted feed's history is an alarm; malformed input is only counted
    assert result.alarm == (
        reason in (Reason.BAD_SIGNATURE, Reason.BAD_CHECKPOINT, Reason.BROKEN_CHAIN)
    )
    assert feed_ids(rb.path, a.feed) == before
    assert rb.stats()[f"rejected.{reason}"] == 1
    # the good batch still goes in afterwards
    assert rb.accept(a.feed, len(held), good, now=T0).outcome is Outcome.STORED
    assert_verifies(rb.path)


def test_gap_is_reported_with_the_seq_to_request_and_filled_later(pair, keys) -> None:  # type: ignore[no-untyped-def]
    ra, rb = pair
    a = keys[0]
    first = ra.read_range(a.feed, 0, max_entries=6)
    second = ra.read_range(a.feed, len(first), max_entries=6)
    start2 = len(first)
    gap = rb.accept(a.feed, start2, second, now=T0)
    assert (gap.outcome, gap.need_from, gap.end) == (Outcome.GAP, 0, 0)
    assert rb.end(a.feed) == 0
    assert rb.accept(a.feed, 0, first, now=T0).outcome is Outcome.STORED
    assert rb.accept(a.feed, start2, second, now=T0).outcome is Outcome.STORED  # the buffered one
    assert rb.end(a.feed) == start2 + len(second)
    assert rb.stats()["gaps"] == 1


def test_duplicates_replays_and_overlaps(pair, keys) -> None:  # type: ignore[no-untyped-def]
    ra, rb = pair
    a = keys[0]
    replicate(ra, rb, a.feed)
    end = rb.end(a.feed)
    raws = feed_raws(ra.path, a.feed)
    again = rb.accept(a.feed, 0, raws[:6], now=T0)  # an old message replayed
    assert (again.outcome, again.end, again.stored) == (Outcome.DUPLICATE, end, 0)
    assert rb.accept(a.feed, 0, raws, now=T0).outcome is Outcome.DUPLICATE
    # an overlapping batch: the held part is checked against what we hold, the rest stored
    more = continue_feed(raws, a, 4)
    overlapping = raws[end - 3 :] + more
    result = rb.accept(a.feed, end - 3, overlapping, now=T0)
    assert (result.outcome, result.stored, result.end) == (Outcome.STORED, 5, end + 5)
    assert_verifies(rb.path)


def test_oversize_and_empty_batches(pair, keys) -> None:  # type: ignore[no-untyped-def]
    _, rb = pair
    a = keys[0]
    big = rb.accept(a.feed, 0, [b"{}"] * (MAX_BATCH_ENTRIES + 1), now=T0)
    assert (big.outcome, big.reason) == (Outcome.REJECTED, Reason.TOO_LARGE)
    empty = rb.accept(a.feed, 0, [], now=T0)
    assert (empty.outcome, empty.reason) == (Outcome.REJECTED, Reason.MALFORMED)
    negative = rb.accept(a.feed, -1, [b"{}"], now=T0)
    assert negative.reason is Reason.MALFORMED
    for junk in (["text"], [None], [7], [b"{}", bytearray(b"{}")]):
        assert rb.accept(a.feed, 0, junk, now=T0).reason is Reason.MALFORMED  # type: ignore[arg-type]
    assert rb.accept(7, 0, [b"{}"], now=T0).reason is Reason.UNTRUSTED  # type: ignore[arg-type]
    assert rb.end(a.feed) == 0


def test_a_replica_does_not_block_the_feed_owner_from_writing(tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    """Inside a node: the writer holds the lock; the replica writes peers' feeds beside it."""
    a, b, _ = keys
    with Ledger.open(tmp_path / "a.db", a) as src:
        grow(src, 12)
    rsrc = Replica.open(tmp_path / "a.db", a, trust(b, own=a), take_lock=True)
    with Ledger.open(tmp_path / "b.db", b) as own:
        rb = Replica.open(tmp_path / "b.db", b, trust(a, own=b))  # no lock: the writer's
        grow(own, 7, t0=T0 + 1000)
        replicate(rsrc, rb, a.feed)
        grow(own, 7, t0=T0 + 2000)
        assert own.size == rb.end(b.feed)
        rb.close()
    rsrc.close()
    assert feed_ids(tmp_path / "b.db", a.feed) == feed_ids(tmp_path / "a.db", a.feed)
    assert_verifies(tmp_path / "b.db", {a.feed: "a", b.feed: "b"})


async def test_peers_batches_and_the_nodes_own_commits_interleave(tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    """In a running node: the LedgerWriter (and its commit process) appends our feed while the
    replica, in a worker thread, stores a peer's feed into the same file. Both end whole."""
    import asyncio

    from edge.ledger.writer import LedgerWriter

    a, b, _ = keys
    with Ledger.open(tmp_path / "a.db", a) as src:
        grow(src, 600, batch=7)
    source = Replica.open(tmp_path / "a.db", a, trust(b, own=a), take_lock=True)
    batches = []
    start = 0
    while raws := source.read_range(a.feed, start, max_entries=40):
        batches.append((start, raws))
        start += len(raws)
    source.close()
    writer = LedgerWriter.open(tmp_path / "b.db", b, flush_interval=0.005, batch_max=20)
    replica = Replica.open(tmp_path / "b.db", b, trust(a, own=b))  # the writer holds the lock
    replica.follow_writer(lambda: writer.size)

    async def peer() -> None:
        for begin, raws in batches:
            result = await asyncio.to_thread(replica.accept, a.feed, begin, raws, now=T0)
            assert result.outcome is Outcome.STORED, result

    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run())
        feeding = tg.create_task(peer())
        for i in range(400):
            await writer.append("alarm", {"i": i}, ts=T0 + i)
            if i % 10 == 0:
                writer.commit_now()
                await asyncio.sleep(0.001)
        await feeding
        await writer.aclose()
    replica.close()
    assert feed_ids(tmp_path / "b.db", a.feed) == feed_ids(tmp_path / "a.db", a.feed)
    assert len(feed_ids(tmp_path / "b.db", b.feed)) > 400
    assert_verifies(tmp_path / "b.db", {a.feed: "a", b.feed: "b"})
