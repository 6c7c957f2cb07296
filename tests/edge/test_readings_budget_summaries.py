"""The node's disk-budget check counts minute summaries: with every raw block gone and the
store still over, the oldest hour of minutes goes (no ledger entry), the ``storage:readings``
alarm says so, hour summaries stay, and the file verifies."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from edge.config import LedgerConfig
from edge.ledger.keys import KEY_FILE, create_key_file
from edge.ledger.store import Ledger, connect
from edge.ledger.summary_retention import MINUTE_ROW_BYTES
from edge.ledger.verify import verify_db
from edge.ledger.writer import LedgerWriter
from edge.readings import Reading
from edge.readings_budget import ReadingsBudget

T0 = 1_795_428_000.0  # on an hour
HOURS = 3


def _rows(db: Path) -> dict[int, int]:
    conn = sqlite3.connect(db)
    try:
        return dict(
            conn.execute("SELECT seconds, count(*) FROM reading_summaries GROUP BY seconds")
        )
    finally:
        conn.close()


async def test_over_budget_with_no_raw_blocks_left_takes_the_oldest_minutes(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    key = create_key_file(tmp_path / KEY_FILE)
    with Ledger.open(db, key) as led:
        for h in range(HOURS):
            led.append_readings(
                [
                    Reading("oven.temp", T0 + h * 3600 + i * 30, 180.0 + (i % 5) / 10)
                    for i in range(120)
                ]
            )
        led.commit(now=T0 + HOURS * 3600)
    minutes = HOURS * 60 * MINUTE_ROW_BYTES
    assert _rows(db) == {60: HOURS * 60, 3600: HOURS}
    # the budget: room for the minutes of all hours but the oldest, and no raw block at all
    budget = ReadingsBudget(LedgerConfig(readings_max_bytes=minutes - 30 * MINUTE_ROW_BYTES), db)
    writer = LedgerWriter.open(db, key, flush_interval=0.01)
    now = T0 + HOURS * 3600
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        change = await budget.check(writer, now)
        assert change is not None
        assert change.event == "activated"
        assert "blocks before" in change.message  # the raw blocks went first ...
        assert "minute summaries before 2026-11-23T11:00:00.000000Z" in change.message  # ... then
        # the next check reads the minutes again: 2 hours' worth, under 90 % of the budget
        after = await budget.check(writer, now + 2)
        assert after is not None
        assert after.event == "cleared"
        assert "minute summaries ~10800" in after.message
        await writer.aclose()
    assert _rows(db) == {60: (HOURS - 1) * 60, 3600: HOURS}
    conn = connect(db, readonly=True)
    try:
        types = [t for (t,) in conn.execute("SELECT type FROM entries ORDER BY seq")]
        assert types.count("readings.prune") == 1  # the raw blocks' (reason budget); minutes: none
        report = verify_db(conn)
        assert report.ok, report.problems
        assert report.feeds[0].pruned == {"budget": HOURS}
    finally:
        conn.close()
