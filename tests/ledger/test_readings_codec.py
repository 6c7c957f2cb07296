"""Round trips of the compressed readings store: what is read back is what was recorded.

Properties over values (floats to the bit, ints of any size, booleans, strings, no value),
qualities, units, gaps and out-of-order times, at the codec and through a real ledger file
(blocks closed, staged pieces of the open block, a reopen); NaN and infinities refused. The
digest oracle is rfc8785 over the documented canonical form (docs/reference/ledger.md).
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
import statistics
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.errors import NotCanonical
from edge.ledger.canonical import decimal
from edge.ledger.keys import NodeKey
from edge.ledger.open_block import OpenBlock
from edge.ledger.readings_codec import (
    BadBlock,
    Item,
    decode,
    encode,
    encode_piece,
    format_micros,
    parse_micros,
)
from edge.ledger.readings_read import read_readings, read_summaries
from edge.ledger.readings_store import item_of, items_of
from edge.ledger.readings_summary import summarize
from edge.ledger.store import Ledger
from edge.ledger.verify import verify_db
from edge.readings import Quality, Reading

T0 = 1_795_000_000_000_000  # microseconds

values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=400.0, max_value=600.0, width=32),  # a float32 register, as decoded
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["8.25", "5", "true", "", "OK"]),  # text that looks like other types
    st.none(),
)
qualities = st.sampled_from(["good", "stale", "comm_fail", "config_error", "b\u00e4d"])
points = st.sampled_from(["temp", "fill_weight_1", "valve", "lot", "t\u00fcr", "p" * 40])
units = st.sampled_from(["", "degC", "g", "N*m"])
steps = st.one_of(
    st.just(0),  # same poll
    st.integers(99_000, 101_000),  # a 100 ms poll with jitter
    st.integers(-5_000_000, 3_600_000_000),  # gaps, and times going back (clock steps)
)


@st.composite
def item_lists(draw: st.DrawFn, max_size: int = 80) -> list[Item]:
    n = draw(st.integers(1, max_size))
    t = T0 + draw(st.integers(-(10**12), 10**12))
    out: list[Item] = []
    for _ in range(n):
        t += draw(steps)
        out.append((draw(points), draw(units), t, draw(values), draw(qualities)))
    return out


def typed(items: list[Item]) -> list[tuple[Any, ...]]:
    """Items with each value's exact type and float bits, so 0.0 != -0.0 and 1 != 1.0 != True."""
    out = []
    for point, unit, micros, value, quality in items:
        exact = struct.pack("<d", value) if type(value) is float else value
        out.append((point, unit, micros, type(value).__name__, exact, quality))
    return out


@settings(max_examples=300, deadline=None)
@given(items=item_lists(), how=st.sampled_from(["lzma", "zlib", "piece"]))
def test_codec_gives_back_exactly_what_it_encoded(items: list[Item], how: str) -> None:
    blob = encode_piece(items) if how == "piece" else encode(items, fast=how == "zlib")
    assert typed(decode(blob)) == typed(items)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_are_refused(bad: float) -> None:
    with pytest.raises(NotCanonical):
        encode([("t", "", T0, 1.0, "good"), ("t", "", T0, bad, "good")])


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_the_ledger_refuses_a_nan_reading_and_keeps_the_others(tmp_path: Path, bad: float) -> None:
    with Ledger.open(tmp_path / "l.db", NodeKey.generate()) as ledger:
        ledger.add_readings([Reading("t", 1.0, 2.0)])
        with pytest.raises(NotCanonical):
            ledger.add_readings([Reading("t", 2.0, 3.0), Reading("t", 3.0, bad)])
        ledger.close_block()
        ledger.commit()
        assert [r.value for r in read_readings(ledger.conn)] == [2.0]


@settings(max_examples=200, deadline=None)
@given(items=item_lists())
def test_times_round_trip_as_text(items: list[Item]) -> None:
    for _, _, micros, _, _ in items:
        assert parse_micros(format_micros(micros)) == micros


def test_bad_bytes_raise_bad_block() -> None:
    blob = encode([("t", "", T0, 1.5, "good")] * 10)
    piece = encode_piece([("t", "", T0, 1.5, "good")] * 10)
    for damaged in (
        b"",
        b"\x01",
        blob[:-1],
        blob + b"\x00",
        b"\x02garbage",
        b"\x09" + blob[1:],
        piece[:-2],
        b"\x03" + zlib.compress(b'[["t", "", 1, 2.5]]'),
        b"\x03" + zlib.compress(b'[["t", "", "x", 2.5, "good"]]'),
        b"\x03" + zlib.compress(b"{}"),
    ):
        with pytest.raises(BadBlock):
            decode(damaged)


def _reading(item: Item) -> Reading:
    point, unit, micros, value, quality = item
    return Reading(point, micros / 1_000_000, value, quality, unit)  # type: ignore[arg-type]


def _oracle_digest(items: list[Item]) -> str:
    """The documented canonical form, hashed with an independent RFC 8785 implementation."""
    rows = []
    for point, unit, micros, value, quality in items:
        hashed = value if value is None or isinstance(value, bool | str) else decimal(value)
        rows.append([point, format_micros(micros), hashed, quality, unit])
    return hashlib.sha256(rfc8785.dumps(rows)).hexdigest()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    items=item_lists(max_size=60),
    block=st.integers(1, 25),
    flushes=st.lists(st.integers(1, 9), min_size=1, max_size=8),
)
def test_a_ledger_reads_back_what_it_recorded(
    items: list[Item], block: int, flushes: list[int]
) -> None:
    """Blocks of ``block`` readings, batches of ``flushes`` readings, a reopen in between."""
    # whole microseconds survive the float epoch of a Reading only within 2**53 us
    items = [(p, u, t, v, q) for p, u, t, v, q in items if abs(t) < 2**51]
    if any(type(v) is int and abs(v) >= 2**53 for *_, v, _ in items):
        return  # a Reading's value from a register is at most 64-bit; decimal() takes any
    key = NodeKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "l.db"
        ledger = Ledger.open(path, key)
        closed: list[list[Item]] = []
        current: list[Item] = []
        i = 0
        step = 0
        while i < len(items):
            n = flushes[step % len(flushes)]
            step += 1
            chunk = items[i : i + n]
            i += n
            for item in chunk:
                ledger.add_readings([_reading(item)])
                current.append(item)
                if len(current) == block:
                    entry = ledger.close_block()
                    assert entry is not None
                    assert entry.body["sha256"] == _oracle_digest(current)
                    closed.append(current)
                    current = []
            ledger.commit()
            if step == 2:  # a restart: the open block comes back from its staged pieces
                ledger.close()
                ledger = Ledger.open(path, key)
                assert len(ledger.open_block) == len(current)
        ledger.close()
        conn = sqlite3.connect(path)
        try:
            back = [
                (r.point, r.unit, parse_micros(r.ts), r.value, r.quality)
                for r in read_readings(conn)
            ]
            assert typed(back) == typed(items)
            assert verify_db(conn).ok
        finally:
            conn.close()


def test_summaries_match_an_independent_computation(tmp_path: Path) -> None:
    """Per minute and hour, over blocks that split periods: count, min, max, mean, stdev."""
    import random

    rng = random.Random(5)
    readings = []
    t = 1_795_000_000.0
    for _ in range(3000):
        t += rng.uniform(0.5, 3.0)
        readings.append(Reading("w", t, rng.gauss(502.0, 1.5)))
        readings.append(Reading("n", t, rng.randint(0, 9)))
        readings.append(Reading("b", t, True))  # bits are not summarised
        readings.append(Reading("w", t, 999.0, quality="stale"))  # nor readings not good
    with Ledger.open(tmp_path / "l.db", NodeKey.generate()) as ledger:
        for k in range(0, len(readings), 333):  # blocks cut across minutes and hours
            ledger.append_readings(readings[k : k + 333])
        ledger.commit()
        for seconds in (60, 3600):
            got = {(s.point, s.start): s for s in read_summaries(ledger.conn, seconds=seconds)}
            want: dict[tuple[str, str], list[float]] = {}
            for r in readings:
                if r.point == "b" or r.quality != "good":
                    continue
                start = int(r.ts) - int(r.ts) % seconds
                want.setdefault((r.point, format_micros(start * 1_000_000)), []).append(
                    float(r.value)  # type: ignore[arg-type]
                )
            assert set(got) == set(want)
            for k, xs in want.items():
                s = got[k]
                assert (s.count, s.min, s.max) == (len(xs), min(xs), max(xs))
                assert s.mean == pytest.approx(statistics.fmean(xs), rel=1e-12)
                sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
                assert s.std == pytest.approx(sd, rel=1e-9, abs=1e-12)
        # kept when the raw readings are pruned
        before = list(read_summaries(ledger.conn, seconds=3600))
        assert ledger.prune_readings(before=t + 1, actor="qa", now=t + 2) == len(readings)
        assert list(read_readings(ledger.conn)) == []
        assert list(read_summaries(ledger.conn, seconds=3600)) == before


def _summaries_one_reading_at_a_time(items: list[Any]) -> list[tuple[Any, ...]]:
    """Welford's update per reading, period and point in arrival order: the definition."""
    from edge.ledger.readings_summary import PERIODS

    acc: dict[tuple[str, int, int], list[float]] = {}
    for point, _unit, micros, value, quality in items:
        if quality != "good" or type(value) not in (int, float):
            continue
        x, second = float(value), micros // 1_000_000
        for period in PERIODS:
            a = acc.setdefault((point, period, second - second % period), [0.0, x, x, 0.0, 0.0])
            a[0] += 1.0
            delta = x - a[3]
            a[3] += delta / a[0]
            a[1], a[2] = min(a[1], x), max(a[2], x)
            a[4] += delta * (x - a[3])
    return [(*k, int(a[0]), a[1], a[2], a[3], a[4]) for k, a in sorted(acc.items())]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.integers(0, 200_000_000),  # microseconds: blocks in one minute and across them
            st.one_of(st.floats(-1e6, 1e6), st.integers(-1000, 1000), st.none()),
            st.sampled_from(["good", "good", "stale"]),
        ),
        min_size=1,
        max_size=60,
    ),
    st.booleans(),
)
def test_summaries_are_the_same_floats_as_one_reading_at_a_time(
    rows: list[tuple[str, int, Any, str]], one_minute: bool
) -> None:
    """The same floats whether a point's readings stay in one minute (its hour is then copied)."""
    base = 1_795_000_020_000_000
    items = [(p, "", base + (us % 30_000_000 if one_minute else us), v, q) for p, us, v, q in rows]
    got = [tuple(r) for r in summarize(items)]
    assert got == _summaries_one_reading_at_a_time(items)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.sampled_from([1_795_000_000.0, 1_795_000_000.1, 1_795_000_000.1000004, 0.0, -0.0]),
            st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(), st.none()),
            st.sampled_from(list(Quality)),
        ),
        max_size=40,
    )
)
def test_items_of_a_batch_are_item_of_each_reading(rows: list[tuple[Any, ...]]) -> None:
    """Times repeated (as in a poll), changing, and equal but differently signed."""
    readings = [Reading(p, ts, v, q) for p, ts, v, q in rows]
    assert items_of(readings) == [item_of(r) for r in readings]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_batch_with_a_value_without_decimal_adds_nothing_to_the_open_block(bad: float) -> None:
    block = OpenBlock(1)
    block.add([Reading("a", 1.0, 2.0)])
    with pytest.raises(NotCanonical, match="no decimal"):
        block.add([Reading("a", 2.0, 3.0), Reading("b", 2.0, bad)])
    assert len(block) == 1
    assert decode(block.take()[0][2]) == [("a", "", 1_000_000, 2.0, "good")]
