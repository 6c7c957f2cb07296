"""The node's MQTT client: aiomqtt's, with its keepalive check riding on the node's wake-ups.

aiomqtt runs paho's ``loop_misc`` (send a PINGREQ when the connection has been quiet for the
keepalive, drop a connection whose PINGRESP is overdue) from a task that sleeps one second
between calls: one wake-up a second of its own, on a gateway where wake-ups are most of the CPU
at a slow poll (:mod:`edge.beat`). Here the check waits on the node's :class:`~edge.beat.Beat`
(a poll's burst, once a second or later) and at most a quarter of the keepalive, so a PINGREQ
leaves at most ``keepalive / 4`` late; the broker allows 1.5 keepalives of silence.

This overrides ``aiomqtt.Client._misc_loop``, a private method (aiomqtt 2.x);
tests/edge/test_mqtt_client.py fails when aiomqtt no longer has it, and checks against a real
broker that a quiet connection is kept alive.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt

from edge.beat import Beat

__all__ = ["Client"]


class Client(aiomqtt.Client):
    """An :class:`aiomqtt.Client` whose keepalive check rides on ``beat`` (None: its own timer)."""

    def __init__(self, *args: Any, beat: Beat | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._beat = beat
        keepalive = float(kwargs.get("keepalive", 60))
        #: the longest wait between two checks
        self.misc_every = max(1.0, keepalive / 4)

    async def _misc_loop(self) -> None:
        beat = self._beat
        while self._client.loop_misc() == mqtt.MQTT_ERR_SUCCESS:
            if beat is None:
                await asyncio.sleep(self.misc_every)
            else:
                await beat.sleep(1.0, self.misc_every)
