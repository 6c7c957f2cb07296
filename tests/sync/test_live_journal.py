"""A syncing node with the commit journal on: pushes come from the writer, not the database.

Node A: a real LedgerWriter (commit process, journal on: the default) followed by its
SyncService, as ``edge run`` wires them. Node B: a SyncService on an empty database. Both on a
real Mosquitto. A's alarm reaches B, verified, while A's database does not hold it yet (it waits
in A's journal); B's announcement of A's feed, further than A's database, is no rollback to A
(the replica follows A's writer).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from edge.config import SyncConfig
from edge.ledger.journal import journal_entries, journal_path
from edge.ledger.keys import create_key_file, load_key
from edge.ledger.signing import LIVE_SIGN_AGE
from edge.ledger.store import connect
from edge.ledger.trust import TRUST_FILE, add_trusted, trust_for
from edge.ledger.verify import verify_db
from edge.ledger.writer import LedgerWriter
from edge.sync.service import SyncService

pytestmark = pytest.mark.integration

T0 = 1_795_000_000.0


def held(db: Path, feed: str) -> list[str]:
    """The types of ``feed``'s entries in the database file, in seq order."""
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT type FROM entries WHERE feed = ? ORDER BY seq", (feed,))
        return [r[0] for r in rows]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


async def until(predicate, within: float, what: str) -> float:  # type: ignore[no-untyped-def]
    """Wait for ``predicate``; the seconds it took."""
    start = time.monotonic()
    while time.monotonic() < start + within:
        if predicate():
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {within:g} s: {what}")


async def test_an_alarm_in_the_journal_reaches_a_peer_signed_and_is_no_rollback(
    tmp_path: Path, broker
) -> None:  # type: ignore[no-untyped-def]
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        create_key_file(d / "node.key")
    add_trusted(b / TRUST_FILE, str(a / "node.key.pub"), "a")
    add_trusted(a / TRUST_FILE, str(b / "node.key.pub"), "b")
    feed = (a / "node.key.pub").read_text().strip()
    config = SyncConfig(port=broker.port, announce_interval=1.0)
    writer = LedgerWriter.open(a / "ledger.db", load_key(a / "node.key"), flush_interval=0.05)
    assert writer.journal_max > 0  # the journal is on
    svc_a = SyncService(config, "a", load_key(a / "node.key"), a / "ledger.db",
                        trust_for(a, a / "node.key", "a"), writer=writer)  # fmt: skip
    svc_b = SyncService(config, "b", load_key(b / "node.key"), b / "ledger.db",
                        trust_for(b, b / "node.key", "b"), take_lock=True)  # fmt: skip
    stored: dict[int, float] = {}
    svc_b.on_stored = lambda f, end: stored.setdefault(end, time.monotonic()) if f == feed else 0
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run())
        task_a = tg.create_task(svc_a.run())
        task_b = tg.create_task(svc_b.run())
        await asyncio.wait_for(svc_a.ready.wait(), 10)
        await asyncio.wait_for(svc_b.ready.wait(), 10)
        start = await writer.append("node.start", {"node_id": "a"}, ts=T0)
        writer.commit_now()
        await writer.durable(start.seq)
        await until(lambda: stored, 10, "node.start on B")
        # an alarm, committed at once (journaled unsigned); signed within LIVE_SIGN_AGE
        alarm = await writer.append("alarm", {"rule": "temp-high", "to": "active"}, ts=T0 + 1)
        writer.commit_now()
        await writer.durable(alarm.seq)
        durable = time.monotonic()
        await until(lambda: any(end > alarm.seq for end in stored), 10, "the alarm on B")
        latency = min(t for end, t in stored.items() if end > alarm.seq) - durable
        # it came from the journal: A's database does not hold it yet
        assert "alarm" not in held(a / "ledger.db", feed)
        assert any(b'"alarm"' in raw for raw in journal_entries(journal_path(a / "ledger.db")))
        assert held(b / "ledger.db", feed)[alarm.seq] == "alarm"
        assert latency < LIVE_SIGN_AGE + 3.0, latency
        # B announces A's feed further than A's database: A counts its writer's entries
        counters = svc_a.stats.counters
        await until(lambda: counters["heads_in"] >= 2, 10, "B's heads at A")
        assert counters["alarms.own_behind"] == 0
        assert svc_a.replica is not None
        assert svc_a.replica.pending_records() == []  # no ledger.rollback owed
        assert writer.signed > 0
        task_a.cancel()
        task_b.cancel()
        await writer.aclose()
    # B verifies what it stored of A's feed, and A's file (journal moved at close) holds the same
    conn = connect(b / "ledger.db", readonly=True)
    report = verify_db(conn)
    # (B itself never wrote: its own empty feed is all verify has to say)
    assert [p for p in report.problems if p.feed == feed] == []
    assert [f.entries for f in report.feeds if f.feed == feed] == [len(held(b / "ledger.db", feed))]
    ids_b = [r[0] for r in conn.execute("SELECT id FROM entries WHERE feed = ? ORDER BY seq",
                                        (feed,))]  # fmt: skip
    conn.close()
    conn = sqlite3.connect(a / "ledger.db")
    ids_a = [r[0] for r in conn.execute("SELECT id FROM entries WHERE feed = ? ORDER BY seq",
                                        (feed,))]  # fmt: skip
    conn.close()
    assert ids_a[: len(ids_b)] == ids_b
    assert len(ids_b) > alarm.seq


async def test_a_late_peer_gets_what_waits_in_the_journal_by_a_range_request(
    tmp_path: Path, broker
) -> None:  # type: ignore[no-untyped-def]
    """B connects after A pushed: it learns A's head (announced from A's writer) and asks for
    the range; A has its writer move the journal into the database first, then answers."""
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        create_key_file(d / "node.key")
    add_trusted(b / TRUST_FILE, str(a / "node.key.pub"), "a")
    feed = (a / "node.key.pub").read_text().strip()
    config = SyncConfig(port=broker.port, announce_interval=1.0)
    writer = LedgerWriter.open(a / "ledger.db", load_key(a / "node.key"), flush_interval=0.05)
    svc_a = SyncService(config, "a", load_key(a / "node.key"), a / "ledger.db",
                        trust_for(a, a / "node.key", "a"), writer=writer)  # fmt: skip
    svc_b = SyncService(config, "b", load_key(b / "node.key"), b / "ledger.db",
                        trust_for(b, b / "node.key", "b"), take_lock=True)  # fmt: skip
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run())
        task_a = tg.create_task(svc_a.run())
        await asyncio.wait_for(svc_a.ready.wait(), 10)
        for i in range(20):
            entry = await writer.append("alarm", {"i": str(i)}, ts=T0 + i)
            writer.commit_now()
            await writer.durable(entry.seq)
        counters = svc_a.stats.counters
        await until(lambda: counters["entries_pushed"] >= 20, 10, "A pushed (to nobody)")
        assert held(a / "ledger.db", feed) == []  # all of it in A's journal
        pushed = counters["entries_pushed"]
        task_b = tg.create_task(svc_b.run())
        await until(lambda: len(held(b / "ledger.db", feed)) >= pushed, 20, "B caught up")
        assert svc_b.stats.counters["requests_sent"] >= 1
        assert len(held(a / "ledger.db", feed)) >= pushed  # moved for the answer
        task_a.cancel()
        task_b.cancel()
        await writer.aclose()
    conn = connect(b / "ledger.db", readonly=True)
    report = verify_db(conn)
    conn.close()
    assert [p for p in report.problems if p.feed == feed] == []
