"""Canonical JSON for hashed ledger content: RFC 8785 bytes at orjson speed.

The pure-Python ``rfc8785`` encoder costs ~83 µs per entry; orjson with sorted keys ~1 µs. The two
agree byte for byte on a *subset* of JSON, and hashed content is restricted to it:

* objects with ``str`` keys, arrays (list/tuple), ``str``, ``bool``, ``None``;
* integers within the I-JSON safe range ``|n| <= 2**53 - 1``;
* no floats at all: measured values travel as decimal strings (:func:`decimal`), because float
  formatting is the classic cross-language trap (``repr`` vs ES6 ``Number.toString``);
* no lone surrogates (not encodable as UTF-8).

Inside the subset the remaining difference is key order: RFC 8785 sorts keys by UTF-16 code
units, orjson by code points (UTF-8 bytes). They disagree only when one key holds a character in
U+E000..U+FFFF and another a character above U+FFFF; such (rare) objects are re-ordered here
before encoding. String escaping is identical (both escape only ``"``, ``\\`` and C0 controls,
the latter as lowercase ``\\u00xx`` except ``\\b\\t\\n\\f\\r``). ``tests/ledger/test_canonical.py``
proves the equality against ``rfc8785`` with hypothesis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

from edge.errors import NotCanonical

__all__ = ["MAX_INT", "canonical", "check", "decimal"]

#: The largest magnitude of an integer in hashed content (I-JSON / RFC 8785 safe integers).
MAX_INT = 2**53 - 1


def decimal(x: float | int) -> str:
    """The shortest decimal string that round-trips ``x`` (``8.25 -> "8.25"``, ``8 -> "8"``).

    Floats use Python's shortest round-trip ``repr``; exponents are written out positionally
    (``1e-05 -> "0.00001"``) so that spreadsheets and humans read them alike, and ``-0.0`` is
    written ``"0.0"``.

    Raises:
        NotCanonical: ``x`` is NaN or infinite (no decimal string represents it), or not a number.
    """
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise NotCanonical(f"decimal() takes an int or float, not {type(x).__name__}")
    if isinstance(x, int):
        return str(x)
    if not math.isfinite(x):
        raise NotCanonical(f"{x!r} has no decimal representation")
    if x == 0.0:
        return "0.0"
    text = repr(x)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    return text


def canonical(value: Any) -> bytes:
    """Encode ``value`` as RFC 8785 canonical JSON bytes.

    Raises:
        NotCanonical: something in ``value`` is outside the hashable subset; the message names
            its path (``body.aggregates.temp.mean: float 8.25 is not allowed ...``).
    """
    if check(value):
        return orjson.dumps(_utf16_sorted(value))
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:  # pragma: no cover - check() rejects first
        raise NotCanonical(str(exc)) from exc


def check(value: Any, path: str = "") -> bool:
    """Validate ``value`` against the hashable subset.

    Returns:
        True when some object's keys need UTF-16 ordering that orjson does not give
        (see the module docstring); False in the common case.

    Raises:
        NotCanonical: naming the path of the first bad value.
    """
    kind = type(value)
    if kind is str:
        _check_str(value, path)
        return False
    if kind is bool or value is None:
        return False
    if kind is int:
        if -MAX_INT <= value <= MAX_INT:
            return False
        raise NotCanonical(f"{_where(path)}integer {value} is beyond ±(2**53 - 1)")
    if kind is dict or isinstance(value, Mapping):
        tricky = kind is not dict  # orjson encodes only real dicts; rebuild other mappings
        for key, item in value.items():
            if type(key) is not str:
                raise NotCanonical(
                    f"{_where(path)}key {key!r} is a {type(key).__name__}, not a str"
                )
            _check_str(key, f"{path}.{key}" if path else key)
            if not key.isascii() and max(key) >= "\ue000":
                tricky = True
            if check(item, f"{path}.{key}" if path else key):
                tricky = True
        return tricky
    if kind is list or kind is tuple:
        tricky = False
        for index, item in enumerate(value):
            if check(item, f"{path}[{index}]"):
                tricky = True
        return tricky
    if kind is float:
        raise NotCanonical(
            f"{_where(path)}float {value!r} is not allowed in hashed content; "
            "use edge.ledger.canonical.decimal()"
        )
    if isinstance(value, str):  # str subclasses (StrEnum) encode as their value
        _check_str(value, path)
        return False
    if isinstance(value, int) and not isinstance(value, bool):
        return check(int(value), path)
    raise NotCanonical(f"{_where(path)}{type(value).__name__} {value!r} is not JSON")


def _check_str(text: str, path: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NotCanonical(f"{_where(path)}string holds a lone surrogate (not UTF-8)") from exc


def _where(path: str) -> str:
    return f"{path}: " if path else ""


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be")


def _utf16_sorted(value: Any) -> Any:
    """A copy of ``value`` whose objects are in RFC 8785 key order (UTF-16 code units)."""
    if isinstance(value, Mapping):
        return {k: _utf16_sorted(value[k]) for k in sorted(value, key=_utf16_key)}
    if isinstance(value, list | tuple):
        return [_utf16_sorted(item) for item in value]
    if isinstance(value, str) and type(value) is not str:
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and type(value) is not int:
        return int(value)
    return value
