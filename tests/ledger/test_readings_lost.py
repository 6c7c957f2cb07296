"""Readings lost with a database restored from peers: a ``lost`` prune, accepted only after a restore.

The restore is simulated on one file: blocks are written, then their raw readings and block rows
are removed, as a node whose feed came back from peers holds the digests without the blocks.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from edge.ledger.entry import format_ts
from edge.ledger.keys import NodeKey
from edge.ledger.readings_lost import LOST_COMMENT, plan_lost, record_lost
from edge.ledger.store import connect
from edge.ledger.verify import verify_db
from edge.ledger.verify_report import Kind, Report
from edge.ledger.writer import LedgerWriter
from edge.readings import Reading

T0 = 1_795_000_000.0


def _write_blocks(path: Path, key: NodeKey, blocks: int) -> None:
    async def go() -> None:
        writer = LedgerWriter.open(path, key, flush_interval=0.01)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(writer.run(), name="ledger-writer")
            for n in range(blocks):
                entry = await writer.add_readings(
                    [Reading("t", T0 + n * 10 + i, float(i)) for i in range(5)]
                )
            await writer.durable(entry.seq)
            await writer.aclose()

    asyncio.run(go())


def _lose_readings(path: Path) -> None:
    """What a restore from peers leaves: digests on the feed, no blocks behind them."""
    conn = sqlite3.connect(path)
    with conn:
        for table in ("reading_data", "reading_stage", "readings", "reading_blocks"):
            conn.execute(f"DELETE FROM {table}")
    conn.close()


def _append(path: Path, key: NodeKey, type_: str, body: dict[str, object]) -> tuple[int, str]:
    """Append one entry through the writer; (seq, id)."""

    async def go() -> tuple[int, str]:
        writer = LedgerWriter.open(path, key, flush_interval=0.01)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(writer.run(), name="ledger-writer")
            entry = await writer.append(type_, body, ts=T0 + 3600)
            await writer.durable(entry.seq)
            await writer.aclose()
        return entry.seq, entry.id

    return asyncio.run(go())


def _verify(path: Path) -> Report:
    conn = connect(path, readonly=True)
    try:
        return verify_db(conn)
    finally:
        conn.close()


def _missing(report: Report) -> list[str]:
    return [p.detail for p in report.problems if p.kind is Kind.MISSING_READINGS]


def test_lost_prune_without_a_restore_record_is_reported(tmp_path: Path) -> None:
    path, key = tmp_path / "l.db", NodeKey.generate()
    _write_blocks(path, key, 3)
    _lose_readings(path)
    assert len(_missing(_verify(path))) == 3  # readings gone, nothing says why
    body = {"blocks": [[1, 3]], "count": 3, "readings": 15, "before": format_ts(T0 + 3000),
            "reason": "lost", "comment": LOST_COMMENT}  # fmt: skip
    _append(path, key, "readings.prune", body)
    missing = _missing(_verify(path))
    assert len(missing) == 3
    assert all("names no ledger.rollback entry of this feed before it" in m for m in missing)
    # naming an entry that is not a rollback (or not before the prune) does not help either
    _seq, entry_id = _append(path, key, "config.change", {"text": "not a rollback"})
    _append(path, key, "readings.prune", {**body, "rollback": entry_id})
    assert len(_missing(_verify(path))) == 3


def test_lost_prune_after_a_restore_record_verifies(tmp_path: Path) -> None:
    path, key = tmp_path / "l.db", NodeKey.generate()
    _write_blocks(path, key, 3)
    _lose_readings(path)

    async def restore_recorded() -> None:
        writer = LedgerWriter.open(path, key, flush_interval=0.01)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(writer.run(), name="ledger-writer")
            body = {"held": 0, "peers": 6, "evidence": "peer gw2 announced 6"}
            rollback = await writer.append("ledger.rollback", body, ts=T0 + 3600)
            plan = await record_lost(writer, rollback, now=T0 + 3600)
            assert plan is not None
            assert plan.blocks == (1, 2, 3)
            assert plan.body["reason"] == "lost"
            assert plan.body["rollback"] == rollback.id
            assert plan.body["readings"] == 15
            # a second call finds nothing more to record
            assert await record_lost(writer, rollback, now=T0 + 3601) is None
            # new blocks continue after the restored digests, not at 1
            entry = await writer.add_readings([Reading("t", T0 + 4000, 1.0)])
            assert entry.body["block"] == 4
            await writer.durable(entry.seq)
            await writer.aclose()

    asyncio.run(restore_recorded())
    report = _verify(path)
    assert report.ok, report.problems
    assert report.feeds[0].pruned == {"lost": 3}


def test_lost_prune_covers_only_what_the_restore_brought_back(tmp_path: Path) -> None:
    path, key = tmp_path / "l.db", NodeKey.generate()
    _write_blocks(path, key, 3)
    conn = sqlite3.connect(path)
    (end,) = conn.execute("SELECT count(*) FROM entries").fetchone()
    conn.close()
    _lose_readings(path)
    # the node held every entry when the rollback was recorded: nothing came from peers
    seq, rollback_id = _append(path, key, "ledger.rollback", {"held": end, "peers": end + 1})
    conn = connect(path, readonly=True)
    try:
        assert plan_lost(conn, key.feed, seq, rollback_id, end) is None
    finally:
        conn.close()
    body = {"blocks": [[1, 3]], "count": 3, "readings": 15, "before": format_ts(T0 + 3000),
            "reason": "lost", "rollback": rollback_id, "comment": LOST_COMMENT}  # fmt: skip
    _append(path, key, "readings.prune", body)
    missing = _missing(_verify(path))
    assert len(missing) == 3
    assert all("is not among the entries restored from peers" in m for m in missing)
