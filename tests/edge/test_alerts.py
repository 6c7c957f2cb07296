"""The ledger outbox against a real Mosquitto and a real ledger writer (edge.alerts, edge.outbox).

Entries appended to the writer reach a subscriber once durable, in order, as standalone
payloads derived from the entry; a broker outage (and more waiting than memory holds) only
delays them; the cursor is stored and a new publisher resumes after it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest

from edge.alerts import AlertPublisher
from edge.config import MqttConfig
from edge.ledger import LedgerWriter, NodeKey
from edge.ledger.entry import parse_entry
from edge.outbox_payloads import message_of

pytestmark = pytest.mark.integration


def _alarm(i: int) -> dict[str, Any]:
    return {
        "rule": f"r{i % 3}", "kind": "limit", "point": "t", "event": "activated",
        "from": "normal", "to": "active_unack", "value": f"{i}.5", "limit": "8",
        "unit": "degC", "severity": "high", "message": f"m{i}", "statistic": "value",
    }  # fmt: skip


class Collector:
    """A subscriber with a persistent session (QoS 1), reconnecting while the broker is down."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        self.host, self.port, self.topic = host, port, topic
        self.got: list[tuple[str, bytes, bool]] = []
        self.ready = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    self.host, self.port, identifier="collector", clean_session=False
                ) as client:
                    await client.subscribe(self.topic, qos=1)
                    self.ready.set()
                    async for m in client.messages:
                        assert isinstance(m.payload, bytes)
                        self.got.append((m.topic.value, m.payload, m.retain))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    def payloads(self, part: str) -> list[dict[str, Any]]:
        return [orjson.loads(p) for t, p, _ in self.got if f"/{part}/" in t and p]

    async def wait_for(self, part: str, n: int, seconds: float = 30.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(seconds):
            while len({p["id"] for p in self.payloads(part)}) < n:
                await asyncio.sleep(0.05)
        return self.payloads(part)


def persistent(broker: Any, where: Path) -> None:
    """Restart ``broker`` with persistence: sessions and queued messages survive a restart."""
    broker.stop()
    text = broker.conf.read_text().replace("persistence false", "persistence true")
    broker.conf.write_text(f"{text}persistence_location {where}/\n")
    broker.start()


def _ledger_alarms(db: Path) -> list[bytes]:
    conn = sqlite3.connect(db)
    try:
        return [
            r for (r,) in conn.execute("SELECT raw FROM entries WHERE type = 'alarm' ORDER BY seq")
        ]
    finally:
        conn.close()


async def _until(condition: Callable[[], bool], seconds: float) -> None:
    """Poll ``condition`` every 10 ms until it holds (TimeoutError after ``seconds``)."""
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)


def _dedup(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    out = []
    for p in payloads:
        if p["id"] not in seen:
            seen.add(p["id"])
            out.append(p)
    return out


async def test_durable_entries_arrive_in_order_as_ledger_payloads(broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "ledger.db"
    writer = LedgerWriter.open(db, NodeKey.generate(), flush_interval=0.01)
    pub = AlertPublisher(
        MqttConfig(host=broker.host, port=broker.port, topic_prefix="plant"), "gw1"
    )
    pub.attach(writer)
    sub = Collector(broker.host, broker.port, "plant/gw1/#")
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run())
        s = tg.create_task(sub.run())
        await sub.ready.wait()
        p = tg.create_task(pub.run())
        for i in range(20):
            await writer.append("alarm", _alarm(i), ts=1000.0 + i, lots=["L1"])
            await writer.append("readings.digest", {"n": i}, ts=1000.0 + i)  # not a stream
        got = await sub.wait_for("alarms", 20)
        await pub.close(grace=5.0)
        p.cancel()
        s.cancel()
        await writer.aclose()
    rows = _ledger_alarms(db)
    expected = [message_of(parse_entry(r), "plant/gw1")[1] for r in rows]
    assert _dedup(got) == expected
    assert [q["value"] for q in expected] == [f"{i}.5" for i in range(20)]
    assert expected[0]["lot"] == "L1"
    assert expected[0]["v"] == 1
    assert pub.stats.streams["alarms"].delivered == 20
    assert pub.stats.streams["alarms"].depth == 0
    states = {t: orjson.loads(b) for t, b, _ in sub.got if "/alarm_states/" in t and b}
    assert states["plant/gw1/alarm_states/r2"]["message"] == "m17"  # latest per rule
    status = [orjson.loads(b)["state"] for t, b, _ in sub.got if t.endswith("/status")]
    assert status[0] == "online"
    assert status[-1] == "offline"


async def test_outage_longer_than_memory_replays_from_ledger_and_cursor_resumes(  # type: ignore[no-untyped-def]
    broker, tmp_path: Path
) -> None:
    db = tmp_path / "ledger.db"
    key = NodeKey.generate()
    cfg = MqttConfig(host=broker.host, port=broker.port)
    persistent(broker, tmp_path)
    writer = LedgerWriter.open(db, key, flush_interval=0.01)
    pub = AlertPublisher(cfg, "gw1", memory=10)  # 50 entries will not fit
    pub.attach(writer)
    sub = Collector(broker.host, broker.port, "edge/gw1/alarms/#")
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run())
        s = tg.create_task(sub.run())
        await sub.ready.wait()
        p = tg.create_task(pub.run())
        await writer.append("alarm", _alarm(0), ts=1.0)
        await sub.wait_for("alarms", 1)
        # The subscriber has it; the publisher counts it delivered only on its PUBACK, which may
        # come a moment later (stopped before it, the broker leaves 51 waiting, not 50).
        await _until(lambda: pub.stats.streams["alarms"].delivered == 1, 10.0)
        broker.stop()
        for i in range(1, 51):
            await writer.append("alarm", _alarm(i), ts=1.0 + i)
        writer.commit_now()
        await writer.durable(writer.ledger.size + 49)  # the 50 and their checkpoints
        assert pub.stats.streams["alarms"].depth == 50
        assert pub.stats.streams["alarms"].overflows >= 1
        broker.start()
        got = await sub.wait_for("alarms", 51)
        await pub.close(grace=5.0)
        p.cancel()
        s.cancel()
        await writer.aclose()
    assert [q["message"] for q in _dedup(got)] == [f"m{i}" for i in range(51)]
    assert pub.stats.streams["alarms"].replayed >= 40
    conn = sqlite3.connect(db)
    (cursor,) = conn.execute("SELECT seq FROM outbox_cursors WHERE stream = 'alarms'").fetchone()
    conn.close()
    assert cursor == orjson.loads(_ledger_alarms(db)[-1])["seq"]

    # A new publisher on the same ledger owes nothing: its cursor is stored.
    writer2 = LedgerWriter.open(db, key, flush_interval=0.01)
    pub2 = AlertPublisher(cfg, "gw1")
    pub2.attach(writer2)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer2.run())
        p = tg.create_task(pub2.run())
        async with asyncio.timeout(10):
            while not pub2.connected:
                await asyncio.sleep(0.02)
        assert pub2.pending == 0
        await pub2.close(grace=1.0)
        p.cancel()
        await writer2.aclose()


async def test_a_stop_while_the_session_fails_is_not_swallowed(  # type: ignore[no-untyped-def]
    broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node stops (its task group cancels the publisher) just as the broker session fails:
    the session's task group then raises the MQTT error, not the cancellation. The reconnect
    loop must still end, or the node's shutdown waits for it for ever."""
    pub = AlertPublisher(MqttConfig(host=broker.host, port=broker.port), "gw1")
    runner: asyncio.Task[None] | None = None

    async def notices_then_failure(client: object) -> None:
        assert runner is not None
        runner.cancel()  # the node stops ...
        await asyncio.sleep(0)
        raise aiomqtt.MqttError("connection lost")  # ... as the session fails

    monkeypatch.setattr(pub, "_notice_loop", notices_then_failure)
    runner = asyncio.create_task(pub.run())
    done, _ = await asyncio.wait([runner], timeout=5.0)
    if not done:
        runner.cancel()  # let the test end; the publisher swallowed the first stop
    assert done, "the publisher went on reconnecting after it was cancelled"
    assert runner.cancelled()
