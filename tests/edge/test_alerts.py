"""Alerts go to a real Mosquitto; a broker outage delays them, it does not lose them."""

from __future__ import annotations

import asyncio

import aiomqtt
import orjson
import pytest

from edge.alerts import Alert, AlertPublisher
from edge.config import MqttConfig

pytestmark = pytest.mark.integration


async def _collect(
    host: str, port: int, topic: str, n: int, ready: asyncio.Event
) -> list[aiomqtt.Message]:
    got: list[aiomqtt.Message] = []
    async with aiomqtt.Client(host, port) as client:
        await client.subscribe(topic, qos=1)
        ready.set()
        async for message in client.messages:
            got.append(message)
            if len(got) == n:
                return got
    return got


async def test_alert_is_published_as_json_under_node_topic(broker) -> None:  # type: ignore[no-untyped-def]
    pub = AlertPublisher(
        MqttConfig(host=broker.host, port=broker.port, topic_prefix="plant"), "gw1"
    )
    ready = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        sub = tg.create_task(_collect(broker.host, broker.port, "plant/gw1/#", 2, ready))
        await ready.wait()
        run = tg.create_task(pub.run(), name="alerts")
        pub.offer(Alert("alarms/temp-high", {"rule": "temp-high", "event": "activated"}))
        pub.offer(Alert("alarms/temp-high", {"rule": "temp-high", "event": "cleared"}))
        async with asyncio.timeout(10):
            messages = await sub
        run.cancel()
    assert [m.topic.value for m in messages] == ["plant/gw1/alarms/temp-high"] * 2
    assert [orjson.loads(m.payload)["event"] for m in messages] == ["activated", "cleared"]  # type: ignore[arg-type]
    assert pub.published == 2
    assert pub.dropped == 0


async def test_alerts_queued_during_outage_arrive_after_broker_returns(broker) -> None:  # type: ignore[no-untyped-def]
    pub = AlertPublisher(MqttConfig(host=broker.host, port=broker.port), "gw1")
    broker.stop()
    async with asyncio.TaskGroup() as tg:
        run = tg.create_task(pub.run(), name="alerts")
        pub.offer(Alert("alarms/r1", {"n": 1}))
        await asyncio.sleep(0.8)  # the publisher is retrying with backoff meanwhile
        assert pub.published == 0
        assert pub.pending == 1
        broker.start()
        ready = asyncio.Event()
        sub = tg.create_task(_collect(broker.host, broker.port, "edge/gw1/#", 1, ready))
        await ready.wait()
        async with asyncio.timeout(15):
            while pub.published < 1:
                await asyncio.sleep(0.05)
            messages = await sub
        run.cancel()
    assert orjson.loads(messages[0].payload) == {"n": 1}  # type: ignore[arg-type]


async def test_full_queue_drops_oldest_and_counts() -> None:
    pub = AlertPublisher(MqttConfig(host="127.0.0.1", port=1), "gw1", queue_size=2)
    for i in range(5):
        pub.offer(Alert("alarms/r", {"n": i}))
    assert pub.dropped == 3
    assert pub.pending == 2
