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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.cancel import run_session
from edge.config import SyncConfig
from edge.errors import BrokerError, EdgeError
from edge.ledger.keys import NodeKey
from edge.ledger.replica import Replica
from edge.ledger.replica_record import record_pending
from edge.ledger.replica_types import Checkpoint, CosignResult, Outcome
from edge.ledger.replica_types import Cosignature as LedgerCosignature
from edge.ledger.trust import TrustList
from edge.log import event
from edge.sync import wire
from edge.sync.apply import Batch, HeldBatches, merge_queued
from edge.sync.catchup import Planner
from edge.sync.outbound import Outbound
from edge.sync.push import LivePush
from edge.sync.session import correlation, key_of, make_client
from edge.sync.stats import SyncStats
from edge.sync.topics import Topics

if TYPE_CHECKING:
    from edge.ledger.writer import LedgerWriter

__all__ = ["AlarmHandler", "SyncService"]

#: ``on_alarm(kind, fields)``: something a person must look at (fork, tampering, rollback)
AlarmHandler = Callable[[str, dict[str, Any]], None]

_APPLY_QUEUE = 64  # entries messages waiting for the disk (each at most batch_max entries)
_REQUEST_QUEUE = 16  # range requests waiting to be answered


class SyncService(Outbound):
    """Replicates this node's ledger with its peers through one broker (see the module doc).

    Args:
        config: the ``[sync]`` table.
        node_id: this node's name on the topics (``[node] id``).
        key: the node key (its feed is "our feed"; cosignatures are made with it).
        db_path: the ledger database.
        trust: the trust list (our own key included).
        on_alarm: called for forks, tampered feeds, conflicting cosignatures, rollbacks.
        writer: the node's running ledger writer (None: a restore at start, a replica on its
            own). Given, our feed is pushed from its durable batches (:mod:`edge.sync.push`),
            the replica counts its durable size as ours (entries in the commit journal are no
            rollback), sync events are recorded on our feed through it
            (:func:`~edge.ledger.replica_record.record_pending`), and it signs small batches
            soon while a broker session is up (:meth:`LedgerWriter.sign_for_peers`).
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
        writer: LedgerWriter | None = None,
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
        self._writer = writer
        self._live: LivePush | None = None  # our feed from the writer (None: from the database)
        self._own_synced = 0.0  # monotonic time of the last journal move asked for an answer
        self._fetch_own = own_feed
        self._take_lock = take_lock
        self.replica: Replica | None = None
        self.planner = Planner(config.request_max, config.in_flight, config.request_timeout)
        self._apply: asyncio.Queue[Batch] = asyncio.Queue(_APPLY_QUEUE)
        self._requests: asyncio.Queue[tuple[wire.Request, str, bytes, str]] = asyncio.Queue(
            _REQUEST_QUEUE
        )
        self._held = HeldBatches()  # live batches past a gap
        self._nudge = asyncio.Event()
        self._to_cosign: dict[str, bytes] = {}  # feed -> its latest checkpoint stored here
        self._cosign_due = asyncio.Event()
        self._announce = asyncio.Event()
        self._session_id = os.urandom(8)
        self._logged: set[tuple[str, str]] = set()
        self.ready = asyncio.Event()  #: set once the first session subscribed
        self._db_pushed = 0  # entries of our feed pushed, read from the database (no writer)
        #: ``on_stored(feed, end)`` after a batch is stored (benchmarks time replication by it)
        self.on_stored: Callable[[str, int], None] | None = None

    # -- public ---------------------------------------------------------------------------------

    def nudge(self) -> None:
        """New entries of our feed are durable: push them now rather than at the next poll."""
        self._nudge.set()

    async def flush(self, grace: float) -> None:
        """Give the entries of our feed not yet pushed up to ``grace`` seconds to go out (at stop).

        With the writer, what it holds unsigned is signed first (and the journal moved, as the
        stop would do a moment later), so the node's last entries reach peers now.
        """
        if not self.stats.connected or self.replica is None:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                if self._writer is not None:
                    with contextlib.suppress(EdgeError):
                        await self._writer.sync()
                    end = self._writer.size
                else:
                    head = await asyncio.to_thread(self.replica.head, self.feed)
                    end = head.end if head is not None else 0
                while self._pushed < end and self.stats.connected:
                    self._nudge.set()
                    await asyncio.sleep(0.02)

    @property
    def _pushed(self) -> int:
        return self._live.pushed if self._live is not None else self._db_pushed

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
            writer = self._writer
            if writer is not None:
                # entries durable in the commit journal are ours, not a rollback peers show us
                self.replica.follow_writer(lambda: writer.size)
                if self._live is None:
                    self._live = LivePush(self.feed, writer.size)
                    writer.add_listener(self._live.on_durable)
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
                    await run_session(self._session(), "sync-connection")  # edge.cancel: why
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
                if self._writer is not None:
                    self._writer.sign_for_peers(True)  # pushed entries need a checkpoint soon
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._receive(client), name="sync-receive")
                    tg.create_task(self._apply_loop(client), name="sync-apply")
                    tg.create_task(self._respond_loop(client), name="sync-respond")
                    tg.create_task(self._push_loop(client), name="sync-push")
                    tg.create_task(self._announce_loop(client), name="sync-announce")
                    tg.create_task(self._catchup_loop(client), name="sync-catchup")
                    tg.create_task(self._witness_loop(client), name="sync-witness")
                    if self._writer is not None:
                        tg.create_task(self._record_loop(), name="sync-records")
        except* aiomqtt.MqttError as group:
            raise BrokerError(f"{where}: {group.exceptions[0]}") from None
        except* TimeoutError:
            raise BrokerError(f"{where}: timed out") from None
        except* (OSError, ssl.SSLError) as group:
            raise BrokerError(f"{where}: {group.exceptions[0]}") from None
        finally:
            if self._writer is not None:  # nobody to push to: back to the journal's pace
                self._writer.sign_for_peers(False)

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
            self._queue(Batch(msg.feed, msg.start, msg.raws, topic.node), drop=True)
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
            self._queue(Batch(e.feed, e.start, e.raws, sender, key), drop=False)
        if e.last:
            self.planner.answered(key)
            received = e.start + len(e.raws)
            if received > self.planner.local.get(e.feed, 0):
                self.planner.held(e.feed, received)  # ask for the next window now

    def _queue(self, batch: Batch, *, drop: bool) -> None:
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
        peeked: Batch | None = None
        while True:
            batch, peeked, merged = merge_queued(peeked or await self._apply.get(), self._apply)
            if merged:
                self.stats.inc("batches_merged", merged)
            self.stats.queued = self._apply.qsize()
            try:
                await self._apply_one(client, batch)
            except EdgeError as exc:  # the disk failed under the ledger: logged, sync goes on
                self._bad("store_failed", batch.feed, str(exc))
            self._feed_stat(batch.feed)

    async def _apply_one(self, client: aiomqtt.Client, batch: Batch) -> None:
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
            if not self._held.keep(batch):
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
        batch = self._held.next_after(feed, end)
        if batch is not None:
            await self._apply_one(client, batch)  # it drains what follows it

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
        """Record what sync saw (forks, a restore) on our feed, through the writer."""
        assert self._writer is not None
        while True:
            await record_pending(self._replica, self._writer, now=time.time())
            await asyncio.sleep(1.0)

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
