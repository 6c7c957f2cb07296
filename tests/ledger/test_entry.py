"""Entries: canonical bytes, id, timestamps, validation (pure)."""

from __future__ import annotations

import hashlib

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from edge.errors import NotCanonical
from edge.ledger.entry import format_ts, make_entry, parse_entry, parse_ts

FEED = "ab" * 32


def test_entry_bytes_are_rfc8785_and_id_is_their_sha256() -> None:
    e = make_entry(
        feed=FEED,
        seq=3,
        prev="cd" * 32,
        ts=1795000000.25,
        type="alarm",
        body={"rule": "cold", "value": "8.25", "unit": "°C"},
        lots=["LOT-1", "LOT-1", "LOT-2"],
        actor="alice",
    )
    content = {
        "feed": FEED,
        "seq": 3,
        "prev": "cd" * 32,
        "ts": "2026-11-18T11:06:40.250000Z",
        "type": "alarm",
        "lots": ["LOT-1", "LOT-2"],
        "actor": "alice",
        "body": {"rule": "cold", "value": "8.25", "unit": "°C"},
        "refs": [],
    }
    assert e.raw == rfc8785.dumps(content)
    assert e.id == hashlib.sha256(e.raw).hexdigest()
    assert e.lots == ("LOT-1", "LOT-2")
    back = parse_entry(e.raw)
    assert back == e


def test_non_ascii_keys_take_the_utf16_path() -> None:
    body = {"\uffff": "a", "\U00010000": "b"}
    e = make_entry(feed=FEED, seq=0, prev=None, ts=0.0, type="x", body=body)
    assert e.raw == rfc8785.dumps(
        {
            "actor": "",
            "body": body,
            "feed": FEED,
            "lots": [],
            "prev": None,
            "refs": [],
            "seq": 0,
            "ts": "1970-01-01T00:00:00.000000Z",
            "type": "x",
        }
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"body": {"value": 8.25}}, "body.value: float 8.25"),
        ({"body": {"a": {"b": [1, 2.0]}}}, r"body.a.b\[1\]: float"),
        ({"lots": "LOT-1"}, "lots: must be a list"),
        ({"lots": [""]}, "lots: must be a list of non-empty str"),
        ({"refs": ["nothex"]}, "refs: must be a list of entry ids"),
        ({"type": ""}, "type: must be a non-empty str"),
        ({"lots": ["a\ud800"]}, r"lots\[0\]: string holds a lone surrogate"),
        ({"body": {"n": [2**53]}}, r"body\.n\[0\]: integer 9007199254740992"),
        ({"body": {"s": "x\udc00"}}, r"body\.s: string holds a lone surrogate"),
        ({"body": {3: "x"}}, "body: key 3 is a int"),
        ({"lots": ["LOT\x001"]}, "must not contain NUL"),
        ({"type": "al\x00arm"}, "must not contain NUL"),
        ({"actor": "\x00"}, "must not contain NUL"),
    ],
)
def test_bad_entries_rejected_with_path(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "feed": FEED,
        "seq": 0,
        "prev": None,
        "ts": 0.0,
        "type": "alarm",
        "body": {},
    }
    args.update(kwargs)
    with pytest.raises(NotCanonical, match=message):
        make_entry(**args)  # type: ignore[arg-type]


def test_format_ts_is_fixed_width_and_sorts() -> None:
    assert format_ts(1795000000.123456) == "2026-11-18T11:06:40.123456Z"
    assert format_ts(0) == "1970-01-01T00:00:00.000000Z"
    assert (
        format_ts(1795000000.9999996) == "2026-11-18T11:06:41.000000Z"
    )  # rounds into the next second


@given(
    st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False),
    st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False),
)
def test_format_ts_round_trips_and_orders(a: float, b: float) -> None:
    ta, tb = format_ts(a), format_ts(b)
    assert len(ta) == 27
    assert abs(parse_ts(ta) - a) <= 1e-6 * max(1.0, abs(a) / 1e9)
    if round(a * 1e6) < round(b * 1e6):
        assert ta < tb
