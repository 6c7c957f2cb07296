"""The commit journal: torn records, damaged files, idempotent replay, kills at its failpoints."""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
import zlib
from pathlib import Path

import orjson
import pytest

from edge.errors import StorageError
from edge.ledger.commit import prepare
from edge.ledger.database import connect
from edge.ledger.journal import (
    Journal,
    journal_entries,
    journal_path,
    move,
    read_journal,
)
from edge.ledger.keys import NodeKey, create_key_file
from edge.ledger.store import Ledger, _request
from edge.ledger.verify import verify_db
from edge.ledger.writer import LedgerWriter

from .conftest import T0, assert_verifies

PAGE = 4096


def _frames(path: Path, key: NodeKey, n: int) -> list[bytes]:
    """``n`` one-entry batches of a real feed, as the commit process receives them (not written)."""
    led = Ledger.open(path, key)
    frames = []
    for i in range(n):
        led.append("alarm", {"rule": "r", "n": i}, ts=T0 + i, lots=["L-1"])
        batch = led.cut(now=T0 + i)
        assert batch is not None
        frames.append(pickle.dumps(("write", *_request(batch)), protocol=5))
        led.written(batch)  # as if durable: this handle neither writes nor moves
    led._journal = None  # type: ignore[assignment]  # (closing would move the test's journal)
    led.close()
    return frames


def _record(frame: bytes) -> bytes:
    """A record as the journal stores it (tests its format independently of append)."""
    head = b"EQJ1" + len(frame).to_bytes(4, "big") + zlib.crc32(frame).to_bytes(4, "big")
    rec = head + frame
    return rec + bytes(-len(rec) % PAGE)


def _stored(path: Path) -> list[int]:
    conn = connect(path, readonly=True)
    try:
        return [s for (s,) in conn.execute("SELECT seq FROM entries ORDER BY seq")]
    finally:
        conn.close()


def test_records_are_page_aligned_with_crc(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    frames = _frames(path, NodeKey.generate(), 3)
    journal = Journal(path)
    with journal.locked():
        for frame in frames:
            journal.append(frame)
    journal.close()
    data = journal_path(path).read_bytes()
    assert data == b"".join(_record(f) for f in frames)
    assert len(data) == 3 * PAGE
    assert read_journal(journal_path(path)).frames == tuple(frames)
    assert len(journal_entries(journal_path(path))) == 6  # each alarm with its checkpoint


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda rec: rec[:7], id="short-header"),
        pytest.param(lambda rec: rec[:100], id="short-frame"),
        pytest.param(lambda rec: rec[:12] + b"\xff" + rec[13:], id="bad-crc"),
        pytest.param(lambda rec: bytes(len(rec)), id="zeros"),
    ],
)
def test_torn_last_record_is_dropped_and_logged(
    tmp_path: Path, cut: object, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "l.db"
    key = NodeKey.generate()
    frames = _frames(path, key, 3)
    torn = cut(_record(frames[2]))  # type: ignore[operator]
    journal_path(path).write_bytes(_record(frames[0]) + _record(frames[1]) + torn)
    assert read_journal(journal_path(path)).torn == len(torn)
    with Ledger.open(path, key) as led:  # opening moves the journal first
        assert led.size == 4  # two alarms and their checkpoints; the torn third never acked
    assert "dropped a torn last record" in caplog.text
    assert journal_path(path).stat().st_size == 0
    assert _stored(path) == [0, 1, 2, 3]
    assert_verifies(path)


def test_damaged_record_with_records_after_it_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    key = NodeKey.generate()
    frames = _frames(path, key, 3)
    bad = bytearray(_record(frames[1]))
    bad[20] ^= 0xFF
    data = _record(frames[0]) + bytes(bad) + _record(frames[2])
    journal_path(path).write_bytes(data)
    with pytest.raises(StorageError, match=r"damaged record at byte 4096 \(CRC mismatch\)"):
        Ledger.open(path, key)
    assert journal_path(path).read_bytes() == data  # kept for whoever investigates
    assert _stored(path) == []


def test_a_record_naming_a_class_is_refused_not_run(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    key = NodeKey.generate()
    _frames(path, key, 1)
    marker = tmp_path / "ran"
    evil = pickle.dumps(("write", os.system, f"touch {marker}"), protocol=5)
    journal_path(path).write_bytes(_record(evil))
    with pytest.raises(StorageError, match="not a batch"):
        Ledger.open(path, key)
    assert not marker.exists()


def test_replay_after_commit_before_truncate_doubles_nothing(tmp_path: Path) -> None:
    """A move whose COMMIT landed but whose truncate did not: the same records moved again."""
    path = tmp_path / "l.db"
    key = NodeKey.generate()
    frames = _frames(path, key, 5)
    conn = connect(path)
    prepare(conn)
    journal = Journal(path)
    with journal.locked():
        for frame in frames[:3]:
            journal.append(frame)
        assert move(journal, conn) == 3
        # the crash: the file still holds what was moved, and more came after
        for frame in frames:
            journal.append(frame)
        assert move(journal, conn) == 2  # three skipped, two applied
    journal.close()
    conn.close()
    assert _stored(path) == list(range(10))
    assert_verifies(path)


def test_a_journaled_batch_that_is_not_next_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    key = NodeKey.generate()
    frames = _frames(path, key, 3)
    journal_path(path).write_bytes(_record(frames[0]) + _record(frames[2]))  # a gap
    with pytest.raises(StorageError, match="seq 4 is not next"):
        Ledger.open(path, key)
    assert _stored(path) == []  # one transaction: the first record did not land alone


async def test_unsigned_entries_reach_the_database_only_with_their_checkpoint(
    tmp_path: Path,
) -> None:
    path = tmp_path / "l.db"
    writer = LedgerWriter.open(path, NodeKey.generate(), flush_interval=0.01)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        entry = await writer.append("lot.start", {"lot": "L-7"}, ts=T0, lots=["L-7"])
        await writer.durable(entry.seq)
        assert len(read_journal(journal_path(path)).frames) == 1
        # durable in the journal, not yet signed: a read moves nothing, the database never
        # ends in unsigned entries (verify would call them appended behind the writer's back)
        assert writer.ledger.latest("lot.start") is None
        assert_verifies(path)
        await writer.sync()  # what a reader's sync request does: sign, then move
        latest = writer.ledger.latest("lot.start")
        assert latest is not None
        assert latest.id == entry.id
        assert read_journal(journal_path(path)).frames == ()
        assert_verifies(path)
        await writer.aclose()


async def test_a_checkpoint_signs_the_journal_after_journal_age(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    writer = LedgerWriter.open(path, NodeKey.generate(), flush_interval=0.01, journal_age=2.0)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        for i in range(3):
            entry = await writer.append("alarm", {"n": i}, ts=T0 + i)
            writer.commit_now()  # each its own commit, as an alarm
            await writer.durable(entry.seq)
        assert len(read_journal(journal_path(path)).frames) == 3  # three commits, unsigned
        assert _stored(path) == []
        deadline = asyncio.get_running_loop().time() + 20
        while _stored(path) == [] and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        # one checkpoint (seq 3) over the three, then everything moved in one transaction
        assert _stored(path) == [0, 1, 2, 3]
        assert read_journal(journal_path(path)).frames == ()
        assert_verifies(path)
        await writer.aclose()


def test_an_opener_signs_what_a_killed_writer_journaled_unsigned(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    key = NodeKey.generate()
    led = Ledger.open(path, key)
    led.append("alarm", {"n": 0}, ts=T0)
    led.commit(now=T0)  # signed: seq 0 and its checkpoint 1
    frames = []
    for i in range(1, 4):
        led.append("alarm", {"n": i}, ts=T0 + i)
        batch = led.cut(sign=False)
        assert batch is not None
        assert batch.checkpoint is None
        frames.append(pickle.dumps(("write", *_request(batch)), protocol=5))
        led.written(batch)
    led._journal = None  # type: ignore[assignment]  # killed: nothing moved, nothing signed
    led.close()
    journal_path(path).write_bytes(b"".join(_record(f) for f in frames))
    with Ledger.open(path, key) as reopened:  # moves them in and signs them, one transaction
        assert reopened.size == 6
    assert _stored(path) == [0, 1, 2, 3, 4, 5]
    assert read_journal(journal_path(path)).frames == ()
    assert_verifies(path)


async def test_batches_above_the_threshold_go_to_sqlite_after_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    writer = LedgerWriter.open(path, NodeKey.generate(), flush_interval=0.01, batch_max=5000)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        small = await writer.append("alarm", {"n": 0}, ts=T0)
        await writer.durable(small.seq)
        assert _stored(path) == []  # journaled
        for i in range(200):  # one bulk batch, ~60 KB: straight to SQLite, journal first
            big = writer.append_now("alarm", {"n": i, "pad": "x" * 200}, ts=T0 + 1 + i)
        writer.commit_now()
        await writer.durable(big.seq)
        assert _stored(path) == list(range(big.seq + 2))
        assert journal_path(path).stat().st_size == 0
        await writer.aclose()
    assert_verifies(path)


# -- a real commit process killed at each failpoint of the journal -------------------------------

CHILD = """
import asyncio, sys
from pathlib import Path
from edge.ledger.keys import load_key
from edge.ledger.writer import LedgerWriter

async def main(db, keyfile):
    writer = LedgerWriter.open(db, load_key(keyfile), flush_interval=0.001, journal_age=0.5)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        n = 0
        while True:
            entry = await writer.append("alarm", {"n": n}, ts=1795000000.0 + n)
            await writer.durable(entry.seq)
            sys.stdout.write(f"{entry.seq} {entry.id}\\n")
            sys.stdout.flush()
            n += 1

asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
"""


@pytest.mark.parametrize(
    ("point", "count"),
    [("journal.appended", 5), ("journal.synced", 5), ("journal.moved", 1), ("commit.begin", 1)],
)
def test_kill_at_a_journal_failpoint_loses_and_doubles_nothing(
    tmp_path: Path, point: str, count: int
) -> None:
    db = tmp_path / "ledger.db"
    keyfile = tmp_path / "node.key"
    key = create_key_file(keyfile)
    promised: dict[int, str] = {}
    for run in range(2):
        env = {**os.environ, "EDGE_FAILPOINTS": f"{point}:{count}"}
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(db), str(keyfile)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert proc.returncode == -9, proc.stderr[-2000:]  # killed at the point, node and child
        for line in proc.stdout.splitlines():
            seq, entry_id = line.split()
            assert promised.setdefault(int(seq), entry_id) == entry_id
        assert promised, f"run {run}: nothing acknowledged"
        with Ledger.open(db, key) as led:  # as the node's next start: the journal moved first
            assert journal_path(db).stat().st_size == 0
            rows = dict(led.conn.execute("SELECT seq, id FROM entries").fetchall())
            assert sorted(rows) == list(range(led.size))  # no gap, no double (seq is a key)
        missing = [s for s, i in promised.items() if rows.get(s) != i]
        assert not missing, f"acknowledged entries lost: {missing[:5]}"
    conn = connect(db, readonly=True)
    try:
        assert verify_db(conn).ok
    finally:
        conn.close()


def test_a_kill_while_an_opener_signs_the_journal_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    keyfile = tmp_path / "node.key"
    key = create_key_file(keyfile)
    frames = []
    with Ledger.open(path, key) as led:
        led._journal = None  # type: ignore[assignment]  # (closing would move it)
        for i in range(3):
            led.append("alarm", {"n": i}, ts=T0 + i)
            batch = led.cut(sign=False)
            assert batch is not None
            frames.append(pickle.dumps(("write", *_request(batch)), protocol=5))
            led.written(batch)
    journal_path(path).write_bytes(b"".join(_record(f) for f in frames))
    opener = "import sys; from pathlib import Path; from edge.ledger.keys import load_key; from edge.ledger.store import Ledger; Ledger.open(sys.argv[1], load_key(Path(sys.argv[2]))).close()"
    env = {**os.environ, "EDGE_FAILPOINTS": "journal.sealed:1"}
    proc = subprocess.run(
        [sys.executable, "-c", opener, str(path), str(keyfile)], env=env, timeout=60
    )
    assert proc.returncode == -9  # killed inside the transaction: moved and signed, or neither
    assert _stored(path) == []
    assert len(read_journal(journal_path(path)).frames) == 3
    with Ledger.open(path, key) as led:
        assert led.size == 4
    assert _stored(path) == [0, 1, 2, 3]
    assert journal_path(path).stat().st_size == 0
    assert_verifies(path)


def test_verify_names_what_the_journal_holds_and_fails_on_a_damaged_one(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from edge.cli import main

    path = tmp_path / "l.db"
    key = NodeKey.generate()
    frames = _frames(path, key, 3)
    journal_path(path).write_bytes(b"".join(_record(f) for f in frames) + b"EQJ1\0")
    human = CliRunner().invoke(main, ["ledger", "verify", "--db", str(path)])
    assert human.exit_code == 0, human.output  # the database alone is a sound (shorter) feed
    assert "6 entries in the commit journal l.db.eqj, not yet moved" in human.output
    assert "ends in a torn record (5 bytes" in human.output
    bad = bytearray(_record(frames[0]))
    bad[30] ^= 1
    journal_path(path).write_bytes(bytes(bad) + _record(frames[1]))
    result = CliRunner().invoke(main, ["ledger", "verify", "--db", str(path), "--json"])
    assert result.exit_code == 1, result.output
    payload = orjson.loads(result.output)
    assert payload["ok"] is False
    assert "damaged record at byte 0" in payload["journal"]


async def test_a_record_is_moved_once_it_has_waited_its_age(tmp_path: Path) -> None:
    """The age trigger: the commit process moves a lone record without any other request."""
    path = tmp_path / "l.db"
    writer = LedgerWriter.open(path, NodeKey.generate(), flush_interval=0.01, journal_age=2.0)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        entry = await writer.append("alarm", {"n": 1}, ts=T0)
        await writer.durable(entry.seq)
        assert _stored(path) == []  # journaled, not yet moved
        async with asyncio.timeout(10.0):
            while _stored(path) != [0, 1]:
                await asyncio.sleep(0.05)
        assert journal_path(path).stat().st_size == 0
        await writer.aclose()


def test_replay_ends_in_the_last_records_engine_state(tmp_path: Path) -> None:
    """Records with entries and state-only records, moved, then moved again (no truncate):
    the stored state is the last record's, not that of the last record without entries.
    (The crash suite found this: a state behind its ledger after a kill at commit.after_commit.)"""
    path = tmp_path / "l.db"
    key = NodeKey.generate()
    led = Ledger.open(path, key)
    state = [b"s0"]
    led.track_state("rules", lambda: state[0])
    frames = []
    for i, with_entry in enumerate([True, False, True, True, False, True]):
        state[0] = f"s{i}".encode()
        led.state_changed()
        if with_entry:
            led.append("lot.start", {"lot": f"L{i}"}, ts=T0 + i, lots=[f"L{i}"])
        batch = led.cut(now=T0 + i)
        assert batch is not None
        assert batch.state is not None
        frames.append(pickle.dumps(("write", *_request(batch)), protocol=5))
        led.written(batch)
    led._journal = None  # type: ignore[assignment]
    led.close()
    conn = connect(path)
    prepare(conn)
    journal = Journal(path)
    with journal.locked():
        for frame in frames:
            journal.append(frame)
        move(journal, conn)
        for frame in frames:  # the crash between COMMIT and truncate
            journal.append(frame)
        assert move(journal, conn) == 2  # the two state-only records; four skipped
    journal.close()
    row = conn.execute("SELECT state FROM engine_state WHERE name = 'rules'").fetchone()
    conn.close()
    assert bytes(row[0]) == b"s5"
    assert_verifies(path)
