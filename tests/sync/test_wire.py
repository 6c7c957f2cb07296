"""The version-1 wire format: round trips, the compression bound, and garbage never raising."""

from __future__ import annotations

import contextlib
import random
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.ledger.entry import make_entry
from edge.sync import wire

FEED = "ab" * 32


def chain(n: int, feed: str = FEED) -> list[bytes]:
    prev = None
    raws = []
    for i in range(n):
        e = make_entry(feed=feed, seq=i, prev=prev, ts=1_795_000_000 + i / 1000, type="alarm",
                       body={"rule": "r", "value": str(i), "message": "x" * (i % 7)},
                       lots=[f"L{i // 10}"])  # fmt: skip
        prev = e.id
        raws.append(e.raw)
    return raws


def test_entries_round_trip_and_prev_is_elided() -> None:
    raws = chain(500)
    msg = wire.encode_entries(FEED, 0, raws, size=500, last=True)
    back = wire.decode(msg, max_size=1 << 24)
    assert isinstance(back, wire.Entries)
    assert back.raws == tuple(raws)
    assert (back.feed, back.start, back.size, back.last, back.error) == (FEED, 0, 500, True, "")
    # the ids are what deflate cannot shrink: without elision each costs ~33 bytes
    frames = zlib.decompress(msg[6 + struct.unpack_from(">I", msg, 2)[0] :])
    assert frames.count(b'"prev":""') == 499


def test_wire_is_under_half_the_canonical_size() -> None:
    raws = chain(2000)
    msg = wire.encode_entries(FEED, 0, raws, size=2000)
    ratio = len(msg) / sum(map(len, raws))
    assert ratio <= 0.5, ratio


def test_a_broken_chain_travels_unchanged() -> None:
    """An entry whose prev is not its predecessor's id is sent whole: the receiver judges it."""
    raws = chain(3)
    other = chain(3, "cd" * 32)
    mixed = [raws[0], other[1], raws[2]]
    back = wire.decode(wire.encode_entries(FEED, 0, mixed, size=3), max_size=1 << 20)
    assert isinstance(back, wire.Entries)
    assert back.raws == tuple(mixed)


def test_json_messages_round_trip() -> None:
    h = wire.Head("gw-1", "cd" * 32, FEED, 12, b'{"a":1}', ({"v": 1},))
    assert wire.decode(wire.encode_head(h), max_size=4096) == h
    c = wire.Cosignature("gw-1", {"v": 1, "feed": FEED})
    assert wire.decode(wire.encode_cosignature(c), max_size=4096) == c
    r = wire.Request(FEED, 10, 20, 10)
    assert wire.decode(wire.encode_request(r), max_size=4096) == r


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "malformed"),
        (b"\x02H{}", "unknown_version"),
        (b"\x01Z{}", "unknown_kind"),
        (b"\x01H[1]", "malformed"),
        (b"\x01H{", "malformed"),
        (b"\x01Q" + b'{"feed":"' + b"a" * 64 + b'","start":5,"end":2,"max":1}', "malformed"),
        (b"\x01E\x00\x00\x00\x02{}", "malformed"),
        (b"\x01E\xff\xff\xff\xff", "malformed"),
        (b"\x01" + b"E" * 5000, "oversize"),
    ],
)
def test_bad_messages_name_their_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(wire.WireError) as err:
        wire.decode(payload, max_size=4096)
    assert err.value.reason == reason


def test_a_zip_bomb_is_refused_not_inflated() -> None:
    header = b'{"feed":"' + FEED.encode() + b'","start":0,"count":1,"size":1}'
    bomb = zlib.compress(b"\x00" * (80 * 1024 * 1024), 9)
    msg = b"\x01E" + struct.pack(">I", len(header)) + header + bomb
    with pytest.raises(wire.WireError) as err:
        wire.decode(msg, max_size=1 << 20)
    assert err.value.reason == "oversize"


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_wire_errors(data: bytes) -> None:
    for payload in (data, b"\x01" + data, b"\x01E" + data, b"\x01H" + data):
        with contextlib.suppress(wire.WireError):
            wire.decode(payload, max_size=1 << 16)


def test_mutated_messages_only_raise_wire_errors() -> None:
    rng = random.Random(13)
    good = [
        wire.encode_entries(FEED, 0, chain(20), size=20),
        wire.encode_head(wire.Head("gw", FEED, FEED, 3, b"{}", ())),
        wire.encode_request(wire.Request(FEED, 0, None, 5)),
    ]
    for _ in range(5000):
        m = bytearray(rng.choice(good))
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(m))
            m[i] = rng.randrange(256)
        if rng.random() < 0.3:
            del m[rng.randrange(len(m)) :]
        with contextlib.suppress(wire.WireError):
            wire.decode(bytes(m), max_size=1 << 16)
