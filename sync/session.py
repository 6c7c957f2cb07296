"""The parts of a sync session that need no service state: the MQTT 5 client, answers, keys.

:func:`make_client` builds the broker connection ``[sync]`` describes (TLS with a CA, a client
certificate, or username/password); :func:`answer` streams the answer to one range request
(docs/reference/sync.md, "``Q`` request"); :func:`correlation` and :func:`key_of` turn a
request's number into correlation data and back.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from collections.abc import Awaitable, Callable

import aiomqtt

from edge.config import SyncConfig
from edge.ledger.replica import Replica
from edge.mqtt_client import Client
from edge.sync import wire

__all__ = ["READ_BYTES", "answer", "correlation", "key_of", "make_client", "read_encoded"]

READ_BYTES = 4 * 1024 * 1024  #: canonical bytes per entries message
_QUEUED_IN = 10_000  #: messages the MQTT client holds for us (it drops beyond, with a log line)


def make_client(config: SyncConfig, node_id: str) -> aiomqtt.Client:
    """The MQTT 5 client of a sync session (TLS when a CA or client certificate is given)."""
    c = config
    tls: ssl.SSLContext | None = None
    if c.ca_file is not None or c.cert_file is not None:
        tls = ssl.create_default_context(cafile=str(c.ca_file) if c.ca_file else None)
        if c.cert_file is not None:
            tls.load_cert_chain(str(c.cert_file), str(c.key_file) if c.key_file else None)
    return Client(
        c.host,
        c.port,
        identifier=c.client_id or f"sync-{node_id}",
        username=c.username or None,
        password=c.password or None,
        keepalive=int(c.keepalive),
        timeout=10.0,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=tls,
        max_queued_incoming_messages=_QUEUED_IN,
    )


def correlation(session: bytes, key: int) -> bytes:
    """Correlation data of request ``key`` of a session (8 random bytes + the key)."""
    return session + struct.pack(">Q", key)


def key_of(session: bytes, corr: object) -> int:
    """The request key in correlation data of this session; 0 for anything else."""
    if not isinstance(corr, bytes | bytearray) or len(corr) != 16 or bytes(corr[:8]) != session:
        return 0
    return int(struct.unpack(">Q", corr[8:])[0])


def read_encoded(replica: Replica, feed: str, start: int, n: int, size: int) -> tuple[bytes, int]:
    """An ``E`` message of up to ``n`` entries of ``feed`` from ``start`` (ending on a checkpoint)."""
    raws = replica.read_range(feed, start, max_entries=n, max_bytes=READ_BYTES)
    return wire.encode_entries(feed, start, raws, size=size), len(raws)


async def answer(
    replica: Replica,
    config: SyncConfig,
    req: wire.Request,
    send: Callable[[bytes], Awaitable[None]],
) -> int:
    """Stream the answer to ``req`` through ``send``; the entries sent.

    Messages of at most ``batch_max`` entries, each ending on a checkpoint, at most
    4 x ``request_max`` entries in all, then an empty message with ``last``; a feed not held
    (or not trusted, or not from ``start``) is one empty ``last`` message with ``not held``.
    """
    head = await asyncio.to_thread(replica.head, req.feed)
    if head is None or not replica.trusted(req.feed) or req.start >= head.end:
        await send(wire.encode_entries(req.feed, req.start, (), size=head.end if head else 0,
                                       last=True, error="not held"))  # fmt: skip
        return 0
    limit = min(req.end if req.end is not None else head.end, head.end)
    most = min(req.max or config.request_max, config.request_max * 4)
    start, sent = req.start, 0
    while start < limit and sent < most:
        n = min(config.batch_max, most - sent)
        payload, count = await asyncio.to_thread(
            read_encoded, replica, req.feed, start, n, head.end
        )
        if not count:
            break
        await send(payload)
        start += count
        sent += count
    await send(wire.encode_entries(req.feed, start, (), size=head.end, last=True))
    return sent
