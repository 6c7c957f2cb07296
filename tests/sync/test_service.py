"""SyncService against a real Mosquitto: bad input counted, order restored, catch-up retried.

Node B (a SyncService on an empty database, in this process) trusts feed A, written here by a
LedgerWriter. The test publishes A's batches itself (out of order, replayed, on the wrong topic,
oversize, of an unknown version) and checks what B stored and counted; then a peer that announces
A's head but never answers, beside one that does: B times out and asks the other.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import aiomqtt
import pytest

from edge.config import SyncConfig
from edge.ledger.keys import create_key_file, load_key
from edge.ledger.trust import TRUST_FILE, add_trusted, trust_for
from edge.ledger.writer import LedgerWriter
from edge.sync import wire
from edge.sync.service import SyncService

pytestmark = pytest.mark.integration


async def write_feed(data: Path, n: int, batch: int) -> None:
    writer = LedgerWriter.open(data / "ledger.db", load_key(data / "node.key"),
                               flush_interval=0.01, batch_max=batch, journal_max=0)  # fmt: skip
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run())
        for i in range(n):
            await writer.append("alarm", {"i": str(i)}, ts=1_795_000_000 + i)
        await writer.aclose()


def batches(db: Path) -> list[tuple[int, list[bytes]]]:
    """The feed's writer batches: (start, raws) each ending with its checkpoint."""
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT seq, type, raw FROM entries ORDER BY seq").fetchall()
    conn.close()
    out: list[tuple[int, list[bytes]]] = []
    start, cur = 0, []
    for seq, kind, raw in rows:
        cur.append(bytes(raw))
        if kind == "checkpoint":
            out.append((start, cur))
            start, cur = seq + 1, []
    return out


def held(db: Path, feed: str) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(
            conn.execute("SELECT count(*) FROM entries WHERE feed = ?", (feed,)).fetchone()[0]
        )
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def nodes(tmp_path: Path) -> tuple[Path, Path, str]:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        create_key_file(d / "node.key")
    add_trusted(b / TRUST_FILE, str(a / "node.key.pub"), "a")
    return a, b, (a / "node.key.pub").read_text().strip()


def service(d: Path, name: str, port: int, **cfg: float) -> SyncService:
    config = SyncConfig(port=port, announce_interval=1.0, message_max=64 * 1024, **cfg)  # type: ignore[arg-type]
    return SyncService(config, name, load_key(d / "node.key"), d / "ledger.db",
                       trust_for(d, d / "node.key", name), take_lock=True)  # fmt: skip


async def until(predicate, within: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out: {what}")


async def test_bad_input_is_counted_and_order_is_restored(tmp_path: Path, broker) -> None:  # type: ignore[no-untyped-def]
    a, b, feed = nodes(tmp_path)
    await write_feed(a, 150, 50)
    parts = batches(a / "ledger.db")
    assert len(parts) >= 3
    total = sum(len(r) for _, r in parts)
    svc = service(b, "b", broker.port)
    task = asyncio.create_task(svc.run())
    try:
        await asyncio.wait_for(svc.ready.wait(), 10)
        live = f"edge-sync/v1/a/live/{feed}"
        msgs = [wire.encode_entries(feed, s, r, size=total) for s, r in parts]
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as c:
            # out of order: the later batches first (kept past the gap), then the first
            for m in reversed(msgs):
                await c.publish(live, m, qos=1)
            await until(lambda: held(b / "ledger.db", feed) == total, 20, "all of A stored")
            await c.publish(live, msgs[0], qos=1)  # replayed
            await c.publish(f"edge-sync/v1/a/live/{'c' * 64}", msgs[1], qos=1)  # spoofed topic
            await c.publish(live, b"\x07E" + msgs[0][2:], qos=1)  # unknown version
            await c.publish(live, b"\x01E" + bytes(70 * 1024), qos=1)  # oversize
            await c.publish(live, b"\x01E\x00\x00\x00\x03{}}", qos=1)  # malformed
            k = svc.stats.counters
            await until(lambda: k["bad.malformed"] and k["batches.duplicate"], 10, "counted")
        assert held(b / "ledger.db", feed) == total
        assert k["batches.gap"] >= 1
        assert k["entries_stored"] == total
        assert k["batches.duplicate"] == 1
        assert k["bad.spoofed"] == 1
        assert k["bad.unknown_version"] == 1
        assert k["bad.oversize"] == 1
        assert k["bad.malformed"] == 1
        # B cosigned what it stored, and announces A's head itself (it answers for A now)
        await until(lambda: k["cosignatures_out"] >= 1, 10, "B's cosignature of A's head")
        assert svc.stats.snapshot()["feeds"][feed]["held"] == total
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_catch_up_retries_with_another_peer(tmp_path: Path, broker) -> None:  # type: ignore[no-untyped-def]
    a, b, feed = nodes(tmp_path)
    await write_feed(a, 300, 100)
    total = held(a / "ledger.db", feed)
    last_cp = batches(a / "ledger.db")[-1][1][-1]
    # "mute" announces A's head (a valid signed checkpoint) and never answers a request
    head = wire.encode_head(wire.Head("mute", "d" * 64, feed, total, last_cp, ()))
    async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as c:
        await c.publish(f"edge-sync/v1/mute/head/{feed}", head, qos=1, retain=True)
    server = service(a, "server", broker.port)
    client = service(b, "b", broker.port, request_timeout=1.0, request_max=100)
    tasks = [asyncio.create_task(server.run()), asyncio.create_task(client.run())]
    try:
        await until(lambda: held(b / "ledger.db", feed) == total, 30, "B caught up")
        k = client.stats.counters
        assert k["timeouts"] >= 1  # "mute" was asked first (fewest outstanding, then by name)
        assert k["requests_sent"] >= 4  # windows of 100
        assert server.stats.counters["entries_served"] >= total
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
