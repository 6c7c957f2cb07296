"""The node's MQTT side (aiomqtt): the ledger outbox out, node status, telemetry; commands in.

Out (docs/reference/mqtt.md has every topic with an example payload):

- the ledger's streams (:mod:`edge.outbox`): alarm transitions, lot records, operator actions,
  QoS 1, each delivered in ledger order with a cursor advanced on the broker's PUBACK; the
  latest transition of each alarm also retained on ``alarm_states/<rule>`` (deleted when the
  alarm is back to normal);
- ``status``, retained: ``online`` once connected, ``offline`` at a clean stop, and ``offline``
  as the connection's last will when the node dies or the network goes (the broker sends it);
- telemetry (:mod:`edge.telemetry`), QoS 0, best effort.

In: operator commands on ``<topic_prefix>/<node_id>/cmd/<user>``, results on
``.../cmd/<user>/result``; a malformed payload is answered with a one-line error there and
logged, and the node keeps running.

Who sent a command: Mosquitto does not tell subscribers which client published a message, so
the identity travels in the topic and the broker vouches for it. The topic's last level is the
sender's broker username, enforced by the broker's ACL (``pattern write
<prefix>/+/cmd/%u``: a client may publish commands only under its own name). The node records
``mqtt:<user>`` as the actor, checks it against ``[operators]`` (a refusal is answered on the
result topic, logged as ``mqtt.refused`` and recorded nowhere as an action) and ignores a
payload's ``actor`` except as a claim. The identity is only as good as the broker's ACL: a broker
that lets anyone publish anywhere makes every name claimable (docs/reference/mqtt.md).

Nothing here blocks the rules: the writer's listener only appends to bounded in-memory queues;
publishing, replay reads and cursor writes happen in this task's own tasks and threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiomqtt
import orjson

from edge import __version__
from edge.beat import Beat
from edge.cancel import run_session
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
from edge.errors import BrokerError, EdgeError, StorageError
from edge.ledger.entry import Entry, format_ts
from edge.ledger.writer import LedgerWriter
from edge.log import event
from edge.mqtt_client import Client
from edge.outbox import STREAMS, OutboxStats, Stream
from edge.outbox_payloads import STREAM_OF, alarm_state_payload, message_of, status_payload
from edge.outbox_store import OutboxStore
from edge.telemetry import Telemetry

__all__ = ["Alert", "AlertPublisher"]

_WINDOW = 128  # publishes awaiting their PUBACK per stream (pipelined on the one connection)
_CHUNK = 1000  # entries read back from the ledger at a time
_PUBLISH_TIMEOUT = 10.0  # seconds for a PUBACK before the connection is given up
_ALARMS = "alarms"


async def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Alert:
    """A notice that is no ledger entry (sync's fork and rollback alarms): topic suffix, body."""

    suffix: str
    body: dict[str, object]


class AlertPublisher:
    """Publishes the ledger's streams, status and telemetry; takes operator commands.

    Args:
        config: the ``[mqtt]`` table.
        node_id: the node's id (the topic level under the prefix).
        memory: entries per stream kept in memory for the broker (more wait on the ledger).
        cursor_interval: at most this often (seconds) a moved cursor is written to the ledger
            database (lazily, for SD-card wear; at-least-once delivery covers the rest).
        on_command: carries out an authenticated operator command (None: commands not read).
        operators: who may send which command.
        telemetry: the telemetry queue (None: no telemetry).
    """

    def __init__(
        self,
        config: MqttConfig,
        node_id: str,
        *,
        memory: int = 1000,
        cursor_interval: float = 5.0,
        on_command: Handler | None = None,
        operators: OperatorsConfig | None = None,
        telemetry: Telemetry | None = None,
        beat: Beat | None = None,
    ) -> None:
        self._config = config
        self._beat = beat  # the keepalive check rides on the node's wake-ups (edge.mqtt_client)
        self._node_id = node_id
        self._prefix = f"{config.topic_prefix}/{node_id}"
        self._on_command = on_command
        self._operators = operators or OperatorsConfig()
        self.refused = 0  #: commands refused as unauthorised
        # one figures object for streams and telemetry (what the metrics endpoint reads)
        self.stats = telemetry.stats if telemetry is not None else OutboxStats()
        self.streams = {name: Stream(name, memory=memory) for name in STREAMS}
        for name, s in self.streams.items():
            self.stats.streams[name] = s.stats
        self.telemetry = telemetry
        self._cursor_interval = cursor_interval
        self._store: OutboxStore | None = None
        self._durable_end = 0
        self._sync_ledger: Callable[[], Awaitable[None]] = _nothing
        self._started = asyncio.Event()  # cursors loaded: streams may be served
        self._latest: dict[str, int] = {}  # rule -> seq of its latest transition (durable)
        self._client: aiomqtt.Client | None = None
        #: notices (:meth:`offer`): best effort, bounded; the oldest dropped and counted
        self._notices: deque[Alert] = deque()
        self._notice_max = 1000
        self._notice_ready = asyncio.Event()
        self.dropped = 0  #: notices dropped, oldest first, from a full notice queue
        self._acked = asyncio.Event()  # set when a PUBACK moved a cursor (close() waits on it)
        self.connected = False

    # -- wiring -------------------------------------------------------------------------------

    def attach(self, writer: LedgerWriter) -> None:
        """Deliver ``writer``'s durable entries (call once its ledger is open, before appending)."""
        key = writer.ledger.key
        assert key is not None
        self._store = OutboxStore(writer.ledger.path, key.feed)
        self._durable_end = writer.size
        self._sync_ledger = writer.sync
        writer.add_listener(self._on_durable)

    def _on_durable(self, entries: Sequence[Entry]) -> None:
        streams = self.streams
        for e in entries:
            name = STREAM_OF.get(e.type)
            if name is None:
                continue
            if name == _ALARMS:
                rule = e.body.get("rule")
                if isinstance(rule, str):
                    self._latest[rule] = e.seq
            streams[name].offer(e)

    def offer(self, alert: Alert) -> None:
        """Queue a notice (QoS 1 on ``<prefix>/<node>/<suffix>``, not retained; never waits).

        For what the ledger does not hold (yet): sync's alarms. When more than 1,000 wait for the
        broker, the oldest is dropped and counted (:attr:`dropped`).
        """
        if len(self._notices) >= self._notice_max:
            self._notices.popleft()
            self.dropped += 1
        self._notices.append(alert)
        self._notice_ready.set()

    @property
    def published(self) -> int:
        """Stream entries acknowledged by the broker this run."""
        return sum(s.stats.delivered for s in self.streams.values())

    @property
    def pending(self) -> int:
        """Stream entries not yet acknowledged, and notices waiting."""
        return self.stats.depth + len(self._notices)

    # -- the task -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Load the cursors, then publish until cancelled, reconnecting with backoff."""
        while True:
            try:
                await self._load()
                break
            except (
                StorageError
            ) as exc:  # the database is busy or failing: MQTT must not stop the node
                event("mqtt.outbox_unreadable", logging.ERROR, error=str(exc), retry_in="5s")
                await asyncio.sleep(5.0)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._persist_cursors(), name="outbox-cursors")
            tg.create_task(self._connect_forever(), name="mqtt-session")

    async def _load(self) -> None:
        store = self._store
        if store is None:  # not attached (no ledger): nothing to deliver but telemetry
            for s in self.streams.values():
                s.start(-1, 0)
            self._started.set()
            return
        end = self._durable_end
        # everything read first, then applied: a failed read (retried by run()) changes nothing
        cursors = await asyncio.to_thread(store.cursors)
        latest = await asyncio.to_thread(store.latest_per_rule, STREAMS[_ALARMS], end - 1)
        waiting: dict[str, tuple[int, str | None]] = {}
        for name, s in self.streams.items():
            cursor = cursors.get(name, -1)
            n = await asyncio.to_thread(store.count, s.types, cursor, end - 1)
            first = await asyncio.to_thread(store.entries, s.types, cursor, end - 1, 1) if n else []
            waiting[name] = (n, first[0].ts if first else None)
        for rule, seq in latest.items():
            self._latest.setdefault(rule, seq)  # newer ones came through the listener
        for name, s in self.streams.items():
            n, oldest = waiting[name]
            s.start(cursors.get(name, -1), end)
            s.stats.depth += n
            if oldest is not None:
                s.stats.oldest = oldest
        event("mqtt.outbox", **{f"{n}_waiting": s.stats.depth for n, s in self.streams.items()})
        self._started.set()

    async def _connect_forever(self) -> None:
        backoff = 0.5
        while True:
            try:
                await run_session(self._session(), "mqtt-connection")  # edge.cancel: why
            except BrokerError as exc:
                self.connected = False
                self._client = None
                event(
                    "mqtt.disconnected", logging.WARNING, error=str(exc), retry_in=f"{backoff:g}s"
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            else:  # pragma: no cover - _session only returns by raising
                return

    async def _session(self) -> None:
        c = self._config
        where = f"mqtt broker {c.host}:{c.port}"
        will = aiomqtt.Will(
            f"{self._prefix}/status",
            orjson.dumps(status_payload(self._node_id, "offline", reason="connection lost")),
            qos=1,
            retain=True,
        )
        try:
            async with Client(
                c.host,
                c.port,
                identifier=c.client_id or f"edge-{self._node_id}",
                username=c.username or None,
                password=c.password or None,
                keepalive=int(c.keepalive),
                timeout=10.0,
                will=will,
                max_inflight_messages=_WINDOW * len(STREAMS),
                beat=self._beat,
            ) as client:
                # our window is the bound; aiomqtt would log a warning per publish beyond 10
                client.pending_calls_threshold = _WINDOW * len(STREAMS) + 16
                online = status_payload(self._node_id, "online", since=format_ts(time.time()),
                                        version=__version__)  # fmt: skip
                await client.publish(
                    f"{self._prefix}/status", orjson.dumps(online), qos=1, retain=True,
                    timeout=_PUBLISH_TIMEOUT,
                )  # fmt: skip
                self._client = client
                self.connected = True
                event("mqtt.connected", broker=f"{c.host}:{c.port}")
                await self._started.wait()
                await self._publish_states(client)
                async with asyncio.TaskGroup() as tg:
                    for s in self.streams.values():
                        tg.create_task(self._deliver(client, s), name=f"outbox:{s.name}")
                    if self.telemetry is not None:
                        tg.create_task(self._telemetry_loop(client), name="telemetry")
                    tg.create_task(self._notice_loop(client), name="notices")
                    if self._on_command is not None:
                        # one level: cmd/<user>; results go to cmd/<user>/result, not matched
                        await client.subscribe(f"{self._prefix}/cmd/+", qos=1)
                        tg.create_task(self._command_loop(client), name="mqtt-commands")
        except* aiomqtt.MqttError as group:
            raise BrokerError(f"{where}: {group.exceptions[0]}") from None
        except* TimeoutError:
            raise BrokerError(f"{where}: timed out") from None
        except* OSError as group:
            raise BrokerError(f"{where}: {group.exceptions[0]}") from None
        except* EdgeError as group:  # a replay read failed: the next session retries
            raise BrokerError(f"{where}: outbox: {group.exceptions[0]}") from None
        finally:
            self.connected = False
            self._client = None

    # -- delivery -----------------------------------------------------------------------------

    async def _deliver(self, client: aiomqtt.Client, stream: Stream) -> None:
        """Publish ``stream`` in order, ``_WINDOW`` at a time; move its cursor on each PUBACK."""
        stream.rewind()
        inflight: deque[tuple[Entry, bool, asyncio.Task[None]]] = deque()
        replay: deque[Entry] = deque()
        wake = stream.wake
        try:
            while True:
                wake.clear()
                while inflight and inflight[0][2].done():
                    entry, replayed, task = inflight.popleft()
                    task.result()  # a failed publish ends the session (the next one rewinds)
                    stream.acked(entry, replayed, inflight[0][0].ts if inflight else None)
                    self._acked.set()
                while len(inflight) < _WINDOW:
                    replayed = bool(replay)
                    nxt = replay.popleft() if replay else stream.take_live()
                    if nxt is None:
                        break
                    entry = nxt
                    stream.covered = entry.seq
                    task = asyncio.create_task(self._publish_entry(client, entry))
                    task.add_done_callback(lambda _: wake.set())
                    inflight.append((entry, replayed, task))
                if not replay and stream.needs_ledger() and len(inflight) < _WINDOW:
                    replay.extend(await self._read_back(stream))
                    continue
                await wake.wait()
        finally:
            for _, _, task in inflight:
                task.cancel()

    async def _read_back(self, stream: Stream) -> list[Entry]:
        """The next chunk of ``stream`` from the ledger (after the part already read)."""
        assert self._store is not None
        upto = stream.complete_after
        store = self._store
        if await asyncio.to_thread(store.stored_end) <= upto:
            # Durable entries may still be in the commit journal (unsigned until the writer's
            # next checkpoint): have them signed and moved now. Only when the database lacks
            # what must be read: the writer moves the journal in bulk otherwise (SD-card wear).
            await self._sync_ledger()
        chunk = await asyncio.to_thread(store.entries, stream.types, stream.fetched, upto, _CHUNK)
        stream.fetched = chunk[-1].seq if len(chunk) == _CHUNK else upto
        return chunk

    async def _publish_entry(self, client: aiomqtt.Client, entry: Entry) -> None:
        topic, payload = message_of(entry, self._prefix)
        await client.publish(topic, orjson.dumps(payload), qos=1, timeout=_PUBLISH_TIMEOUT)
        rule = payload.get("rule")
        if STREAM_OF[entry.type] == _ALARMS and self._latest.get(str(rule)) == entry.seq:
            await self._publish_state(client, str(rule), payload)

    async def _publish_state(
        self, client: aiomqtt.Client, rule: str, payload: dict[str, object]
    ) -> None:
        state = alarm_state_payload(payload)
        await client.publish(
            f"{self._prefix}/alarm_states/{rule}",
            orjson.dumps(state) if state is not None else b"",
            qos=1,
            retain=True,
            timeout=_PUBLISH_TIMEOUT,
        )

    async def _publish_states(self, client: aiomqtt.Client) -> None:
        """Retained states of the alarms whose latest transition was delivered already.

        The broker may have lost its retained messages (restarted without persistence); the
        others are published when their transitions are delivered.
        """
        store = self._store
        if store is None:
            return
        cursor = self.streams[_ALARMS].cursor
        for rule, seq in sorted(self._latest.items()):
            if seq > cursor:
                continue
            entry = await asyncio.to_thread(store.entry, seq)
            if entry is None:  # still in the commit journal: have it moved in, then read it
                await self._sync_ledger()
                entry = await asyncio.to_thread(store.entry, seq)
            if entry is not None:
                await self._publish_state(client, rule, message_of(entry, self._prefix)[1])

    async def _persist_cursors(self) -> None:
        while True:
            await asyncio.sleep(self._cursor_interval)
            await self.save_cursors()

    async def save_cursors(self) -> None:
        """Write the cursors that moved since the last write (a failure is logged; retried)."""
        if self._store is None:
            return
        moved = {n: s.cursor for n, s in self.streams.items() if s.dirty}
        if not moved:
            return
        for n in moved:
            self.streams[n].dirty = False
        try:
            await asyncio.to_thread(self._store.save, moved, time.time())
        except StorageError as exc:
            for n in moved:
                self.streams[n].dirty = True
            event("mqtt.cursor_save_failed", logging.WARNING, error=str(exc))

    # -- telemetry ----------------------------------------------------------------------------

    async def _telemetry_loop(self, client: aiomqtt.Client) -> None:
        telemetry = self.telemetry
        assert telemetry is not None
        every = self._config.telemetry_interval
        while True:
            await asyncio.sleep(every)
            for device, body in telemetry.take(self._node_id):
                await client.publish(
                    f"{self._prefix}/telemetry/{device}", orjson.dumps(body), qos=0,
                    timeout=_PUBLISH_TIMEOUT,
                )  # fmt: skip
                self.stats.telemetry_published += 1
                self.stats.telemetry_readings += len(body["readings"])

    async def _notice_loop(self, client: aiomqtt.Client) -> None:
        while True:
            while self._notices:
                alert = self._notices[0]
                await client.publish(
                    f"{self._prefix}/{alert.suffix}", orjson.dumps(alert.body), qos=1,
                    timeout=_PUBLISH_TIMEOUT,
                )  # fmt: skip
                if self._notices and self._notices[0] is alert:  # (not dropped meanwhile)
                    self._notices.popleft()
            self._notice_ready.clear()
            await self._notice_ready.wait()

    # -- shutdown -----------------------------------------------------------------------------

    async def close(self, grace: float) -> None:
        """Give waiting entries up to ``grace`` seconds, say ``offline``, store the cursors."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                while self.connected and self.pending:
                    self._acked.clear()
                    await self._acked.wait()
        client = self._client
        if client is not None and self.connected:
            bye = status_payload(self._node_id, "offline", reason="stopped",
                                 ts=format_ts(time.time()))  # fmt: skip
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await client.publish(
                    f"{self._prefix}/status", orjson.dumps(bye), qos=1, retain=True, timeout=2.0
                )
        await self.save_cursors()
        if self._store is not None:
            self._store.close()

    # -- commands -----------------------------------------------------------------------------

    async def _command_loop(self, client: aiomqtt.Client) -> None:
        assert self._on_command is not None
        prefix = self._prefix
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
