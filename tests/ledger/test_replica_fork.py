"""Forks kept as proof; a node rolled back (old backup, lost database) detected and restored.

A second history of a feed is made for real: the gateway's database file is copied (a backup),
and the copy and the original are both appended to with the same key.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from edge.errors import RollbackRefused
from edge.ledger.keys import NodeKey
from edge.ledger.replica import Replica
from edge.ledger.replica_record import record_pending
from edge.ledger.replica_types import Checkpoint, Outcome, OwnStatus, Reason
from edge.ledger.store import Ledger, connect
from edge.ledger.trust import TrustList
from edge.ledger.verify import verify_db
from edge.ledger.writer import LedgerWriter

from .replica_helpers import T0, assert_verifies, feed_ids, feed_raws, grow, replicate, trust


def _copy_db(src: Path, dst: Path) -> None:
    """A backup of a closed ledger file (with its WAL, if any)."""
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{src}{suffix}").exists():
            shutil.copy(f"{src}{suffix}", f"{dst}{suffix}")


@pytest.fixture
def nodes(tmp_path: Path):  # type: ignore[no-untyped-def]
    a, b = NodeKey.generate(), NodeKey.generate()
    with Ledger.open(tmp_path / "a.db", a) as ledger:
        grow(ledger, 12, batch=4)
    _copy_db(tmp_path / "a.db", tmp_path / "backup.db")  # the backup: 12 entries in
    with Ledger.open(tmp_path / "a.db", a) as ledger:
        grow(ledger, 10, batch=4, t0=T0 + 1000)
    with Ledger.open(tmp_path / "b.db", b) as ledger:
        grow(ledger, 2, t0=T0 + 5000)
    return tmp_path, a, b


def test_a_second_valid_history_is_kept_as_proof_and_never_stored(nodes) -> None:  # type: ignore[no-untyped-def]
    tmp_path, a, b = nodes
    # The backup is restored on another box that runs with the same key: a second history.
    with Ledger.open(tmp_path / "backup.db", a) as ledger:
        grow(ledger, 6, batch=3, t0=T0 + 9000)
    ra = Replica.open(tmp_path / "a.db", a, trust(b, own=a), take_lock=True)
    rb = Replica.open(tmp_path / "b.db", b, trust(a, own=b), take_lock=True)
    replicate(ra, rb, a.feed)
    before = feed_ids(tmp_path / "b.db", a.feed)
    fork_at = len(feed_raws(tmp_path / "backup.db", a.feed)) - 6 - 2  # first entry after copy
    branch = feed_raws(tmp_path / "backup.db", a.feed)
    result = rb.accept(a.feed, fork_at, branch[fork_at:], now=T0, source="gw-x")
    assert result.outcome is Outcome.FORK
    assert result.alarm
    assert f"from seq {fork_at}" in result.detail
    assert feed_ids(tmp_path / "b.db", a.feed) == before  # nothing of the branch stored
    head = rb.head(a.feed)
    assert head is not None
    assert head.forked_at == fork_at
    # the proof: the conflicting entries up to the checkpoint whose signature covers them
    conn = connect(tmp_path / "b.db", readonly=True)
    seq, held, _other, proof, source = conn.execute(
        "SELECT seq, held, id, branch, source FROM forks"
    ).fetchone()
    conn.close()
    assert (seq, held, source) == (fork_at, before[fork_at], "gw-x")
    proof_raws = bytes(proof).split(b"\n")
    assert proof_raws == branch[fork_at : fork_at + len(proof_raws)]
    assert orjson.loads(proof_raws[-1])["type"] == "checkpoint"
    assert Checkpoint.from_raw(proof_raws[-1]).signed()
    # the same proof again: still a fork, no new alarm, still one record owed
    again = rb.accept(a.feed, fork_at, branch[fork_at:], now=T0, source="gw-x")
    assert again.outcome is Outcome.FORK
    assert not again.alarm
    records = rb.pending_records()
    assert [(r.type, r.body["seq"], r.body["held"]) for r in records] == [
        ("ledger.fork", fork_at, before[fork_at])
    ]
    rb.mark_recorded(records[0].key, "e" * 64)
    assert rb.pending_records() == []
    # nothing beyond the fork is cosigned; the branch we hold still grows and still verifies
    assert rb.cosign(feed_raws(tmp_path / "b.db", a.feed)[-1], now=T0) is None
    assert [s.forked_at for s in rb.status() if s.feed == a.feed] == [fork_at]
    status = subprocess.run(
        [sys.executable, "-m", "edge", "ledger", "status", "--db", str(tmp_path / "b.db"),
         "--trust", a.feed, "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert status.returncode == 1, status.stderr
    feeds = {f["feed"]: f for f in json.loads(status.stdout)["feeds"]}
    assert (feeds[a.feed]["forked"], feeds[a.feed]["forked_at"]) == (True, fork_at)
    # verify names the fork (its proof checked again), and only that
    assert _problems(tmp_path / "b.db") == [(a.feed, fork_at, "forked feed")]
    ra.close()
    rb.close()
    # a proof altered behind sync's back proves nothing, and verify says so
    conn = sqlite3.connect(tmp_path / "b.db")
    conn.execute("DROP TRIGGER forks_no_update")
    conn.execute("UPDATE forks SET branch = ?", (b"\n".join(proof_raws[1:]),))
    conn.commit()
    conn.close()
    assert _problems(tmp_path / "b.db") == [(a.feed, fork_at, "bad fork record")]


def _problems(path: Path) -> list[tuple[str, int, str]]:
    conn = connect(path, readonly=True)
    try:
        report = verify_db(conn)
    finally:
        conn.close()
    return [(p.feed, p.seq, str(p.kind)) for p in report.problems]


def test_a_conflicting_checkpoint_announced_by_a_peer_is_a_fork(nodes) -> None:  # type: ignore[no-untyped-def]
    tmp_path, a, b = nodes
    with Ledger.open(tmp_path / "backup.db", a) as ledger:
        grow(ledger, 10, batch=4, t0=T0 + 7000)  # same length as the original, other entries
    ra = Replica.open(tmp_path / "a.db", a, trust(b, own=a), take_lock=True)
    rb = Replica.open(tmp_path / "b.db", b, trust(a, own=b), take_lock=True)
    replicate(ra, rb, a.feed)
    other_head = feed_raws(tmp_path / "backup.db", a.feed)[-1]
    result = rb.record_peer_head("gw-x", other_head, now=T0)
    assert result.accepted
    assert result.fork
    assert not result.ahead
    assert rb.head(a.feed).forked_at == Checkpoint.from_raw(other_head).seq  # type: ignore[union-attr]
    assert _problems(tmp_path / "b.db") == [
        (a.feed, Checkpoint.from_raw(other_head).seq, "forked feed")
    ]
    ra.close()
    rb.close()


def test_a_database_restored_from_an_old_backup_is_detected_and_restored(nodes) -> None:  # type: ignore[no-untyped-def]
    tmp_path, a, b = nodes
    ra = Replica.open(tmp_path / "a.db", a, trust(b, own=a), take_lock=True)
    rb = Replica.open(tmp_path / "b.db", b, trust(a, own=b), take_lock=True)
    replicate(ra, rb, a.feed)
    ra.close()
    # Gateway A's SD card is replaced by the old backup. The file alone cannot tell ...
    shutil.move(tmp_path / "backup.db", tmp_path / "a.db")
    for suffix in ("-wal", "-shm"):
        Path(f"{tmp_path}/a.db{suffix}").unlink(missing_ok=True)
    old_end = len(feed_raws(tmp_path / "a.db", a.feed))
    ra = Replica.open(tmp_path / "a.db", a, trust(b, own=a), take_lock=True)
    assert ra.own_check().status is OwnStatus.OK
    # ... but B's announcement of A's feed can: it is signed by A's own key, beyond A's end.
    peer_head = rb.head(a.feed)
    assert peer_head is not None
    assert peer_head.checkpoint is not None
    seen = ra.record_peer_head(b.feed, peer_head.checkpoint.raw, now=T0)
    assert seen.accepted
    assert seen.own_behind
    assert seen.ahead
    assert seen.need_from == old_end
    check = ra.own_check()
    assert (check.status, check.end, check.highest_end) == (
        OwnStatus.BEHIND,
        old_end,
        peer_head.end,
    )
    with pytest.raises(RollbackRefused, match="restore it from peers"):
        ra.require_current()
    ra.close()
    with pytest.raises(RollbackRefused, match="a peer announced"):
        Ledger.open(tmp_path / "a.db", a)  # the writer refuses too, on every start
    # Restore from B, then A may append again: the continuation is no fork for B.
    ra = Replica.open(tmp_path / "a.db", a, trust(b, own=a), take_lock=True)
    result = ra.accept(a.feed, old_end, rb.read_range(a.feed, old_end), now=T0)
    assert result.outcome is Outcome.STORED
    assert result.own_feed
    assert result.alarm
    replicate(rb, ra, a.feed)
    assert ra.own_check().status is OwnStatus.OK
    records = ra.pending_records()
    assert [(r.type, r.body["held"], r.body["peers"]) for r in records] == [
        ("ledger.rollback", old_end, peer_head.end)
    ]
    ra.close()
    # The node starts: its writer (and commit process) appends the rollback record.
    asyncio.run(_record(tmp_path / "a.db", a, trust(b, own=a), peer_head.end))
    ra = Replica.open(tmp_path / "a.db", a, trust(b, own=a), take_lock=True)
    assert ra.pending_records() == []
    tail = ra.read_range(a.feed, peer_head.end)
    assert [orjson.loads(x)["type"] for x in tail] == ["ledger.rollback", "checkpoint"]
    assert orjson.loads(tail[0])["body"] == records[0].body
    assert replicate(ra, rb, a.feed) == 2
    assert rb.head(a.feed).forked_at is None  # type: ignore[union-attr]
    assert_verifies(tmp_path / "a.db", {a.feed: "a", b.feed: "b"})
    assert_verifies(tmp_path / "b.db", {a.feed: "a", b.feed: "b"})
    ra.close()
    rb.close()


def test_a_lost_database_is_recovered_from_peers_before_appending(nodes) -> None:  # type: ignore[no-untyped-def]
    tmp_path, a, b = nodes
    ra = Replica.open(tmp_path / "a.db", a, trust(b, own=a), take_lock=True)
    rb = Replica.open(tmp_path / "b.db", b, trust(a, own=b), take_lock=True)
    replicate(ra, rb, a.feed)
    replicate(rb, ra, b.feed)
    ra.close()
    original = feed_ids(tmp_path / "a.db", a.feed)
    lost = tmp_path / "new" / "a.db"  # a new SD card, the same key
    ra = Replica.open(lost, a, trust(b, own=a), take_lock=True)
    head = rb.head(a.feed)
    assert head is not None
    assert head.checkpoint is not None
    assert ra.record_peer_head(b.feed, head.checkpoint.raw, now=T0).own_behind
    assert ra.own_check().status is OwnStatus.BEHIND
    replicate(rb, ra, a.feed)
    replicate(rb, ra, b.feed)
    assert ra.own_check().status is OwnStatus.OK
    ra.close()
    assert feed_ids(lost, a.feed) == original
    with Ledger.open(lost, a) as ledger:
        grow(ledger, 3, t0=T0 + 30_000)
    assert_verifies(lost, {a.feed: "a", b.feed: "b"})
    rb.close()


def test_a_witness_cosignature_alone_is_rollback_evidence(nodes) -> None:  # type: ignore[no-untyped-def]
    tmp_path, a, b = nodes
    ra = Replica.open(tmp_path / "a.db", a, trust(b, own=a), take_lock=True)
    rb = Replica.open(tmp_path / "b.db", b, trust(a, own=b), take_lock=True)
    replicate(ra, rb, a.feed)
    head = rb.head(a.feed)
    assert head is not None
    assert head.checkpoint is not None
    cos = rb.cosign(head.checkpoint.raw, now=T0)
    assert cos is not None
    ra.close()
    shutil.move(tmp_path / "backup.db", tmp_path / "a.db")
    Path(f"{tmp_path}/a.db-wal").unlink(missing_ok=True)
    Path(f"{tmp_path}/a.db-shm").unlink(missing_ok=True)
    ra = Replica.open(tmp_path / "a.db", a, trust(b, own=a), take_lock=True)
    assert ra.add_cosignature(cos, now=T0) == "stored"
    check = ra.own_check()
    assert check.status is OwnStatus.BEHIND
    assert check.highest_end == head.end
    assert "witness" in check.evidence
    ra.close()
    rb.close()


async def _record(path: Path, key: NodeKey, trusted: TrustList, end: int) -> None:
    writer = LedgerWriter.open(path, key)
    assert writer.size == end
    replica = Replica.open(path, key, trusted)  # beside the writer, which holds the lock
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(writer.run())
        assert await record_pending(replica, writer, now=T0 + 20_000) == 1
        assert await record_pending(replica, writer, now=T0 + 20_001) == 0
        task.cancel()
    replica.close()


def _retimed(raw: bytes) -> bytes:
    """The same checkpoint entry with another ts: its signed fields are untouched."""
    data = orjson.loads(raw)
    data["ts"] = "2030-01-01T00:00:00.000000Z"
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def test_a_checkpoint_differing_only_in_its_unsigned_ts_is_no_fork(nodes) -> None:  # type: ignore[no-untyped-def]
    """A checkpoint entry's ts is covered only by the next checkpoint's root: a copy with another
    ts proves nothing about the key, so it must not be recorded as a fork (anyone could make it).
    """
    tmp_path, a, b = nodes
    ra = Replica.open(tmp_path / "a.db", a, trust(b, own=a), take_lock=True)
    rb = Replica.open(tmp_path / "b.db", b, trust(a, own=b), take_lock=True)
    raws = feed_raws(tmp_path / "a.db", a.feed)
    tip = len(raws) - 1
    # B holds all but A's last batch; its copy of the checkpoint before it is fine
    first = ra.read_range(a.feed, 0, max_entries=tip - 4)
    assert rb.accept(a.feed, 0, first, now=T0).outcome is Outcome.STORED
    held_tip = len(first) - 1
    forged = rb.accept(a.feed, held_tip, [_retimed(first[-1])], now=T0)
    assert (forged.outcome, forged.reason, forged.alarm) == (  # altered bytes: tampering
        Outcome.REJECTED,
        Reason.BAD_CHECKPOINT,
        True,
    )
    announced = rb.record_peer_head("mallory", _retimed(first[-1]), now=T0)
    assert announced.accepted
    assert not announced.fork
    # An altered tip that got stored (it cannot be told from the real one) blocks the feed
    # here with an alarm, but is not called a fork either.
    rc_path = tmp_path / "c.db"
    c = NodeKey.generate()
    with Ledger.open(rc_path, c) as ledger:
        grow(ledger, 1, t0=T0 + 70_000)
    rc = Replica.open(rc_path, c, trust(a, own=c), take_lock=True)
    assert rc.accept(a.feed, 0, [*first[:-1], _retimed(first[-1])], now=T0).stored == len(first)
    rest = raws[len(first) :]
    broken = rc.accept(a.feed, len(first), rest, now=T0)
    assert (broken.outcome, broken.reason) == (Outcome.REJECTED, Reason.BROKEN_CHAIN)
    stuck = rc.accept(a.feed, held_tip, raws[held_tip:], now=T0)
    assert (stuck.outcome, stuck.reason, stuck.alarm) == (
        Outcome.REJECTED,
        Reason.TIP_MISMATCH,
        True,
    )
    for replica in (rb, rc):
        assert replica.head(a.feed).forked_at is None  # type: ignore[union-attr]
        assert replica.pending_records() == []
    for replica in (ra, rb, rc):
        replica.close()


def test_a_longer_second_history_offered_from_our_end_leads_back_to_the_fork(nodes) -> None:  # type: ignore[no-untyped-def]
    """A peer holding another, longer history answers from our end: its first entry does not
    link to ours. need_from leads back, batch by batch, to a range that overlaps the fork."""
    tmp_path, a, b = nodes
    with Ledger.open(tmp_path / "backup.db", a) as ledger:
        grow(ledger, 30, batch=4, t0=T0 + 9000)  # longer than the original
    rb = Replica.open(tmp_path / "b.db", b, trust(a, own=b), take_lock=True)
    original = feed_raws(tmp_path / "a.db", a.feed)
    assert rb.accept(a.feed, 0, original, now=T0).outcome is Outcome.STORED
    other = feed_raws(tmp_path / "backup.db", a.feed)
    start = len(original)
    asked = []
    result = rb.accept(a.feed, start, other[start:], now=T0, source="gw-x")
    while result.outcome is Outcome.REJECTED:
        assert (result.reason, result.alarm) == (Reason.BROKEN_CHAIN, True)
        assert result.need_from is not None
        assert result.need_from < start
        start = result.need_from
        asked.append(start)
        result = rb.accept(a.feed, start, other[start:], now=T0, source="gw-x")
    assert result.outcome is Outcome.FORK, result
    assert asked  # it took at least one step back
    fork_at = rb.head(a.feed).forked_at  # type: ignore[union-attr]
    assert fork_at is not None
    assert fork_at >= asked[-1]
    assert feed_raws(tmp_path / "b.db", a.feed) == original
    rb.close()


def test_a_peer_announcing_less_than_before_does_not_erase_the_evidence(nodes) -> None:  # type: ignore[no-untyped-def]
    tmp_path, a, b = nodes
    raws = feed_raws(tmp_path / "a.db", a.feed)
    checkpoints = [r for r in raws if orjson.loads(r)["type"] == "checkpoint"]
    shutil.move(tmp_path / "backup.db", tmp_path / "old.db")
    old = Replica.open(tmp_path / "old.db", a, trust(b, own=a), take_lock=True)
    end = old.end(a.feed)
    assert old.record_peer_head(b.feed, checkpoints[-1], now=T0).own_behind
    # the peer's own file went back (its backup restored): it now announces less
    again = old.record_peer_head(b.feed, checkpoints[0], now=T0 + 1)
    assert again.accepted
    assert not again.ahead
    check = old.own_check()
    assert (check.status, check.end, check.highest_end) == (
        OwnStatus.BEHIND,
        end,
        Checkpoint.from_raw(checkpoints[-1]).end,
    )
    (mine,) = [s for s in old.status() if s.feed == a.feed]
    assert [p.end for p in mine.peers] == [Checkpoint.from_raw(checkpoints[0]).end]  # as announced
    old.close()


def test_entries_the_writer_holds_beyond_the_database_are_no_rollback(nodes) -> None:  # type: ignore[no-untyped-def]
    """With the commit journal, entries are durable in <db>.eqj before they are in the database;
    a peer that got them announces them. Told the writer's size, the replica does not take that
    for a rollback (here the database is the backup, the writer's size the real feed's)."""
    tmp_path, a, b = nodes
    real = feed_raws(tmp_path / "a.db", a.feed)
    shutil.move(tmp_path / "backup.db", tmp_path / "lagging.db")
    replica = Replica.open(tmp_path / "lagging.db", a, trust(b, own=a), take_lock=True)
    assert replica.end(a.feed) < len(real)
    replica.follow_writer(lambda: len(real))
    seen = replica.record_peer_head(b.feed, real[-1], now=T0)
    assert seen.accepted
    assert not seen.own_behind
    assert not seen.ahead
    assert replica.own_check().status is OwnStatus.OK
    assert replica.pending_records() == []
    replica.follow_writer(None)  # the database alone says "behind"
    assert replica.own_check().status is OwnStatus.BEHIND
    replica.close()
