"""orjson-based canonical JSON equals RFC 8785 (the `rfc8785` package) on the hashable subset."""

from __future__ import annotations

import math
from typing import Any

import pytest
import rfc8785
from hypothesis import example, given
from hypothesis import strategies as st

from edge.errors import NotCanonical
from edge.ledger.canonical import MAX_INT, canonical, decimal

# Text over all of Unicode except lone surrogates, with extra weight on the troublesome parts:
# C0 controls, quotes/backslashes, U+2028/2029, DEL, the U+E000..U+FFFF block (sorts differently
# in UTF-16 than in UTF-8 against astral characters) and astral characters themselves.
_tricky = st.sampled_from(
    [
        "\x00",
        "\x1f",
        "\x7f",
        '"',
        "\\",
        "/",
        "\b",
        "\u2028",
        "\u2029",
        "\ue000",
        "\uffff",
        "\U00010000",
        "\U0001f600",
        "é",
    ]
)
_chars = st.one_of(st.characters(exclude_categories=("Cs",)), _tricky)
texts = st.lists(_chars, max_size=8).map("".join)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-MAX_INT, max_value=MAX_INT), texts
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(texts, inner, max_size=6)),
    max_leaves=30,
)


@given(values)
@example({"\uffff": 1, "\U00010000": 2, "a": {"\ue000": [], "\U0001f600": None}})
@example({"": "\x00\x1f\x7f\u2028", "b": -MAX_INT, "a": MAX_INT})
def test_orjson_subset_equals_rfc8785(value: Any) -> None:
    assert canonical(value) == rfc8785.dumps(value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_decimal_round_trips(x: float) -> None:
    text = decimal(x)
    assert "e" not in text.lower()
    assert float(text) == x or (x == 0.0 and text == "0.0")


def test_decimal_examples() -> None:
    assert decimal(8.25) == "8.25"
    assert decimal(8) == "8"
    assert decimal(0.1 + 0.2) == "0.30000000000000004"
    assert decimal(1e-05) == "0.00001"
    assert decimal(-0.0) == "0.0"
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(NotCanonical):
            decimal(bad)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"body": {"v": 8.25}}, "body.v: float 8.25"),
        ({"body": {"xs": [1, 2, 2**53]}}, "body.xs[2]: integer 9007199254740992"),
        ({"body": {"xs": [-(2**53)]}}, "body.xs[0]: integer"),
        ({"body": {1: "x"}}, "body: key 1 is a int"),
        ({"body": {"s": "a\ud800"}}, "body.s: string holds a lone surrogate"),
        ({"k": {1, 2}}, "k: set"),
        ({"k": b"x"}, "k: bytes"),
    ],
)
def test_outside_subset_rejected_with_path(value: Any, message: str) -> None:
    with pytest.raises(NotCanonical, match=message.replace("[", r"\[").replace("]", r"\]")):
        canonical(value)


def test_str_enum_and_mapping_proxy_encode_as_plain_json() -> None:
    import enum
    import types

    class Color(enum.StrEnum):
        RED = "red"

    value = types.MappingProxyType({"b": Color.RED, "a": (1, 2)})
    assert canonical(value) == b'{"a":[1,2],"b":"red"}'
