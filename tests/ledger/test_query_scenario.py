"""The shared two-gateway ledger (``tests/helpers/ledger_scenario.py``) is what it claims to be."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ledger_scenario import LOT, build

from edge.ledger.entry import parse_entry
from edge.ledger.verify import verify_db


def test_scenario_has_two_signed_feeds(tmp_path: Path) -> None:
    scenario = build(tmp_path / "ledger.db")
    conn = sqlite3.connect(scenario.db)
    feeds = dict(conn.execute("SELECT feed, count(*) FROM entries GROUP BY feed").fetchall())
    assert set(feeds) == {scenario.filler, scenario.packer}
    checkpoints = conn.execute("SELECT count(*) FROM entries WHERE type = 'checkpoint'").fetchone()
    assert checkpoints[0] == 5
    for raw, entry_id in conn.execute("SELECT raw, id FROM entries"):
        assert parse_entry(raw).id == entry_id
    lots = conn.execute("SELECT count(*) FROM entry_lots WHERE lot = ?", (LOT,)).fetchone()
    assert lots[0] == 6
    report = verify_db(conn)
    assert report.ok, report.problems
    assert report.entries == sum(feeds.values())
