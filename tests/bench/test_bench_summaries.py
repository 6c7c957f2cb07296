"""Summaries: the bytes a minute-summary row takes on disk, and the long-term chart's time.

Row bytes: two hours of 40 points read every second (288,000 readings in 1000-reading blocks,
as the node stores them through the real Ledger) add 4,800 minute rows and 80 hour rows to
``reading_summaries``; SQLite's ``dbstat`` gives the table's pages, charged to the minute rows
(the hour rows are 1/60 of them). The limit is the figure the disk budget counts a minute row
at, :data:`edge.ledger.summary_retention.MINUTE_ROW_BYTES` (90): a row taking more would let the
budget undercount. Printed as limit / figure, so a ratio above 1 meets it (85 bytes: 1.06).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge.ledger.keys import NodeKey
from edge.ledger.store import Ledger
from edge.ledger.summary_retention import MINUTE_ROW_BYTES, minute_rows
from edge.readings import Reading

POINTS = 40
T0 = 1_795_000_000.0 - 1_795_000_000.0 % 3600
HOURS = 2


def _names() -> list[str]:
    return [f"line1.station{p:02d}.temperature" for p in range(POINTS)]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("bench-summaries") / "ledger.db"
    names = _names()
    with Ledger.open(db, NodeKey.generate()) as led:
        block: list[Reading] = []
        for second in range(HOURS * 3600):
            for p, name in enumerate(names):
                block.append(Reading(name, T0 + second, 20.0 + ((second * 31 + p) % 97) / 50))
            if len(block) >= 1000:
                led.append_readings(block)
                block = []
                if second % 600 == 0:
                    led.commit()
        if block:
            led.append_readings(block)
        led.commit()
    return db


def test_bench_minute_summary_row_bytes(filled: Path) -> None:
    conn = sqlite3.connect(filled)
    try:
        (pages,) = conn.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name = 'reading_summaries'"
        ).fetchone()
        counts = dict(
            conn.execute("SELECT seconds, count(*) FROM reading_summaries GROUP BY seconds")
        )
        estimate = minute_rows(conn)
    finally:
        conn.close()
    assert counts == {60: POINTS * HOURS * 60, 3600: POINTS * HOURS}
    assert estimate == counts[60]  # every minute read: the budget's estimate is exact
    per_row = pages / counts[60]
    print(
        f"\nminute-summary row on disk: {per_row:.1f} bytes ({counts[60]:,} minute rows,"
        f" {counts[3600]} hour rows, {pages / 1e6:.2f} MB; {POINTS} points: "
        f"{per_row * POINTS * 1440 / 1e6:.1f} MB a day) | limit {MINUTE_ROW_BYTES} (the budget's"
        f" figure) | ratio {MINUTE_ROW_BYTES / per_row:.2f}"
    )
    assert per_row <= MINUTE_ROW_BYTES * 1.5  # far above: the budget's figure must change
