"""What a sync session sends: pushes of our feed, heads, cosignatures and answers.

:class:`Outbound` is a mixin of :class:`~edge.sync.service.SyncService` (its attributes are the
service's, set in ``SyncService.__init__``): the session's sending tasks. Our feed is pushed
from the node's writer (:mod:`edge.sync.push`) or, without one, read from the database; heads
are announced retained, twice a second at most; the latest checkpoint stored of each other feed
is cosigned once a second at most; range requests are answered from the database (our own
feed's journal moved there first when the answer needs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.config import SyncConfig
from edge.errors import EdgeError
from edge.ledger.replica import Replica
from edge.sync import wire
from edge.sync.catchup import Planner
from edge.sync.push import LivePush
from edge.sync.session import answer, read_encoded
from edge.sync.stats import SyncStats
from edge.sync.topics import Topics

if TYPE_CHECKING:
    from edge.ledger.writer import LedgerWriter

__all__ = ["Outbound"]

_OWN_SYNC_EVERY = 2.0  # seconds between journal moves asked for answers of our own feed


class Outbound:
    """The sending side of :class:`~edge.sync.service.SyncService`."""

    # the service's (edge.sync.service.SyncService.__init__)
    config: SyncConfig
    node_id: str
    feed: str
    stats: SyncStats
    topics: Topics
    planner: Planner
    _writer: LedgerWriter | None
    _live: LivePush | None
    _db_pushed: int
    _own_synced: float
    _fetch_own: bool
    _nudge: asyncio.Event
    _announce: asyncio.Event
    _cosign_due: asyncio.Event
    _to_cosign: dict[str, bytes]
    _requests: asyncio.Queue[tuple[wire.Request, str, bytes, str]]

    if TYPE_CHECKING:

        @property
        def _replica(self) -> Replica: ...

        def _feed_stat(self, feed: str) -> None: ...

        def _bad(self, reason: str, where: str, detail: str) -> None: ...

        def _log_once(self, where: str, reason: str, **fields: Any) -> None: ...

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
                if req.feed == self.feed:
                    await self._own_in_database(req.start)
                self.stats.inc(
                    "entries_served", await answer(self._replica, self.config, req, send)
                )
            except EdgeError as exc:
                self._bad("answer_failed", req.feed, str(exc))
            self.stats.inc("requests_answered")

    async def _own_in_database(self, start: int) -> None:
        """Before answering for our own feed from ``start``: have the writer move its journal.

        A peer asks for our entries after a gap in our pushes (dropped, or before it was
        connected); those may be durable in the commit journal only. A move costs the card a
        transaction, so at most one every couple of seconds: a request meanwhile waits for it
        (answered "not held", the peer would avoid us for 30 s, and only we may hold these).
        """
        writer = self._writer
        if writer is None or start >= writer.size:
            return
        if start < await asyncio.to_thread(self._replica.end, self.feed):
            return  # the database holds where the answer starts: it ends on a checkpoint there
        wait = self._own_synced + _OWN_SYNC_EVERY - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if start < await asyncio.to_thread(self._replica.end, self.feed):
            return  # the database holds where the answer starts: it ends on a checkpoint there
        self._own_synced = time.monotonic()
        try:
            async with asyncio.timeout(10.0):
                await writer.sync()
        except (EdgeError, TimeoutError) as exc:  # answered with what the database holds
            self._log_once(self.feed, "own_sync", detail=str(exc) or "timed out")

    # -- outbound -------------------------------------------------------------------------------

    async def _push_loop(self, client: aiomqtt.Client) -> None:
        c = self.config
        if self._live is None:
            head = await asyncio.to_thread(self._replica.head, self.feed)
            self._db_pushed = max(self._db_pushed, head.end if head is not None else 0)
        live = self._live
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(c.push_interval):
                    if live is not None:
                        await live.ready.wait()
                    else:
                        await self._nudge.wait()
            self._nudge.clear()
            if self._fetch_own:
                continue  # restoring: our feed is not ours to push yet
            if live is not None:
                live.ready.clear()
                await self._push_live(client, live)
            else:
                await self._push_from_database(client)

    async def _push_live(self, client: aiomqtt.Client, live: LivePush) -> None:
        """Push the signed runs the writer made durable (from memory, not the database)."""
        while (run := live.take(self.config.batch_max)) is not None:
            start, raws = run
            payload = wire.encode_entries(self.feed, start, raws, size=live.signed_end)
            await self._publish(client, self.topics.live(self.feed), payload)
            live.done(run)
            self.stats.inc("entries_pushed", len(raws))
            self._announce.set()
        self.stats.counters["entries_push_dropped"] = live.dropped

    async def _push_from_database(self, client: aiomqtt.Client) -> None:
        """Without a writer to follow: push what the database holds beyond what was pushed."""
        c = self.config
        head = await asyncio.to_thread(self._replica.head, self.feed)
        while head is not None and head.end > self._db_pushed:
            payload, count = await asyncio.to_thread(
                read_encoded, self._replica, self.feed, self._db_pushed, c.batch_max, head.end
            )
            if not count:
                break
            await self._publish(client, self.topics.live(self.feed), payload)
            self.stats.inc("entries_pushed", count)
            self._db_pushed += count
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
        live = self._live
        own_done = False
        for h in await asyncio.to_thread(replica.heads):
            if not replica.trusted(h.feed) or h.checkpoint is None:
                continue
            if h.feed == self.feed:
                if self._fetch_own:
                    continue  # restoring: what we hold of our feed is not our head
                if live is not None and live.checkpoint is not None and live.signed_end > h.end:
                    continue  # the writer's journal holds more: announced below
                own_done = True
            msg = wire.Head(self.node_id, self.feed, h.feed, h.end, h.checkpoint.raw,
                            tuple(c.to_json() for c in h.cosignatures))  # fmt: skip
            await self._publish(
                client, self.topics.head(h.feed), wire.encode_head(msg), retain=True
            )
            self.planner.held(h.feed, max(h.end, self.planner.local.get(h.feed, 0)))
            self._feed_stat(h.feed)
        if not own_done and live is not None and live.checkpoint is not None:
            # our head is the last checkpoint the writer made durable (in the journal, maybe
            # not yet in the database); cosignatures of it come with the next announcement
            msg = wire.Head(
                self.node_id, self.feed, self.feed, live.signed_end, live.checkpoint, ()
            )
            await self._publish(
                client, self.topics.head(self.feed), wire.encode_head(msg), retain=True
            )
        self.stats.inc("announcements")

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
