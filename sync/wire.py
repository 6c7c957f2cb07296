"""Sync message formats, version 1 (pure: bytes in, values out; docs/reference/sync.md).

Every payload starts with two bytes: the format version (``0x01``) and the message kind (an
ASCII letter). What follows depends on the kind::

    H  head        JSON object: a node's head of one feed it holds (retained)
    C  cosignature JSON object: a node's cosignature of another feed's checkpoint (retained)
    Q  request     JSON object: "send me entries [from, to) of feed F" (MQTT 5 request/response)
    E  entries     u32 header length, JSON header, zlib stream of framed canonical entries

Entries travel as their canonical bytes (the bytes that were hashed), so a receiver recomputes
every id and checks the chain itself; nothing on the wire is trusted. In an ``E`` message with
``"elide": true`` every entry after the first has the 64 hex digits of its top-level ``prev``
removed (``"prev":""``): the receiver puts back the SHA-256 of the entry before it. The id of
the previous entry is the one part of an entry that deflate cannot shrink (32 random bytes as
hex); eliding it is what keeps the wire under half the canonical size for small entries.

Decoding never raises anything but :class:`WireError` (with a short ``reason`` used as a
counter name), whatever the bytes.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from edge.errors import SyncError

__all__ = [
    "VERSION",
    "Cosignature",
    "Entries",
    "Head",
    "Request",
    "WireError",
    "decode",
    "encode_cosignature",
    "encode_entries",
    "encode_head",
    "encode_request",
]

VERSION = 1
_HEX64 = re.compile(r"[0-9a-f]{64}")
_PREV = b'"prev":"'
_PREV_EMPTY = b'"prev":""'
#: a decompressed batch may not exceed this (a zip bomb is refused, not inflated)
MAX_INFLATED = 64 * 1024 * 1024
#: most entries one message may carry
MAX_ENTRIES = 100_000


class WireError(SyncError):
    """A sync message that is not a valid version-1 message; ``reason`` names why (a counter)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True, slots=True)
class Head:
    """What node ``node`` (whose own feed is ``peer``) holds of ``feed``: ``end`` entries.

    ``checkpoint`` is the canonical bytes of the last checkpoint entry it holds of the feed (a
    held feed always ends with one; None only when it holds nothing), ``cosignatures`` the
    cosignatures it holds of that checkpoint, in their JSON form (docs/reference/ledger.md).
    Only the checkpoint is evidence: it is signed by the feed's key, ``end`` is a hint.
    """

    node: str
    peer: str
    feed: str
    end: int
    checkpoint: bytes | None = None
    cosignatures: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Cosignature:
    """Node ``node`` publishes a cosignature (its JSON form, checked by the ledger)."""

    node: str
    cosignature: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Request:
    """Ask for entries ``start`` .. ``end - 1`` of ``feed`` (``end`` None: up to the head)."""

    feed: str
    start: int
    end: int | None
    max: int


@dataclass(frozen=True, slots=True)
class Entries:
    """A run of consecutive entries of one feed, starting at ``start`` (canonical bytes).

    ``size`` is the sender's size of the feed when it sent them (a hint for catch-up);
    ``last`` marks the last message answering a request; ``error`` is set on an answer that
    carries nothing (``"not held"``, ``"busy"``).
    """

    feed: str
    start: int
    raws: tuple[bytes, ...]
    size: int
    last: bool = False
    error: str = ""


def _preamble(kind: bytes) -> bytes:
    return bytes((VERSION,)) + kind


def encode_head(h: Head) -> bytes:
    """The ``H`` message for ``h``."""
    body: dict[str, Any] = {"node": h.node, "peer": h.peer, "feed": h.feed, "end": h.end}
    body["checkpoint"] = h.checkpoint.decode() if h.checkpoint is not None else None
    body["cosignatures"] = list(h.cosignatures)
    return _preamble(b"H") + orjson.dumps(body)


def encode_cosignature(c: Cosignature) -> bytes:
    """The ``C`` message for ``c``."""
    return _preamble(b"C") + orjson.dumps({"node": c.node, "cosignature": c.cosignature})


def encode_request(r: Request) -> bytes:
    """The ``Q`` message for ``r``."""
    return _preamble(b"Q") + orjson.dumps(
        {"feed": r.feed, "start": r.start, "end": r.end, "max": r.max}
    )


def encode_entries(
    feed: str,
    start: int,
    raws: Sequence[bytes],
    *,
    size: int,
    last: bool = False,
    error: str = "",
    level: int = 1,
) -> bytes:
    """The ``E`` message for consecutive entries of ``feed`` from ``start``.

    Args:
        feed: the feed the entries belong to (each entry names it too; a mismatch is spoofing).
        start: seq of ``raws[0]``.
        raws: canonical entry bytes, consecutive.
        size: the sender's size of the feed.
        last: the last message of an answer.
        error: why an answer carries no entries.
        level: zlib level (1: the fastest; the prev-elided stream compresses well at any level).
    """
    frames = bytearray()
    prev_raw: bytes | None = None
    for raw in raws:
        out = raw
        if prev_raw is not None:
            at = raw.rfind(_PREV)
            if at >= 0:
                hex_at = at + len(_PREV)
                if raw[hex_at : hex_at + 64] == hashlib.sha256(prev_raw).hexdigest().encode():
                    out = raw[:hex_at] + raw[hex_at + 64 :]
                else:  # not the chain (a fork, or damage): sent whole; the receiver judges
                    out = raw
        frames += _uvarint(len(out))
        frames += out
        prev_raw = raw
    header = orjson.dumps(
        {
            "feed": feed,
            "start": start,
            "count": len(raws),
            "size": size,
            "elide": True,
            "last": last,
            "error": error,
        }
    )
    return _preamble(b"E") + struct.pack(">I", len(header)) + header + zlib.compress(frames, level)


def decode(payload: bytes, *, max_size: int) -> Head | Cosignature | Request | Entries:
    """Parse a sync message; raise :class:`WireError` for anything that is not one.

    Args:
        payload: the MQTT payload.
        max_size: the largest payload (and, times 16, inflated batch) accepted.
    """
    if len(payload) > max_size:
        raise WireError("oversize", f"{len(payload)} bytes > {max_size}")
    if len(payload) < 2:
        raise WireError("malformed", "shorter than the 2-byte preamble")
    if payload[0] != VERSION:
        raise WireError("unknown_version", f"version {payload[0]}")
    kind = payload[1:2]
    if kind == b"E":
        return _decode_entries(payload, max_size)
    obj = _json(payload[2:])
    if kind == b"H":
        return _head(obj)
    if kind == b"C":
        return _cosignature(obj)
    if kind == b"Q":
        return _request(obj)
    raise WireError("unknown_kind", repr(kind))


def _json(data: bytes | memoryview) -> dict[str, Any]:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise WireError("malformed", f"JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise WireError("malformed", "not a JSON object")
    return obj


def _field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = obj.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise WireError("malformed", f"field {name!r}: {value!r}")
    return value


def _feed(obj: dict[str, Any], name: str = "feed") -> str:
    value = _field(obj, name, str)
    if not _HEX64.fullmatch(value):
        raise WireError("malformed", f"field {name!r}: not 64 lowercase hex digits")
    return str(value)


def _count(obj: dict[str, Any], name: str) -> int:
    value = _field(obj, name, int)
    if value < 0 or value > 2**53:
        raise WireError("malformed", f"field {name!r}: {value} out of range")
    return int(value)


def _cosignatures(value: object) -> tuple[dict[str, Any], ...]:
    if (
        not isinstance(value, list)
        or len(value) > 256
        or not all(isinstance(c, dict) for c in value)
    ):
        raise WireError("malformed", "field 'cosignatures': a list of at most 256 objects")
    return tuple(value)


def _head(obj: dict[str, Any]) -> Head:
    cp = obj.get("checkpoint")
    if cp is not None and not isinstance(cp, str):
        raise WireError("malformed", "field 'checkpoint'")
    return Head(
        node=_field(obj, "node", str),
        peer=_feed(obj, "peer"),
        feed=_feed(obj),
        end=_count(obj, "end"),
        checkpoint=cp.encode() if cp is not None else None,
        cosignatures=_cosignatures(obj.get("cosignatures", [])),
    )


def _cosignature(obj: dict[str, Any]) -> Cosignature:
    return Cosignature(node=_field(obj, "node", str), cosignature=_field(obj, "cosignature", dict))


def _request(obj: dict[str, Any]) -> Request:
    end = obj.get("end")
    if end is not None:
        end = _count(obj, "end")
    start = _count(obj, "start")
    if end is not None and end < start:
        raise WireError("malformed", "end < start")
    return Request(feed=_feed(obj), start=start, end=end, max=_count(obj, "max"))


def _decode_entries(payload: bytes, max_size: int) -> Entries:
    if len(payload) < 6:
        raise WireError("malformed", "entries message shorter than its header length")
    (hlen,) = struct.unpack_from(">I", payload, 2)
    if hlen > len(payload) - 6:
        raise WireError("malformed", "header length beyond the message")
    header = _json(memoryview(payload)[6 : 6 + hlen])
    feed = _feed(header)
    start = _count(header, "start")
    count = _count(header, "count")
    size = _count(header, "size")
    elide = header.get("elide", False) is True
    last = header.get("last", False) is True
    error = header.get("error", "")
    if not isinstance(error, str):
        raise WireError("malformed", "field 'error'")
    if count > MAX_ENTRIES:
        raise WireError("oversize", f"{count} entries")
    inflater = zlib.decompressobj()
    limit = min(MAX_INFLATED, max_size * 64)
    try:
        frames = inflater.decompress(payload[6 + hlen :], limit)
    except zlib.error as exc:
        raise WireError("malformed", f"zlib: {exc}") from None
    if inflater.unconsumed_tail:
        raise WireError("oversize", f"inflates beyond {limit} bytes")
    if not inflater.eof:
        raise WireError("malformed", "truncated zlib stream")
    raws: list[bytes] = []
    pos = 0
    prev_raw: bytes | None = None
    n = len(frames)
    while pos < n:
        length, pos = _read_uvarint(frames, pos)
        if pos + length > n:
            raise WireError("malformed", "frame beyond the batch")
        raw = frames[pos : pos + length]
        pos += length
        if elide and prev_raw is not None:
            at = raw.rfind(_PREV_EMPTY)
            if at >= 0:
                hex_at = at + len(_PREV)
                raw = raw[:hex_at] + hashlib.sha256(prev_raw).hexdigest().encode() + raw[hex_at:]
        raws.append(raw)
        prev_raw = raw
    if len(raws) != count:
        raise WireError("malformed", f"{len(raws)} entries, header says {count}")
    return Entries(feed=feed, start=start, raws=tuple(raws), size=size, last=last, error=error)


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    shift = 0
    value = 0
    while True:
        if pos >= len(data) or shift > 35:
            raise WireError("malformed", "bad frame length")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
