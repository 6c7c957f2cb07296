"""Alarm alerts over MQTT (aiomqtt), one JSON message per alarm transition; operator commands in.

Operator commands (``edge.commands``) arrive on ``<topic_prefix>/<node_id>/cmd/<user>`` and
their results go to ``<topic_prefix>/<node_id>/cmd/<user>/result``; a malformed payload is
answered with a one-line error there and logged, and the node keeps running.

Who sent a command: Mosquitto does not tell subscribers which client published a message, so
the identity travels in the topic and the broker vouches for it. The topic's last level is the
sender's broker username, enforced by the broker's ACL (``pattern write
<prefix>/+/cmd/%u``: a client may publish commands only under its own name). The node records
``mqtt:<user>`` as the actor, checks it against ``[operators]`` (a refusal is answered on the
result topic, logged as ``mqtt.refused`` and recorded nowhere as an action) and ignores a
payload's ``actor`` except as a claim. The identity is only as good as the broker's ACL: a broker
that lets anyone publish anywhere makes every name claimable (docs/reference/mqtt.md).

Topic: ``<topic_prefix>/<node_id>/alarms/<rule id>``, QoS 1, payload the transition as JSON.
The publisher never blocks the rules: it drains its own bounded queue; when the queue is full the
oldest alert is dropped and counted (``dropped``), because the ledger already holds every
transition durably and a late flood of stale alerts helps no operator. Durable delivery through a
ledger-backed outbox is the next step (docs/design.md, "Data flow"); the queue is the seam for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import aiomqtt
import orjson

from edge.commands import (
    CommandError,
    Identity,
    action_class,
    authenticate,
    authorize,
    parse_command,
)
from edge.config import MqttConfig, OperatorsConfig
from edge.control import Handler
from edge.errors import BrokerError, EdgeError
from edge.log import event

__all__ = ["Alert", "AlertPublisher"]


@dataclass(frozen=True, slots=True)
class Alert:
    """One message to publish: the topic suffix under ``<prefix>/<node>/`` and a JSON-able body."""

    suffix: str
    body: dict[str, object]


class AlertPublisher:
    """Publishes alerts to the configured broker, reconnecting with backoff."""

    def __init__(
        self,
        config: MqttConfig,
        node_id: str,
        *,
        queue_size: int = 1000,
        on_command: Handler | None = None,
        operators: OperatorsConfig | None = None,
    ) -> None:
        self._config = config
        self._on_command = on_command
        self._operators = operators or OperatorsConfig()
        self.refused = 0  #: commands refused as unauthorised
        self._node_id = node_id
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(queue_size)
        self.published = 0
        self.dropped = 0
        self.connected = False

    def offer(self, alert: Alert) -> None:
        """Queue an alert without waiting; drop (and count) the oldest when full."""
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
                self._queue.task_done()
                self.dropped += 1
        self._queue.put_nowait(alert)

    @property
    def pending(self) -> int:
        """Alerts waiting for the broker."""
        return self._queue.qsize()

    async def run(self) -> None:
        """Connect, publish until cancelled; reconnect with exponential backoff on failure."""
        backoff = 0.5
        while True:
            try:
                await self._session()
            except BrokerError as exc:
                self.connected = False
                event(
                    "mqtt.disconnected", logging.WARNING, error=str(exc), retry_in=f"{backoff:g}s"
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
            else:  # pragma: no cover - _session only returns by raising
                return

    async def drain(self, grace: float) -> None:
        """Give queued alerts up to ``grace`` seconds to go out (used at shutdown)."""
        if not self.connected:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._queue.join()

    async def _session(self) -> None:
        c = self._config
        where = f"mqtt broker {c.host}:{c.port}"
        try:
            async with aiomqtt.Client(
                c.host,
                c.port,
                identifier=c.client_id or f"edge-{self._node_id}",
                username=c.username or None,
                password=c.password or None,
                keepalive=int(c.keepalive),
                timeout=10.0,
            ) as client:
                self.connected = True
                event("mqtt.connected", broker=f"{c.host}:{c.port}")
                prefix = f"{c.topic_prefix}/{self._node_id}"
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._publish_loop(client, prefix), name="alerts-publish")
                    if self._on_command is not None:
                        # one level: cmd/<user>; results go to cmd/<user>/result, not matched
                        await client.subscribe(f"{prefix}/cmd/+", qos=1)
                        tg.create_task(self._command_loop(client, prefix), name="alerts-commands")
        except* aiomqtt.MqttError as group:
            raise BrokerError(f"{where}: {group.exceptions[0]}") from None
        except* TimeoutError:
            raise BrokerError(f"{where}: timed out") from None
        except* OSError as group:
            raise BrokerError(f"{where}: {group.exceptions[0]}") from None

    async def _publish_loop(self, client: aiomqtt.Client, prefix: str) -> None:
        while True:
            alert = await self._queue.get()
            try:
                async with asyncio.timeout(10.0):
                    await client.publish(
                        f"{prefix}/{alert.suffix}", orjson.dumps(alert.body), qos=1
                    )
            except BaseException:
                # not delivered: put it back at the head of the line for the next session
                self._requeue(alert)
                raise
            self.published += 1
            self._queue.task_done()

    async def _command_loop(self, client: aiomqtt.Client, prefix: str) -> None:
        assert self._on_command is not None
        async for message in client.messages:
            topic = str(message.topic)
            user = topic.rpartition("/")[2]
            if not topic.startswith(f"{prefix}/cmd/") or not user:
                continue  # not a command topic (the subscription is cmd/+ only)
            payload = message.payload if isinstance(message.payload, bytes | str) else b""
            try:
                cmd = parse_command(payload)
                who = Identity("mqtt", user)
                reason = authorize(
                    who, cmd.action, self._operators.allowed(action_class(cmd.action)), node_uid=-1
                )
                if reason is None:
                    result = await self._on_command(authenticate(cmd, who))
                else:
                    self.refused += 1
                    event("mqtt.refused", logging.WARNING, actor=str(who), action=cmd.action,
                          rule=cmd.rule, entry=cmd.entry, reason=reason)  # fmt: skip
                    result = {"ok": False, "error": reason}
            except (CommandError, EdgeError) as exc:  # a bad command never stops the node
                event("mqtt.bad_command", logging.WARNING, topic=topic, error=str(exc))
                result = {"ok": False, "error": str(exc)}
            async with asyncio.timeout(10.0):
                await client.publish(f"{topic}/result", orjson.dumps(result), qos=1)

    def _requeue(self, alert: Alert) -> None:
        items = [alert]
        self._queue.task_done()
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
            self._queue.task_done()
        for item in items[: self._queue.maxsize]:
            self._queue.put_nowait(item)
        self.dropped += max(0, len(items) - self._queue.maxsize)
