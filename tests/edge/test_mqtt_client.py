"""edge.mqtt_client: aiomqtt's client with its keepalive check on the node's beat, against a real
Mosquitto (which drops a client silent for 1.5 keepalives)."""

from __future__ import annotations

import asyncio
import inspect

import aiomqtt
import pytest

from edge.beat import Beat
from edge.mqtt_client import Client


def test_the_overridden_method_is_aiomqtts() -> None:
    """The override replaces a private aiomqtt method: if aiomqtt renames it, ours would
    silently not run (and aiomqtt's 1 s loop come back); this names the reason."""
    theirs = vars(aiomqtt.Client).get("_misc_loop")
    gone = "aiomqtt.Client._misc_loop is gone: edge.mqtt_client must follow aiomqtt's change"
    assert theirs is not None, gone
    assert inspect.iscoroutinefunction(theirs), gone
    assert Client._misc_loop is not theirs


@pytest.mark.parametrize("with_beat", [False, True], ids=["own-timer", "beat-no-pulses"])
async def test_a_quiet_connection_is_kept_alive(broker, with_beat: bool) -> None:  # type: ignore[no-untyped-def]
    """Keepalive 2 s, nothing sent for 7 s: the check must still send PINGREQs (the broker
    would drop us after 3 s of silence), with or without a beat that never pulses."""
    received: list[bytes] = []
    async with Client(
        broker.host, broker.port, keepalive=2, beat=Beat() if with_beat else None
    ) as client:
        assert client.misc_every == 1.0
        await client.subscribe("t/#", qos=1)
        await asyncio.sleep(7.0)
        await client.publish("t/x", b"still here", qos=1, timeout=5.0)
        async with asyncio.timeout(5.0):
            async for message in client.messages:
                received.append(bytes(message.payload))  # type: ignore[arg-type]
                break
    assert received == [b"still here"]


async def test_the_check_runs_at_a_pulse(broker) -> None:  # type: ignore[no-untyped-def]
    """With a beat pulsed every 100 ms, the connection stays alive too (the check rides the
    pulses, at least a second apart)."""
    beat = Beat()
    loop = asyncio.get_running_loop()
    async with Client(broker.host, broker.port, keepalive=2, beat=beat) as client:
        end = loop.time() + 7.0
        while loop.time() < end:
            await asyncio.sleep(0.1)
            beat.pulse(loop.time())
        await client.publish("t/y", b"ok", qos=1, timeout=5.0)
