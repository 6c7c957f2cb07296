"""The node's retention prune through the async writer: recorded first, then deleted, verified."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge.ledger.keys import NodeKey
from edge.ledger.readings_store import block_ranges, pruned_blocks
from edge.ledger.store import connect
from edge.ledger.verify import verify_db
from edge.ledger.writer import LedgerWriter
from edge.readings import Reading

T0 = 1_795_000_000.0
DAY = 86400.0


def test_block_ranges_round_trip() -> None:
    assert block_ranges([1, 2, 3, 7, 9, 10]) == [[1, 3], [7, 7], [9, 10]]
    assert pruned_blocks({"blocks": block_ranges([1, 2, 3, 7, 9, 10])}) == [1, 2, 3, 7, 9, 10]
    for bad in ({"blocks": [[3, 1]]}, {"blocks": [[1, "2"]]}, {"blocks": 5}, [], {}):
        assert pruned_blocks(bad) == []
    assert pruned_blocks({"blocks": [[0, 10**12]]}) == []  # bounded, not allocated


async def test_retention_prune_is_recorded_then_done(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    writer = LedgerWriter.open(path, NodeKey.generate(), flush_interval=0.01)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        for n in range(3):
            await writer.add_readings([Reading("t", T0 + n * 10 + i, float(i)) for i in range(5)])
        last = await writer.add_readings([Reading("t", T0 + 31 * DAY, 1.0)])
        await writer.durable(last.seq)
        now = T0 + 30 * DAY + 18  # blocks 1 and 2 ended 30 days ago, block 3 not quite
        assert await writer.prune_readings(now - 30 * DAY, retention=30 * DAY, now=now) == 10
        assert await writer.prune_readings(now - 30 * DAY, retention=30 * DAY, now=now) == 0
        await writer.aclose()
    conn = connect(path, readonly=True)
    try:
        (raw,) = conn.execute("SELECT raw FROM entries WHERE type = 'readings.prune'").fetchone()
        assert b'"blocks":[[1,2]]' in raw
        assert b'"reason":"retention"' in raw
        assert b'"retention":"2592000"' in raw
        pruned = conn.execute("SELECT block FROM reading_blocks WHERE pruned = 1").fetchall()
        assert pruned == [(1,), (2,)]
        report = verify_db(conn)
        assert report.ok, report.problems
        assert report.feeds[0].pruned == {"retention": 2}
    finally:
        conn.close()


async def test_an_operator_prune_before_year_1000_prunes_nothing(tmp_path: Path) -> None:
    """``--before 0999-01-01``: glibc's %Y wrote '999-01-01...', which sorts after '2026-...'
    as text, so every block was 'before' it and pruned, and verify then found the entry's
    time malformed."""
    import calendar

    from edge.ledger.entry import format_ts
    from edge.ledger.readings_codec import format_micros

    year_999 = float(calendar.timegm((999, 1, 1, 0, 0, 0)))
    assert format_ts(year_999) == format_micros(int(year_999) * 1_000_000)
    assert format_ts(year_999) == "0999-01-01T00:00:00.000000Z"
    path = tmp_path / "l.db"
    writer = LedgerWriter.open(path, NodeKey.generate(), flush_interval=0.01)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        for n in range(2):
            last = await writer.add_readings([Reading("t", T0 + n * 10 + i, 1.0) for i in range(5)])
        assert last is not None
        await writer.durable(last.seq)
        assert await writer.prune_readings(year_999, actor="unix:qa", comment="qa") == 0
        await writer.aclose()
    conn = connect(path, readonly=True)
    try:
        assert conn.execute("SELECT count(*) FROM reading_blocks WHERE pruned = 1").fetchone() == (
            0,
        )
        report = verify_db(conn)
        assert report.ok, report.problems
    finally:
        conn.close()
