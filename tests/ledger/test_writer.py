"""The async writer: group commit, flush interval, back-pressure, drain on cancel/close."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from stored_readings import stored

from edge.errors import LedgerClosed, NotCanonical
from edge.ledger.journal import journal_path, read_journal
from edge.ledger.keys import NodeKey
from edge.ledger.store import connect
from edge.ledger.verify import verify_db
from edge.ledger.writer import LedgerWriter
from edge.readings import Reading

from .conftest import T0, assert_verifies


def checkpoints(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [s for (s,) in conn.execute("SELECT size FROM checkpoints ORDER BY size")]
    finally:
        conn.close()


async def test_burst_is_grouped_into_few_batches(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    writer = LedgerWriter.open(path, NodeKey.generate(), flush_interval=0.05, batch_max=100)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        for i in range(250):
            await writer.append("alarm", {"n": i}, ts=T0 + i)
        await writer.aclose()
    assert writer.committed == 250
    sizes = checkpoints(path)
    # 250 entries in batches of at most 100 (+1 checkpoint each): 3 batches, not 250
    assert len(sizes) == 3
    assert all(b - a <= 101 for a, b in zip([0, *sizes], sizes, strict=False))
    assert_verifies(path)


async def test_single_entry_waits_for_flush_interval_then_is_durable(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    writer = LedgerWriter.open(path, NodeKey.generate(), flush_interval=0.2)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        loop = asyncio.get_running_loop()
        start = loop.time()
        entry = await writer.append("node.start", {"node_id": "n1"}, ts=T0)
        await asyncio.sleep(0.05)
        assert writer.committed == 0  # still inside its flush interval
        await writer.durable(entry.seq)
        waited = loop.time() - start
        assert 0.15 <= waited < 2.0
        assert writer.committed == 1
        # durable means on disk: a small batch in the commit journal (moved into the
        # database in bulk), the database itself once it is moved
        assert len(read_journal(journal_path(path)).frames) == 1
        assert checkpoints(path) == []
        # journaled unsigned: it moves only with the checkpoint that signs it
        assert writer.ledger.move_journal() == 0
        assert checkpoints(path) == []
        await writer.sync()  # signs (one checkpoint after it) and moves
        assert checkpoints(path) == [1]
        assert read_journal(journal_path(path)).frames == ()
        await writer.aclose()


async def test_a_batch_due_soon_is_cut_in_a_wake_up_the_writer_has_anyway(tmp_path: Path) -> None:
    """Something added in the last eighth of the flush interval cuts the batch at once (the
    next poll's readings arrive about one interval after the first: their wake-up does the
    flush, not a timer of its own a few ms later); earlier, it waits for the interval."""
    path = tmp_path / "l.db"
    writer = LedgerWriter.open(path, NodeKey.generate(), flush_interval=2.0)
    loop = asyncio.get_running_loop()

    async def settle() -> None:
        for _ in range(5):
            await asyncio.sleep(0)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        # halfway through the interval: the batch keeps waiting
        start = loop.time()
        await writer.append("alarm", {"n": 1}, ts=T0)
        await asyncio.sleep(1.0)
        await writer.append("alarm", {"n": 2}, ts=T0 + 1)
        await settle()
        assert writer.ledger.dirty, "cut long before its interval"
        assert loop.time() - start < 1.75  # (else the loop stalled: the test proves nothing)
        await writer.sync()
        assert writer.committed == 2
        # in the last eighth (1.75 s of 2): cut now, with the entry just added
        start = loop.time()
        await writer.append("alarm", {"n": 3}, ts=T0 + 2)
        await asyncio.sleep(1.8)
        await writer.append("alarm", {"n": 4}, ts=T0 + 3)
        await settle()
        assert loop.time() - start < 2.0  # the interval has not run out: the timer did not cut
        assert not writer.ledger.dirty
        await writer.aclose()
    assert writer.committed == 4
    assert_verifies(path)


async def test_cancel_drains_pending_entries(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    writer = LedgerWriter.open(path, NodeKey.generate(), flush_interval=10.0, batch_max=10_000)
    task = asyncio.create_task(writer.run(), name="ledger-writer")
    for i in range(30):
        await writer.append("alarm", {"n": i}, ts=T0 + i)
    await asyncio.sleep(0.01)
    assert writer.committed == 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert writer.committed == 30
    conn = connect(path, readonly=True)
    assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == 31
    assert verify_db(conn).ok
    with pytest.raises(LedgerClosed):
        await writer.append("alarm", {}, ts=T0)


async def test_bounded_queue_blocks_producers(tmp_path: Path) -> None:
    writer = LedgerWriter.open(
        tmp_path / "l.db", NodeKey.generate(), queue_size=5, flush_interval=0.01
    )
    for i in range(5):
        await writer.append("a", {"n": i}, ts=T0)
    blocked = asyncio.create_task(writer.append("a", {"n": 5}, ts=T0))
    await asyncio.sleep(0.05)
    assert not blocked.done()  # no writer running: no space
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        await blocked
        await writer.aclose()
    assert writer.committed == 6


async def test_bad_content_raises_at_append(tmp_path: Path) -> None:
    writer = LedgerWriter.open(tmp_path / "l.db", NodeKey.generate())
    with pytest.raises(NotCanonical, match=r"body\.value: float"):
        await writer.append("alarm", {"value": 1.5}, ts=T0)
    await writer.append("alarm", {"value": "1.5"}, ts=T0)
    await writer.aclose()  # closing without run() still commits
    assert writer.committed == 1


async def test_readings_go_through_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    writer = LedgerWriter.open(path, NodeKey.generate(), flush_interval=0.01)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        entry = await writer.add_readings([Reading("t", T0 + i, float(i)) for i in range(100)])
        await writer.durable(entry.seq)
        await writer.aclose()
    conn = connect(path, readonly=True)
    assert [r.value for r in stored(conn)] == [float(i) for i in range(100)]
    assert verify_db(conn).ok


async def test_prune_readings_runs_between_commits(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    writer = LedgerWriter.open(path, NodeKey.generate(), flush_interval=0.01)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        old = await writer.add_readings([Reading("t", T0 + i, float(i)) for i in range(10)])
        new = await writer.add_readings([Reading("t", T0 + 1000 + i, float(i)) for i in range(4)])
        await writer.durable(new.seq)
        assert old.seq < new.seq
        assert await writer.prune_readings(before=T0 + 500) == 10
        await writer.aclose()
    conn = connect(path, readonly=True)
    assert [r.value for r in stored(conn)] == [0.0, 1.0, 2.0, 3.0]
    assert verify_db(conn).ok
    conn.close()


async def test_failed_commit_is_retried_and_nothing_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A commit that keeps failing (a conflicting row planted behind the writer's back) is
    logged and retried; producers keep going; once the obstacle is gone everything commits.

    Batches written to SQLite (journal_max=0: as bulk batches are); the journal's own failure
    path is in test_journal.py."""
    path = tmp_path / "l.db"
    key = NodeKey.generate()
    writer = LedgerWriter.open(path, key, flush_interval=0.01, retry_max=0.05, journal_max=0)
    other = sqlite3.connect(path)
    other.execute(
        "INSERT INTO checkpoints VALUES (?, 5, 'x', 'y', 'z')", (key.feed,)
    )  # first batch: 5 entries
    other.commit()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        entries = [await writer.append("alarm", {"n": i}, ts=T0 + i) for i in range(5)]
        async with asyncio.timeout(20.0):  # the commit process may be slow to start under load
            while not any("UNIQUE constraint failed" in r.getMessage() for r in caplog.records):
                await asyncio.sleep(0.05)
        assert writer.committed == 0
        more = await writer.append("alarm", {"n": 5}, ts=T0 + 5)  # producers are not blocked
        other.execute("DROP TRIGGER checkpoints_no_delete")
        other.execute("DELETE FROM checkpoints WHERE head = 'x'")
        other.commit()
        other.close()
        await writer.durable(more.seq)
        await writer.aclose()
    assert writer.committed == 6
    assert entries[0].seq == 0
    assert_verifies(path)


async def test_batches_queued_behind_a_failed_one_wait_for_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Several batches are handed to the commit process at once; when the first one fails, the
    ones behind it must not land (they would leave a gap in the feed): all are retried in order."""
    path = tmp_path / "l.db"
    key = NodeKey.generate()
    writer = LedgerWriter.open(
        path, key, flush_interval=10.0, batch_max=5, retry_max=0.05, journal_max=0
    )
    other = sqlite3.connect(path)
    other.execute("INSERT INTO checkpoints VALUES (?, 5, 'x', 'y', 'z')", (key.feed,))
    other.commit()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        for i in range(15):  # three batches of five, cut as they fill
            await writer.append("alarm", {"n": i}, ts=T0 + i)
        # until the first write has failed (the commit process may take a while to start on a
        # loaded machine: a fixed sleep made this flaky)
        async with asyncio.timeout(20.0):
            while not any("UNIQUE constraint failed" in r.getMessage() for r in caplog.records):
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # the batches behind it answered too
        assert writer.committed == 0
        assert other.execute("SELECT count(*) FROM entries").fetchone()[0] == 0
        other.execute("DROP TRIGGER checkpoints_no_delete")
        other.execute("DELETE FROM checkpoints WHERE head = 'x'")
        other.commit()
        other.close()
        await writer.durable(17)  # the third batch's checkpoint
        await writer.aclose()
    assert writer.committed == 15
    conn = connect(path, readonly=True)
    seqs = [s for (s,) in conn.execute("SELECT seq FROM entries ORDER BY seq")]
    assert seqs == list(range(18))  # 15 entries and 3 checkpoints, no gap
    assert verify_db(conn).ok
    conn.close()
