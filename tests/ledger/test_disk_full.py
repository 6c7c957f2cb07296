"""A full disk delays commits; it loses and alters nothing.

The commit process's writes really fail: its file-size limit (the soft ``RLIMIT_FSIZE``, set
from outside with ``prlimit``) is lowered to the WAL's current size, so the kernel refuses to grow
the file, as on a full disk: SQLite reports "database or disk is full" for a write cut short and
"disk I/O error" for one refused outright (``EFBIG``). Then the limit is lifted, as when an
operator frees space. The in-process path (``Ledger.commit``) is
driven to the same error by ``PRAGMA max_page_count``, SQLite's own cap.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
from pathlib import Path

import pytest

from edge.errors import StorageError
from edge.ledger.keys import NodeKey
from edge.ledger.store import Ledger, connect
from edge.ledger.writer import LedgerWriter

from .conftest import assert_verifies, first_commit_pid

N = 400


def _entries_ok(path: Path, count: int) -> None:
    assert_verifies(path)
    ro = connect(path, readonly=True)
    try:
        bodies = [
            r[0] for r in ro.execute("SELECT raw FROM entries WHERE type = 'alarm' ORDER BY seq")
        ]
    finally:
        ro.close()
    assert len(bodies) == count
    assert all(f'"i":{i},'.encode() in raw for i, raw in enumerate(bodies))


async def test_full_disk_stalls_commits_then_everything_lands(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "ledger.db"
    writer = LedgerWriter.open(
        path, NodeKey.generate(), flush_interval=0.01, batch_max=25, commit_worker="process"
    )
    caplog.set_level(logging.ERROR)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger")
        pid = await first_commit_pid(writer, {"rule": "r", "note": "x" * 300, "i": 0})
        wal = os.stat(f"{path}-wal").st_size
        _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (wal, hard))  # the disk is full
        for i in range(1, N):
            await writer.append("alarm", {"rule": "r", "note": "x" * 300, "i": i}, ts=1.8e9 + i)
        async with asyncio.timeout(10):
            while not any(
                "full" in r.getMessage() or "I/O error" in r.getMessage() for r in caplog.records
            ):
                await asyncio.sleep(0.02)
        stalled = writer.committed
        assert stalled < N, "the limit never bit"
        await asyncio.sleep(0.3)
        assert writer.committed == stalled, "commits went on while the disk was full"
        assert writer.commit_pid == pid, "the commit process died instead of reporting"
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))  # space freed
        async with asyncio.timeout(20):
            while writer.committed < N:
                await asyncio.sleep(0.02)
        await writer.aclose()
    _entries_ok(path, N)


def test_full_disk_in_process_commit_keeps_the_batch(tmp_path: Path) -> None:
    """The synchronous path: a failed commit keeps its batch queued; the next call lands it."""
    path = tmp_path / "ledger.db"
    with Ledger.open(path, NodeKey.generate()) as ledger:
        ledger.append("alarm", {"rule": "r", "note": "x" * 300, "i": 0}, ts=1.8e9)
        ledger.commit()
        pages = ledger.conn.execute("PRAGMA page_count").fetchone()[0]
        ledger.conn.execute(f"PRAGMA max_page_count = {pages}")
        for i in range(1, 200):
            ledger.append("alarm", {"rule": "r", "note": "x" * 300, "i": i}, ts=1.8e9 + i)
        with pytest.raises(StorageError, match="full"):
            ledger.commit()
        assert ledger.size == 2
        ledger.conn.execute("PRAGMA max_page_count = 1000000")
        assert ledger.commit() == 200
    _entries_ok(path, 200)
