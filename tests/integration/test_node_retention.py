"""Raw readings past their retention are pruned; their digests stay and the ledger verifies."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from importlib import resources
from pathlib import Path

import orjson
import pytest
from stored_readings import stored

from edge.config import load_config
from edge.firmware_sim import Simulator, load_scenario
from edge.ledger import connect, verify_db
from edge.runtime import Node

pytestmark = pytest.mark.integration


async def _run(tmp_path: Path, seconds: float) -> None:
    for name in ("node.toml", "tunnel.yaml"):
        with resources.as_file(resources.files("edge.demo") / name) as src:
            shutil.copyfile(src, tmp_path / name)
    toml = tmp_path / "node.toml"
    toml.write_text(
        toml.read_text().replace(
            "readings_block = 200", 'readings_block = 12\nreadings_retention = "2s"'
        )
    )
    async with Simulator(load_scenario("demo"), tmp_path, seed=1):
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        await Node(load_config(toml)).run(stop)


def test_old_readings_are_pruned_digests_stay_and_verify(tmp_path: Path) -> None:
    asyncio.run(_run(tmp_path, seconds=7.0))
    db = tmp_path / "data" / "ledger.db"
    conn = sqlite3.connect(db)
    digests = conn.execute(
        "SELECT count(*) FROM entries WHERE type = 'readings.digest'"
    ).fetchone()[0]
    pruned = conn.execute("SELECT count(*) FROM reading_blocks WHERE pruned = 1").fetchone()[0]
    kept = conn.execute("SELECT count(*) FROM reading_blocks WHERE pruned = 0").fetchone()[0]
    oldest_kept = min(r.ts for r in stored(conn))
    prunes = [
        orjson.loads(raw)["body"]
        for (raw,) in conn.execute("SELECT raw FROM entries WHERE type = 'readings.prune'")
    ]
    conn.close()
    # each prune was recorded on the ledger, with the retention that made it due
    assert prunes
    assert {(p["reason"], p["retention"]) for p in prunes} == {("retention", "2")}
    assert sum(p["count"] for p in prunes) >= pruned
    assert digests == pruned + kept
    assert pruned >= 1, "retention of 2 s over a 7 s run pruned nothing"
    assert kept >= 1, "the newest readings must still be there"
    assert oldest_kept is not None
    ro = connect(db, readonly=True)
    try:
        assert verify_db(ro).ok
    finally:
        ro.close()


def test_failing_retention_is_logged_and_the_node_keeps_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Pruning fails for real (a trigger planted behind the node's back refuses the DELETE):
    the node logs it each round, keeps recording, and nothing is lost."""
    asyncio.run(_run(tmp_path, seconds=1.5))  # creates the database
    db = tmp_path / "data" / "ledger.db"
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TRIGGER planted BEFORE DELETE ON reading_data "
        "BEGIN SELECT RAISE(ABORT, 'planted: no deletes'); END"
    )
    conn.commit()
    before = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
    conn.close()
    caplog.set_level("ERROR")
    asyncio.run(_run(tmp_path, seconds=6.0))
    assert any("readings_prune_failed" in r.getMessage() for r in caplog.records)
    conn = sqlite3.connect(db)
    after = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
    pruned = conn.execute("SELECT count(*) FROM reading_blocks WHERE pruned = 1").fetchone()[0]
    conn.close()
    assert pruned == 0
    assert after > before + 10, "the node stopped recording after the failed prune"
    ro = connect(db, readonly=True)
    try:
        assert verify_db(ro).ok
    finally:
        ro.close()
