"""A full disk delays commits; it loses and alters nothing.

SQLite's own "database or disk is full" path (SQLITE_FULL) is reached for real by capping the
file with ``PRAGMA max_page_count``, which is how SQLite reports a full disk; then the cap is
lifted, as when an operator frees space.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from edge.ledger.keys import NodeKey
from edge.ledger.store import connect
from edge.ledger.verify import verify_db
from edge.ledger.writer import LedgerWriter

N = 400


async def test_full_disk_stalls_commits_then_everything_lands(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ledger.db"
    writer = LedgerWriter.open(path, NodeKey.generate(), flush_interval=0.01, batch_max=25)
    conn = writer.ledger.conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 3}")
    caplog.set_level(logging.ERROR)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger")
        for i in range(N):
            await writer.append("alarm", {"rule": "r", "note": "x" * 300, "i": i}, ts=1.8e9 + i)
        async with asyncio.timeout(10):
            while not any("full" in r.getMessage() for r in caplog.records):
                await asyncio.sleep(0.02)
        stalled = writer.committed
        assert stalled < N, "the cap never bit"
        await asyncio.sleep(0.3)
        assert writer.committed == stalled, "commits went on while the disk was full"
        conn.execute("PRAGMA max_page_count = 1000000")  # space freed
        async with asyncio.timeout(20):
            while writer.committed < N:
                await asyncio.sleep(0.02)
        await writer.aclose()
    ro = connect(path, readonly=True)
    try:
        report = verify_db(ro)
        assert report.ok, report.problems
        bodies = [
            r[0] for r in ro.execute("SELECT raw FROM entries WHERE type = 'alarm' ORDER BY seq")
        ]
    finally:
        ro.close()
    assert len(bodies) == N
    assert all(f'"i":{i},'.encode() in raw for i, raw in enumerate(bodies))
