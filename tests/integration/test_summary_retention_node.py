"""A real node's retention task deletes minute summaries past ``minute_summary_retention``:
on a ledger holding two-day-old readings, the demo node runs a few seconds; the old minutes go
(logged, no ledger entry), their hour summaries stay as they were, and the ledger verifies."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
import time
from importlib import resources
from pathlib import Path

import pytest

from edge.config import load_config
from edge.firmware_sim import Simulator, load_scenario
from edge.ledger import connect, verify_db
from edge.ledger.keys import KEY_FILE, create_key_file
from edge.ledger.store import Ledger
from edge.readings import Reading
from edge.runtime import Node

pytestmark = pytest.mark.integration


def _summaries(db: Path, seconds: int, before: float) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT * FROM reading_summaries WHERE seconds = ? AND start < ? ORDER BY point, start",
            (seconds, int(before)),
        ).fetchall()
    finally:
        conn.close()


def test_the_retention_task_deletes_old_minute_summaries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("node.toml", "tunnel.yaml"):
        with resources.as_file(resources.files("edge.demo") / name) as src:
            shutil.copyfile(src, tmp_path / name)
    toml = tmp_path / "node.toml"
    text = toml.read_text()
    toml.write_text(
        text.replace(
            "readings_block = 200",
            'readings_block = 12\nreadings_retention = "10s"\nminute_summary_retention = "1d"',
        )
    )
    config = load_config(toml)
    (tmp_path / "data").mkdir()
    key = create_key_file(tmp_path / "data" / KEY_FILE)
    now = time.time()
    old = now - 2 * 86400
    old -= old % 3600  # two hours of readings, from an hour two days ago
    with Ledger.open(config.ledger_path, key) as led:
        for h in range(2):
            led.append_readings(
                [
                    Reading("oven.temp", old + h * 3600 + i * 60, 180.0 + (i % 7) / 10)
                    for i in range(60)
                ]
            )
        led.commit(now=now)
    db = config.ledger_path
    hours_before = _summaries(db, 3600, now - 86400)
    assert len(_summaries(db, 60, now - 86400)) == 120
    assert len(hours_before) == 2

    async def run() -> None:
        async with Simulator(load_scenario("demo"), tmp_path, seed=1):
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(4.0, stop.set)
            await Node(load_config(toml)).run(stop)

    caplog.set_level(logging.INFO)
    asyncio.run(run())
    assert _summaries(db, 60, now - 86400) == []  # the old minutes: gone
    assert _summaries(db, 3600, now - 86400) == hours_before  # their hours: as they were
    conn = sqlite3.connect(db)
    (recent,) = conn.execute(
        "SELECT count(*) FROM reading_summaries WHERE seconds = 60 AND start >= ?",
        (int(now) - 120,),
    ).fetchone()
    conn.close()
    assert recent > 0  # the node's own, recent minutes are kept
    logged = [r for r in caplog.records if r.getMessage() == "ledger.summaries_pruned"]
    assert logged
    assert logged[0].fields["rows"] == 120  # type: ignore[attr-defined]
    ro = connect(db, readonly=True)
    try:
        types = [t for (t,) in ro.execute("SELECT type FROM entries")]
        report = verify_db(ro)
        assert report.ok, report.problems
    finally:
        ro.close()
    # the raw readings went by retention (recorded); the minutes by nothing on the ledger
    assert "readings.prune" in types
    assert not [t for t in types if "summar" in t]
