"""Minute summaries are bounded: their retention and the disk budget delete them through the
async writer's commit process (raw blocks first, then the oldest minutes), hour summaries and
ledger entries stay, and ``edge ledger verify`` still passes on the real file."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge.ledger.keys import KEY_FILE, NodeKey, create_key_file, load_key
from edge.ledger.readings_store import plan_budget_prune
from edge.ledger.store import Ledger, connect
from edge.ledger.summary_retention import (
    MINUTE_ROW_BYTES,
    minute_cut_for,
    minute_rows,
    summary_points,
)
from edge.ledger.writer import LedgerWriter
from edge.readings import Reading

T0 = 1_795_000_000.0 - 1_795_000_000.0 % 3600  # on an hour
HOURS = 4


def _readings(hour: int) -> list[Reading]:
    """One hour of two points, a reading every 20 s (three a minute)."""
    return [
        Reading(p, T0 + hour * 3600 + i * 20, 20.0 + k + (i % 7) * 0.1)
        for k, p in enumerate(("oven.temp", "oven.rh"))
        for i in range(180)
    ]


def _rows(db: Path) -> dict[int, int]:
    conn = sqlite3.connect(db)
    try:
        return dict(
            conn.execute(
                "SELECT seconds, count(*) FROM reading_summaries GROUP BY seconds"
            ).fetchall()
        )
    finally:
        conn.close()


def _hour_summaries(db: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT * FROM reading_summaries WHERE seconds = 3600 ORDER BY point, start"
        ).fetchall()
    finally:
        conn.close()


def _entries(db: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT seq, type FROM entries ORDER BY seq").fetchall()
    finally:
        conn.close()


def _verify(db: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EDGE_LEDGER_DB": str(db)}
    return subprocess.run(
        [sys.executable, "-m", "edge", "ledger", "verify", "--db", str(db)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _fill(db: Path) -> None:
    led = Ledger.open(db, _key(db))
    try:
        for h in range(HOURS):
            led.append_readings(_readings(h))
            led.commit(now=T0 + (h + 1) * 3600)
    finally:
        led.close()


def test_the_estimate_and_the_cut_follow_the_hour_rows(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    _fill(db)
    conn = connect(db, readonly=True)
    try:
        assert summary_points(conn) == ["oven.rh", "oven.temp"]
        # a reading every 20 s fills every minute: the estimate is the exact count
        assert minute_rows(conn) == _rows(db)[60] == 2 * 60 * HOURS
        assert minute_cut_for(conn, 0) is None
        cut = minute_cut_for(conn, 121)  # more than one hour of both points: two hours go
        assert cut is not None
        assert cut.before == int(T0) + 2 * 3600
        everything = minute_cut_for(conn, 10**9)
        assert everything is not None
        assert everything.before == int(T0) + HOURS * 3600
    finally:
        conn.close()


def test_the_estimate_counts_partial_first_and_last_hours_as_they_are(tmp_path: Path) -> None:
    """A retention cut inside an hour leaves its rest; the hour under way has its minutes so far.

    The estimate once took each such hour for min(60, count) rows: after the retention's cut at
    2.5 h, 30 rows a point too many, and 50 for an hour 10 minutes old read every 20 s (the
    budget then cut the hour under way, every check).
    """
    from edge.ledger.summary_retention import prune_minute_summaries

    db = tmp_path / "l.db"
    _fill(db)
    led = Ledger.open(db, _key(db))
    try:  # ten more minutes, the hour after the last full one (30 readings a point)
        led.append_readings([r for r in _readings(HOURS) if r.ts < T0 + HOURS * 3600 + 600])
        led.commit(now=T0 + HOURS * 3600 + 600)
    finally:
        led.close()
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        assert minute_rows(conn) == _rows(db)[60] == 2 * (60 * HOURS + 10)
        conn.execute("BEGIN")
        assert prune_minute_summaries(conn, int(T0 + 2.5 * 3600)) == 2 * 150
        conn.execute("COMMIT")
        assert minute_rows(conn) == _rows(db)[60] == 2 * (60 * HOURS + 10 - 150)
        cut = minute_cut_for(conn, 2 * 30)  # the half hour left of hour 2, both points
        assert cut is not None
        assert cut.before == int(T0) + 3 * 3600
        cut = minute_cut_for(conn, 2 * 31)  # one row more: hour 3 goes too
        assert cut is not None
        assert cut.before == int(T0) + 4 * 3600
    finally:
        conn.close()


@pytest.mark.parametrize("worker", ["thread", "process"])
async def test_retention_deletes_old_minutes_through_the_commit_worker(
    tmp_path: Path, worker: str
) -> None:
    db = tmp_path / "l.db"
    _fill(db)
    hours_before = _hour_summaries(db)
    entries_before = _entries(db)
    assert _rows(db) == {60: 2 * 60 * HOURS, 3600: 2 * HOURS}
    writer = LedgerWriter.open(db, _key(db), flush_interval=0.01, commit_worker=worker)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        # minutes of the first two hours and a half go (a cut inside an hour keeps its rest)
        deleted = await writer.prune_minute_summaries(T0 + 2.5 * 3600)
        assert deleted == 2 * 150
        assert await writer.prune_minute_summaries(T0 + 2.5 * 3600) == 0
        await writer.aclose()
    assert _rows(db) == {60: 2 * 60 * HOURS - 300, 3600: 2 * HOURS}
    conn = sqlite3.connect(db)
    (oldest,) = conn.execute(
        "SELECT min(start) FROM reading_summaries WHERE seconds = 60"
    ).fetchone()
    conn.close()
    assert oldest == int(T0 + 2.5 * 3600)
    assert _hour_summaries(db) == hours_before
    # no ledger entry says so (summary_retention's module doc: why): the chain is as it was,
    # apart from the writer's own start/close records if any
    assert _entries(db)[: len(entries_before)] == entries_before
    assert not [t for _, t in _entries(db) if t == "readings.prune"]
    done = _verify(db)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_the_budget_prunes_raw_blocks_first_then_the_oldest_minutes(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    _fill(db)
    hours_before = _hour_summaries(db)
    conn = sqlite3.connect(db)
    (raw,) = conn.execute("SELECT sum(bytes) FROM reading_blocks").fetchone()
    conn.close()
    minutes = 2 * 60 * HOURS * MINUTE_ROW_BYTES
    # a budget that every raw block and one hour of minutes (both points) more would meet
    budget = minutes - 2 * 60 * MINUTE_ROW_BYTES
    ro = connect(db, readonly=True)
    plan = plan_budget_prune(ro, max_bytes=budget, summary_bytes=minutes)
    ro.close()
    assert plan is not None
    assert plan.blocks == tuple(range(1, HOURS + 1))
    assert plan.summary_bytes == 2 * 60 * MINUTE_ROW_BYTES
    assert plan.body["summary_bytes"] == minutes
    assert plan.body["stored_bytes"] == raw
    writer = LedgerWriter.open(db, _key(db), flush_interval=0.01)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        done, cut = await writer.prune_to_budget(
            max_bytes=budget, min_free_bytes=None, free_bytes=None, summary_bytes=minutes
        )
        assert done is not None
        assert done.blocks == plan.blocks
        assert cut is not None
        assert cut.before == int(T0) + 3600
        # raw blocks gone: the next round has only minutes to take, and records nothing
        again, cut2 = await writer.prune_to_budget(
            max_bytes=budget - 60 * MINUTE_ROW_BYTES,
            min_free_bytes=None,
            free_bytes=None,
            summary_bytes=minutes - 2 * 60 * MINUTE_ROW_BYTES,
        )
        assert again is not None
        assert again.blocks == ()
        assert again.body == {}
        assert cut2 is not None
        assert cut2.before == int(T0) + 2 * 3600
        await writer.aclose()
    assert _rows(db) == {60: 2 * 60 * (HOURS - 2), 3600: 2 * HOURS}
    assert _hour_summaries(db) == hours_before
    prunes = [t for _, t in _entries(db) if t == "readings.prune"]
    assert prunes == ["readings.prune"]  # the raw blocks' one; the minutes' none
    done_verify = _verify(db)
    assert done_verify.returncode == 0, done_verify.stdout + done_verify.stderr


def _key(db: Path) -> NodeKey:
    """The node key beside the file (``edge ledger verify`` then checks trust with it)."""
    path = db.parent / KEY_FILE
    return load_key(path) if path.exists() else create_key_file(path)
