"""The sync task of a node: one MQTT 5 session that replicates ledgers (docs/reference/sync.md).

It announces the node's head of every trusted feed it holds (retained), pushes new entries of
its own feed live, answers range requests for any trusted feed it holds, requests what it lacks
from peers (:mod:`edge.sync.catchup`), and publishes its cosignature of every foreign
checkpoint it verified and stored. What arrives is verified by the ledger
(:class:`edge.ledger.replica.Replica`) before anything is stored; what does not parse, or
claims another feed than its topic, is counted and dropped here. Nothing a peer sends can stop
the task: every handler catches what it may raise, queues are bounded and drops are counted.

Work is split into tasks of one TaskGroup per broker session: the receive loop (decodes and
routes; never waits on the disk), the apply worker (verifies and stores entries messages in
order, in a thread), the responder (reads and compresses answers, in a thread), the pusher, the
announcer and the catch-up planner. The session is re-opened with backoff when the broker goes
away; retained heads bring a reconnecting node up to date.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.config import SyncConfig
from edge.errors import BrokerError, EdgeError
from edge.ledger.keys import NodeKey
from edge.ledger.replica import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, Replica
from edge.ledger.replica_types import (
    Checkpoint,
    CosignResult,
    Outcome,
    PendingRecord,
)
from edge.ledger.replica_types import Cosignature as LedgerCosignature
from edge.ledger.trust import TrustList
from edge.log import event
from edge.sync import wire
from edge.sync.catchup import Planner
from edge.sync.session import answer, correlation, key_of, make_client, read_encoded
from edge.sync.stats import SyncStats
from edge.sync.topics import Topics

__all__ = ["AlarmHandler", "RecordHandler", "SyncService"]

#: ``on_alarm(kind, fields)``: something a person must look at (fork, tampering, rollback)
AlarmHandler = Callable[[str, dict[str, Any]], None]
#: ``await on_record(record)`` appends a sync record on our feed; returns its entry id
RecordHandler = Callable[[PendingRecord], Awaitable[str]]

_APPLY_QUEUE = 64  # entries messages waiting for the disk (each at most batch_max entries)
_REQUEST_QUEUE = 16  # range requests waiting to be answered
_BUFFER_MAX = 32  # live messages held per feed while the gap before them is fetched
_BUFFER_BYTES = 8 * 1024 * 1024  # and their canonical bytes (not yet verified: anyone's)


@dataclass(frozen=True, slots=True)
class _Batch:
    feed: str
    start: int
    raws: tuple[bytes, ...]
    source: str  #: the node it came from
    key: int = 0  #: the range request it answers (0: a live push)


class SyncService:
    """Replicates this node's ledger with its peers through one broker (see the module doc).

    Args:
        config: the ``[sync]`` table.
        node_id: this node's name on the topics (``[node] id``).
        key: the node key (its feed is "our feed"; cosignatures are made with it).
        db_path: the ledger database.
        trust: the trust list (our own key included).
        on_alarm: called for forks, tampered feeds, conflicting cosignatures, rollbacks.
        on_record: appends a sync record (``ledger.fork``, ...) on our feed; None: not recorded
            by this service (a restore at start leaves them for the running node).
        own_feed: fetch our own feed from peers too (a restore at start, before the writer
            opens); a running node never does (its writer would be stale).
        take_lock: open the ledger as its single writer (no LedgerWriter in this process).
    """

    def __init__(
        self,
        config: SyncConfig,
        node_id: str,
        key: NodeKey,
        db_path: Path,
        trust: TrustList,
        *,
        on_alarm: AlarmHandler | None = None,
        on_record: RecordHandler | None = None,
        own_feed: bool = False,
        take_lock: bool = False,
    ) -> None:
        self.config = config
        self.node_id = node_id
        self.key = key
        self.feed = key.feed
        self.stats = SyncStats()
        self.topics = Topics(config.prefix, node_id)
        self._db_path = db_path
        self._trust = trust
        self._on_alarm = on_alarm
        self._on_record = on_record
        self._fetch_own = own_feed
        self._take_lock = take_lock
        self.replica: Replica | None = None
        self.planner = Planner(config.request_max, config.in_flight, config.request_timeout)
        self._apply: asyncio.Queue[_Batch] = asyncio.Queue(_APPLY_QUEUE)
        self._requests: asyncio.Queue[tuple[wire.Request, str, bytes, str]] = asyncio.Queue(
            _REQUEST_QUEUE
        )
        self._held: dict[str, dict[int, _Batch]] = {}  # feed -> start -> live batch past a gap
        self._nudge = asyncio.Event()
        self._to_cosign: dict[str, bytes] = {}  # feed -> its latest checkpoint stored here
        self._cosign_due = asyncio.Event()
        self._announce = asyncio.Event()
        self._session_id = os.urandom(8)
        self._logged: set[tuple[str, str]] = set()
        self.ready = asyncio.Event()  #: set once the first session subscribed
        self._pushed = 0  #: entries of our feed pushed live (or there before the session)
        #: ``on_stored(feed, end)`` after a batch is stored (benchmarks time replication by it)
        self.on_stored: Callable[[str, int], None] | None = None

    # -- public ---------------------------------------------------------------------------------

    def nudge(self) -> None:
        """New entries of our feed are durable: push them now rather than at the next poll."""
        self._nudge.set()

    async def flush(self, grace: float) -> None:
        """Give the entries of our feed not yet pushed up to ``grace`` seconds to go out (at stop)."""
        if not self.stats.connected or self.replica is None:
            return
        head = self.replica.head(self.feed)
        end = head.end if head is not None else 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                while self._pushed < end and self.stats.connected:
                    self._nudge.set()
                    await asyncio.sleep(0.02)

    def set_trust(self, trust: TrustList) -> None:
        """The trust list changed."""
        self._trust = trust
        if self.replica is not None:
            self.replica.set_trust(trust)

    async def open(self) -> Replica:
        """Open the ledger replica (done by :meth:`run` if not yet)."""
        if self.replica is None:
            self.replica = await asyncio.to_thread(
                Replica.open, self._db_path, self.key, self._trust, take_lock=self._take_lock
            )
        return self.replica

    def close(self) -> None:
        """Close the replica."""
        if self.replica is not None:
            self.replica.close()
            self.replica = None

    async def run(self) -> None:
        """Replicate until cancelled; reconnect with exponential backoff."""
        await self.open()
        backoff = 0.5
        try:
            while True:
                try:
                    await self._session()
                except BrokerError as exc:
                    event("sync.disconnected", logging.WARNING, error=str(exc),
                          retry_in=f"{backoff:g}s")  # fmt: skip
                finally:
                    self.stats.connected = False
                    self.planner.reset()  # answers to this session's requests will not come
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        finally:
            self.close()

    # -- the session ----------------------------------------------------------------------------

    async def _session(self) -> None:
        c = self.config
        where = f"sync broker {c.host}:{c.port}"
        try:
            async with make_client(self.config, self.node_id) as client:
                opts = SubscribeOptions(qos=1, noLocal=True)
                for topic in self.topics.subscriptions():
                    await client.subscribe(topic, options=opts)
                self.stats.connected = True
                event("sync.connected", broker=f"{c.host}:{c.port}", node=self.node_id)
                self.ready.set()
                self._announce.set()
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._receive(client), name="sync-receive")
                    tg.create_task(self._apply_loop(client), name="sync-apply")
                    tg.create_task(self._respond_loop(client), name="sync-respond")
                    tg.create_task(self._push_loop(client), name="sync-push")
                    tg.create_task(self._announce_loop(client), name="sync-announce")
                    tg.create_task(self._catchup_loop(client), name="sync-catchup")
                    tg.create_task(self._witness_loop(client), name="sync-witness")
                    if self._on_record is not None:
                        tg.create_task(self._record_loop(), name="sync-records")
        except* aiomqtt.MqttError as group:
            raise BrokerError(f"{where}: {group.exceptions[0]}") from None
        except* TimeoutError:
            raise BrokerError(f"{where}: timed out") from None
        except* (OSError, ssl.SSLError) as group:
            raise BrokerError(f"{where}: {group.exceptions[0]}") from None

    @property
    def _replica(self) -> Replica:
        assert self.replica is not None, "SyncService.open() first"
        return self.replica

    # -- inbound --------------------------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.stats.inc("messages_in")
            try:
                await self._route(message)
            except EdgeError as exc:  # the ledger refused a peer's claim: counted, logged once
                self._bad("refused", str(message.topic), str(exc))
            except Exception as exc:  # never let a peer's bytes stop the node
                self._bad("internal", str(message.topic), f"{type(exc).__name__}: {exc}")
            self.stats.inc("messages_routed")

    async def _route(self, message: aiomqtt.Message) -> None:
        topic = self.topics.parse(str(message.topic))
        if topic is None:
            self.stats.inc("bad.topic")
            return
        if topic.node == self.node_id and not (self._fetch_own and topic.kind == "head"):
            # our own retained messages, or a bridge sending ours back; at a restore our last
            # retained head of our own feed is evidence too (signed by our key)
            return
        payload = message.payload
        if not isinstance(payload, bytes | bytearray) or not payload:
            return  # a retained message cleared (aiomqtt gives bytes for anything else)
        try:
            msg = wire.decode(bytes(payload), max_size=self.config.message_max)
        except wire.WireError as exc:
            self._bad(exc.reason, str(message.topic), str(exc))
            return
        kind = topic.kind
        self.stats.inc("bytes_in", len(payload))
        if isinstance(msg, wire.Entries):
            self.stats.inc("entries_bytes_in", len(payload))
        if kind == "head" and isinstance(msg, wire.Head):
            if msg.node != topic.node or msg.feed != topic.arg:
                self._bad("spoofed", str(message.topic), "head names another node or feed")
                return
            await self._on_head(msg)
        elif kind == "cosig" and isinstance(msg, wire.Cosignature):
            if msg.node != topic.node:
                self._bad("spoofed", str(message.topic), "cosignature names another node")
                return
            await self._on_cosignature(msg)
        elif kind == "live" and isinstance(msg, wire.Entries):
            if msg.feed != topic.arg:
                self._bad("spoofed", str(message.topic), "entries of another feed")
                return
            self._queue(_Batch(msg.feed, msg.start, msg.raws, topic.node), drop=True)
        elif kind == "req" and isinstance(msg, wire.Request):
            self._on_request(msg, message.properties, topic.node)
        elif kind == "resp" and isinstance(msg, wire.Entries):
            self._on_response(msg, message.properties, topic.node)
        else:
            self._bad("wrong_kind", str(message.topic), f"{type(msg).__name__} on a {kind} topic")

    async def _on_head(self, h: wire.Head) -> None:
        if h.checkpoint is None:
            return
        cos = []
        for c in h.cosignatures:
            try:
                cos.append(LedgerCosignature.from_json(c))
            except EdgeError:
                self.stats.inc("bad.cosignature")
        # in a thread, as every ledger call: the replica's lock may be held by a long accept
        res = await asyncio.to_thread(
            self._replica.record_peer_head, h.peer, h.checkpoint, now=time.time(),
            cosignatures=tuple(cos),
        )  # fmt: skip
        if not res.accepted:
            self.stats.inc(f"peer_head_rejected.{res.reason}")
            self._log_once(h.feed, f"head:{res.reason}", node=h.node)
            return
        self.stats.inc("heads_in")
        end = Checkpoint.from_raw(h.checkpoint).end
        if res.fork:
            self._alarm("fork", feed=h.feed, peer=h.node, detail="a peer's checkpoint conflicts")
        if res.own_behind:
            self._alarm("own_behind", feed=h.feed, peer=h.node, peer_end=end,
                        detail="peers hold more of our feed than we do")  # fmt: skip
        if (h.feed != self.feed or self._fetch_own) and h.node != self.node_id:
            self.planner.announced(h.feed, h.node, end)
            self._feed_stat(h.feed)

    async def _on_cosignature(self, c: wire.Cosignature) -> None:
        try:
            cos = LedgerCosignature.from_json(c.cosignature)
        except EdgeError as exc:
            self._bad("malformed", f"cosig from {c.node}", str(exc))
            return
        result = await asyncio.to_thread(self._replica.add_cosignature, cos, now=time.time())
        self.stats.inc(f"cosignatures_in.{result}")
        if result == CosignResult.CONFLICT:
            self._alarm("conflicting_cosignature", feed=cos.feed, witness=cos.witness, peer=c.node)

    def _on_request(self, r: wire.Request, props: Properties | None, sender: str) -> None:
        corr = getattr(props, "CorrelationData", None)
        reply = getattr(props, "ResponseTopic", None)
        if (
            not corr
            or len(corr) > 64
            or reply != f"{self.topics.base}/{self.node_id}/resp/{sender}"
        ):
            self._bad(
                "bad_request",
                f"request from {sender}",
                "no correlation data or wrong response topic",
            )
            return
        try:
            self._requests.put_nowait((r, reply, bytes(corr), sender))
        except asyncio.QueueFull:
            self.stats.inc("requests_dropped")

    def _on_response(self, e: wire.Entries, props: Properties | None, sender: str) -> None:
        corr = getattr(props, "CorrelationData", None)
        key = key_of(self._session_id, corr)
        ask = self.planner.progress(key, time.monotonic()) if key else None
        if ask is None or ask.peer != sender or ask.feed != e.feed:
            self.stats.inc("responses_unexpected")  # late (timed out, asked elsewhere) or replayed
            return
        if e.error:
            self.planner.failed(key, time.monotonic())
            self.stats.inc("responses_refused")
            return
        if e.raws:
            self._queue(_Batch(e.feed, e.start, e.raws, sender, key), drop=False)
        if e.last:
            self.planner.answered(key)
            received = e.start + len(e.raws)
            if received > self.planner.local.get(e.feed, 0):
                self.planner.held(e.feed, received)  # ask for the next window now

    def _queue(self, batch: _Batch, *, drop: bool) -> None:
        if batch.feed == self.feed and not self._fetch_own:
            # our writer appends our feed; a copy from a peer can only repeat it (or, if the
            # peer is ahead, is for the restore at start: the own_behind alarm says so)
            self.stats.inc("own_feed_ignored")
            return
        try:
            self._apply.put_nowait(batch)
        except asyncio.QueueFull:
            # an answer is worth keeping (it was asked for): the oldest live push goes instead
            self.stats.inc("batches_dropped")
            if drop:
                return
            with contextlib.suppress(asyncio.QueueEmpty):
                self._apply.get_nowait()
            self._apply.put_nowait(batch)
        self.stats.queued = self._apply.qsize()

    # -- apply (verify + store) -----------------------------------------------------------------

    async def _apply_loop(self, client: aiomqtt.Client) -> None:
        peeked: _Batch | None = None
        while True:
            batch = peeked or await self._apply.get()
            peeked = None
            # Consecutive batches of one feed waiting together are stored in one transaction:
            # one fsync instead of one per message (live pushes of a busy feed, an answer's
            # stream); the ledger verifies every checkpoint inside either way.
            parts = [batch]
            count, size = len(batch.raws), sum(map(len, batch.raws))
            while not self._apply.empty():
                nxt = self._apply.get_nowait()
                last = parts[-1]
                if (
                    nxt.feed != batch.feed
                    or nxt.start != last.start + len(last.raws)
                    or count + len(nxt.raws) > MAX_BATCH_ENTRIES
                    or size + sum(map(len, nxt.raws)) > MAX_BATCH_BYTES // 2
                ):
                    peeked = nxt
                    break
                parts.append(nxt)
                count += len(nxt.raws)
                size += sum(map(len, nxt.raws))
            if len(parts) > 1:
                raws = tuple(r for p in parts for r in p.raws)
                key = next((p.key for p in parts if p.key), 0)
                batch = _Batch(batch.feed, batch.start, raws, batch.source, key)
                self.stats.inc("batches_merged", len(parts) - 1)
            self.stats.queued = self._apply.qsize()
            try:
                await self._apply_one(client, batch)
            except EdgeError as exc:  # the disk failed under the ledger: logged, sync goes on
                self._bad("store_failed", batch.feed, str(exc))
            self._feed_stat(batch.feed)

    async def _apply_one(self, client: aiomqtt.Client, batch: _Batch) -> None:
        replica = self._replica
        res = await asyncio.to_thread(
            replica.accept, batch.feed, batch.start, list(batch.raws), now=time.time(),
            source=batch.source,
        )  # fmt: skip
        self.stats.inc(f"batches.{res.outcome}")
        if res.outcome == Outcome.STORED:
            self.stats.inc("entries_stored", res.stored)
            if self.on_stored is not None:
                self.on_stored(res.feed, res.end)
            self._announce.set()
            if res.feed != self.feed:  # cosigned by the witness task: the latest, once a second
                self._to_cosign[res.feed] = batch.raws[-1]
                self._cosign_due.set()
            await self._drain_held(client, res.feed, res.end)
        elif res.outcome == Outcome.GAP:
            held = self._held.setdefault(batch.feed, {})
            size = sum(len(r) for b in held.values() for r in b.raws)
            size += sum(map(len, batch.raws))
            if batch.key == 0 and len(held) < _BUFFER_MAX and size <= _BUFFER_BYTES:
                held[batch.start] = batch
            else:
                self.stats.inc("buffer_full")
            # fetch the gap from whoever pushed it (their checkpoint says how far they are)
            self.planner.announced(batch.feed, batch.source, batch.start + len(batch.raws))
            self.planner.held(batch.feed, res.end)
        elif res.outcome == Outcome.REJECTED:
            self.stats.inc(f"rejected.{res.reason}")
            self._log_once(batch.feed, str(res.reason), node=batch.source, detail=res.detail)
            if res.alarm:
                self._alarm("rejected", feed=batch.feed, peer=batch.source,
                            reason=str(res.reason), detail=res.detail)  # fmt: skip
            self.planner.held(batch.feed, res.end)
            if batch.key:
                self.planner.failed(batch.key, time.monotonic())
        elif res.outcome == Outcome.FORK:
            self._alarm("fork", feed=batch.feed, peer=batch.source, detail=res.detail)
            self.planner.held(batch.feed, res.end)
        if res.outcome != Outcome.GAP and self.planner.local.get(batch.feed, 0) < res.end:
            self.planner.held(batch.feed, res.end)

    async def _drain_held(self, client: aiomqtt.Client, feed: str, end: int) -> None:
        """Apply the live batches held past a gap that the store now reaches."""
        held = self._held.get(feed)
        for s in sorted(held or ()):
            if s > end:
                return
            assert held is not None
            batch = held.pop(s)
            if s + len(batch.raws) > end:
                await self._apply_one(client, batch)  # it drains what follows it
                return

    async def _witness_loop(self, client: aiomqtt.Client) -> None:
        """Cosign the latest checkpoint stored of each feed, at most once a second per feed.

        A cosignature of a checkpoint vouches for everything before it (the ledger checked the
        whole feed up to it), so the latest is enough; signing every batch would cost a write
        (and an fsync) per batch on the path that stores them.
        """
        while True:
            await self._cosign_due.wait()
            self._cosign_due.clear()
            todo, self._to_cosign = self._to_cosign, {}
            for raw in todo.values():
                await self._cosign(client, raw)
            await asyncio.sleep(1.0)

    async def _cosign(self, client: aiomqtt.Client, checkpoint_raw: bytes) -> None:
        cos = await asyncio.to_thread(self._replica.cosign, checkpoint_raw, now=time.time())
        if cos is None:
            return
        payload = wire.encode_cosignature(wire.Cosignature(self.node_id, cos.to_json()))
        await self._publish(client, self.topics.cosig(cos.feed), payload, retain=True)
        self.stats.inc("cosignatures_out")

    # -- answers ----------------------------------------------------------------------------------

    async def _respond_loop(self, client: aiomqtt.Client) -> None:
        while True:
            req, reply, corr, _sender = await self._requests.get()
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.CorrelationData = corr

            async def send(payload: bytes, reply: str = reply, props: Properties = props) -> None:
                await self._publish(client, reply, payload, properties=props)

            try:
                self.stats.inc(
                    "entries_served", await answer(self._replica, self.config, req, send)
                )
            except EdgeError as exc:
                self._bad("answer_failed", req.feed, str(exc))
            self.stats.inc("requests_answered")

    # -- outbound -------------------------------------------------------------------------------

    async def _push_loop(self, client: aiomqtt.Client) -> None:
        replica = self._replica
        head = await asyncio.to_thread(replica.head, self.feed)
        self._pushed = head.end if head is not None else 0
        c = self.config
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(c.push_interval):
                    await self._nudge.wait()
            self._nudge.clear()
            if self._fetch_own:
                continue  # restoring: our feed is not ours to push yet
            head = await asyncio.to_thread(replica.head, self.feed)
            while head is not None and head.end > self._pushed:
                payload, count = await asyncio.to_thread(
                    read_encoded, self._replica, self.feed, self._pushed, c.batch_max, head.end
                )
                if not count:
                    break
                await self._publish(client, self.topics.live(self.feed), payload)
                self.stats.inc("entries_pushed", count)
                self._pushed += count
                self._announce.set()

    async def _announce_loop(self, client: aiomqtt.Client) -> None:
        last = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.announce_interval):
                    await self._announce.wait()
            # at most two rounds a second: a live feed changes its head every batch
            await asyncio.sleep(max(0.0, last + 0.5 - time.monotonic()))
            self._announce.clear()
            last = time.monotonic()
            await self._announce_heads(client)

    async def _announce_heads(self, client: aiomqtt.Client) -> None:
        replica = self._replica
        for h in await asyncio.to_thread(replica.heads):
            if not replica.trusted(h.feed) or h.checkpoint is None:
                continue
            if h.feed == self.feed and self._fetch_own:
                continue  # restoring: what we hold of our feed is not our head
            msg = wire.Head(self.node_id, self.feed, h.feed, h.end, h.checkpoint.raw,
                            tuple(c.to_json() for c in h.cosignatures))  # fmt: skip
            await self._publish(
                client, self.topics.head(h.feed), wire.encode_head(msg), retain=True
            )
            self.planner.held(h.feed, max(h.end, self.planner.local.get(h.feed, 0)))
            self._feed_stat(h.feed)
        self.stats.inc("announcements")

    async def _catchup_loop(self, client: aiomqtt.Client) -> None:
        while True:
            for ask in self.planner.plan(time.monotonic()):
                props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                props.ResponseTopic = self.topics.response_to(ask.peer)
                props.CorrelationData = correlation(self._session_id, ask.key)
                req = wire.Request(ask.feed, ask.start, ask.end, ask.end - ask.start)
                await self._publish(client, self.topics.request(ask.peer), wire.encode_request(req),
                                    properties=props)  # fmt: skip
                self.stats.inc("requests_sent")
            self.stats.outstanding = self.planner.outstanding()
            self.stats.inc("timeouts", self.planner.timeouts - self.stats.counters["timeouts"])
            await asyncio.sleep(0.05)

    async def _record_loop(self) -> None:
        assert self._on_record is not None
        while True:
            for rec in await asyncio.to_thread(self._replica.pending_records):
                entry_id = await self._on_record(rec)
                await asyncio.to_thread(self._replica.mark_recorded, rec.key, entry_id)
            await asyncio.sleep(1.0)

    async def _publish(
        self,
        client: aiomqtt.Client,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        async with asyncio.timeout(30.0):
            await client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        self.stats.inc("messages_out")
        self.stats.inc("bytes_out", len(payload))

    # -- helpers --------------------------------------------------------------------------------

    def _feed_stat(self, feed: str) -> None:
        if self.replica is None or not self.replica.trusted(feed):
            return  # feeds named by strangers are counted, not tracked
        best = max(self.planner.peers.get(feed, {}).values(), default=0)
        self.stats.feeds[feed] = (self.planner.local.get(feed, 0), best)

    def _bad(self, reason: str, where: str, detail: str) -> None:
        self.stats.inc(f"bad.{reason}")
        self._log_once(where, reason, detail=detail)

    def _log_once(self, where: str, reason: str, **fields: Any) -> None:
        if (where, reason) in self._logged or len(self._logged) > 10_000:
            return
        self._logged.add((where, reason))
        event("sync.ignored", logging.WARNING, where=where, reason=reason, **fields)

    def _alarm(self, kind: str, **fields: Any) -> None:
        self.stats.inc(f"alarms.{kind}")
        event(f"sync.{kind}", logging.ERROR, **fields)
        if self._on_alarm is not None:
            self._on_alarm(kind, fields)
