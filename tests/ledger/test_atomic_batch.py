"""One transaction per batch: entries, the open block's readings and the engine state land
together or not at all; readings of a block not yet full survive a kill and come back."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from stored_readings import stored

from edge.ledger import create_key_file
from edge.ledger.keys import NodeKey
from edge.ledger.store import Ledger
from edge.ledger.writer import LedgerWriter
from edge.readings import Reading

from .conftest import T0, assert_verifies

_CHILD = f"""
import sys
from edge.ledger import load_key
from edge.ledger.store import Ledger
from edge.readings import Reading
from pathlib import Path
led = Ledger.open(sys.argv[1], load_key(Path(sys.argv[2])))
state = [b"S1"]
led.track_state("rules", lambda: state[0])
for n in (1, 2):
    led.append("alarm", {{"n": n}}, ts={T0} + n)
    led.add_readings([Reading("t", {T0} + n, float(n)), Reading("u", {T0} + n, -1.0)])
    led.state_changed()
    led.commit()
    state[0] = b"S2"
print("survived")
"""


def _db(path: Path) -> tuple[int, int, bytes | None]:
    """(entries, readings, stored state) as a new process finds them."""
    conn = sqlite3.connect(path)
    try:
        entries = conn.execute("SELECT count(*) FROM entries").fetchone()[0]
        readings = len(stored(conn))
        row = conn.execute("SELECT state FROM engine_state").fetchone()
    finally:
        conn.close()
    return entries, readings, None if row is None else bytes(row[0])


@pytest.mark.parametrize(
    ("failpoint", "lands"),
    [
        ("commit.begin", False),
        ("commit.entries", False),
        ("commit.readings", False),
        ("commit.before_commit", False),
        ("commit.after_commit", True),
    ],
)
def test_a_kill_inside_the_transaction_leaves_all_of_the_batch_or_none(
    tmp_path: Path, failpoint: str, lands: bool
) -> None:
    db, key = tmp_path / "l.db", tmp_path / "node.key"
    create_key_file(key)
    env = {**os.environ, "EDGE_FAILPOINTS": f"{failpoint}:2"}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(db), str(key)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert child.returncode == -9, child.stderr  # killed at the failpoint, in the second batch
    # batch 1: entry + checkpoint, 2 readings, state S1; batch 2 the same with S2
    assert _db(db) == ((4, 4, b"S2") if lands else (2, 2, b"S1"))
    assert_verifies(db)


def test_readings_of_an_open_block_survive_and_close_into_a_verified_block(
    tmp_path: Path,
) -> None:
    path, key = tmp_path / "l.db", NodeKey.generate()
    ledger = Ledger.open(path, key)
    ledger.append_readings([Reading("t", T0, 1.0)])  # block 1, closed
    readings = [Reading("t", T0 + 1 + i / 10, float(i)) for i in range(7)]
    ledger.add_readings(readings[:4])
    ledger.commit()
    ledger.add_readings(readings[4:])
    ledger.commit()
    ledger.close()  # as a kill leaves it: block 2 open, its rows stored, no digest

    again = Ledger.open(path, key)
    block = again.open_block
    assert (block.number, len(block), block.unstaged) == (2, 7, 0)
    assert again.last_reading_ts() == block.last_ts
    digest = again.close_block()
    assert digest is not None
    assert digest.body["count"] == 7
    assert digest.body["block"] == 2
    again.commit()
    again.close()
    assert_verifies(path)
    conn = sqlite3.connect(path)
    try:
        assert [r.value for r in stored(conn, block=2)] == [float(i) for i in range(7)]
        assert conn.execute("SELECT count(*) FROM reading_blocks").fetchone()[0] == 2
    finally:
        conn.close()


def test_a_batch_written_again_stores_its_readings_once(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    ledger = Ledger.open(path, NodeKey.generate())
    ledger.add_readings([Reading("t", T0 + i, float(i)) for i in range(5)])
    batch = ledger.cut()
    assert batch is not None
    assert batch.entries == ()
    assert [(b, start) for b, start, _ in batch.readings] == [(1, 0)]  # one piece of 5
    ledger.write(batch)
    ledger.write(batch)  # its reply was lost: the writer sends it again
    ledger.written(batch)
    ledger.close()
    conn = sqlite3.connect(path)
    try:
        assert len(stored(conn)) == 5
        assert conn.execute("SELECT count(*) FROM reading_stage").fetchone()[0] == 1
    finally:
        conn.close()


async def test_entries_appended_together_land_in_one_batch_with_their_state(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.db"
    writer = LedgerWriter.open(path, NodeKey.generate(), flush_interval=30.0, batch_max=2)
    writer.ledger.track_state("rules", lambda: b"after three")
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        await writer.room()
        seqs = [writer.append_now("alarm", {"n": n}, ts=T0 + n).seq for n in range(3)]
        writer.state_changed()
        writer.commit_now()  # urgent: no 30 s flush timer
        async with asyncio.timeout(5.0):
            await writer.durable(seqs[-1])
        await writer.aclose()
    conn = sqlite3.connect(path)
    try:
        sizes = [s for (s,) in conn.execute("SELECT size FROM checkpoints")]
        state = conn.execute("SELECT size, state FROM engine_state").fetchone()
    finally:
        conn.close()
    assert sizes == [3]  # one batch although batch_max is 2: the three belong together
    assert (state[0], bytes(state[1])) == (3, b"after three")


async def test_outputs_of_an_entry_run_once_it_is_durable_in_order(tmp_path: Path) -> None:
    writer = LedgerWriter.open(tmp_path / "l.db", NodeKey.generate(), flush_interval=0.2)
    calls: list[tuple[int, int]] = []
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        for n in range(3):
            entry = await writer.append("alarm", {"n": n}, ts=T0 + n)
            writer.on_durable(entry.seq, lambda n=n: calls.append((n, writer.ledger.size)))
        assert calls == []  # not durable yet: nothing announced
        async with asyncio.timeout(5.0):
            await writer.durable(2)
        await writer.aclose()
    assert [n for n, _ in calls] == [0, 1, 2]
    assert all(size > n for n, size in calls)  # each ran when its entry was in the feed
