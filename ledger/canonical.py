r"""Canonical JSON for hashed ledger content: RFC 8785 bytes at orjson speed.

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


def canonical(value: Any, path: str = "") -> bytes:
    """Encode ``value`` as RFC 8785 canonical JSON bytes.

    Args:
        value: the content to encode.
        path: where ``value`` sits, prefixed to error messages.

    Raises:
        NotCanonical: something in ``value`` is outside the hashable subset; the message names
            its path (``body.aggregates.temp.mean: float 8.25 is not allowed ...``).
    """
    tricky = check(value, path)
    try:
        if tricky:
            return orjson.dumps(_utf16_sorted(value), option=orjson.OPT_STRICT_INTEGER)
        return orjson.dumps(value, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        _explain(value, path)  # names the path of what orjson refused
        raise NotCanonical(f"{_where(path)}{exc}") from exc


#: orjson options for canonical bytes (with keys that need no UTF-16 reordering).
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER


def check(value: Any, path: str = "") -> bool:
    """Validate ``value`` against the hashable subset.

    Args:
        value: the content to check.
        path: where ``value`` sits, prefixed to error messages (``"body"``).

    Strings (lone surrogates) and integers (53 bits) are left to the encoder: use
    :func:`canonical`, which checks everything.

    Returns:
        True when some object's keys need UTF-16 ordering that orjson does not give
        (see the module docstring) or some mapping is not a plain dict; False in the common case.

    Raises:
        NotCanonical: naming the path of the first bad value.
    """
    try:
        return _fast(value)
    except _Bad:
        pass
    # Walk again, slowly, building the path of the offender only now: paths cost more than
    # the whole check on the happy path.
    _explain(value, path)
    raise NotCanonical(f"{_where(path)}value is outside the hashable subset")  # pragma: no cover


class _Bad(Exception):
    """Internal: something on the fast path is not canonical; :func:`_explain` says what."""


#: Types orjson checks by itself under :data:`_OPTIONS` (surrogates, 53-bit integers, str keys).
_LEAVES = frozenset({str, int, bool, type(None)})


def _fast(value: Any) -> bool:
    """Walk containers for what orjson would accept but RFC 8785 hashing must not.

    orjson (with ``OPT_STRICT_INTEGER``) already refuses non-str keys, lone surrogates and
    integers beyond 53 bits; left to check here are floats, foreign types, non-dict mappings
    and keys that need UTF-16 ordering. Leaves are checked by type in C (``set(map(type, ..))``):
    a Python-level test per scalar would cost more than the encoding itself.
    """
    kind = type(value)
    if kind is dict:
        tricky = False
        try:
            plain_keys = "".join(value).isascii()
        except TypeError:
            raise _Bad from None  # a non-str key
        if not plain_keys:
            for key in value:
                if not key.isascii():
                    _utf8(key)
                    if max(key) >= "\ue000":
                        tricky = True
        if _LEAVES.issuperset(map(type, value.values())):
            return tricky
        for item in value.values():
            if type(item) not in _LEAVES and _fast(item):
                tricky = True
        return tricky
    if kind in _LEAVES:
        return False
    if kind is list or kind is tuple:
        if _LEAVES.issuperset(map(type, value)):
            return False
        tricky = False
        for item in value:
            if type(item) not in _LEAVES and _fast(item):
                tricky = True
        return tricky
    if kind is float:
        raise _Bad
    if isinstance(value, Mapping):
        _fast(dict(value))
        return True  # orjson encodes only real dicts: rebuild
    if isinstance(value, str | int) and not isinstance(value, bool):  # StrEnum, IntEnum
        _fast(str(value) if isinstance(value, str) else int(value))
        return True
    raise _Bad


def _utf8(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _Bad from exc


def _explain(value: Any, path: str) -> None:
    """Raise :class:`NotCanonical` naming the path of the first bad value in ``value``."""
    kind = type(value)
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):
        _check_str(value, path)
        return
    if isinstance(value, int):
        if not -MAX_INT <= value <= MAX_INT:
            raise NotCanonical(f"{_where(path)}integer {value} is beyond ±(2**53 - 1)")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotCanonical(
                    f"{_where(path)}key {key!r} is a {type(key).__name__}, not a str"
                )
            where = f"{path}.{key}" if path else key
            _check_str(key, where)
            _explain(item, where)
        return
    if kind is list or kind is tuple:
        for index, item in enumerate(value):
            _explain(item, f"{path}[{index}]")
        return
    if kind is float:
        raise NotCanonical(
            f"{_where(path)}float {value!r} is not allowed in hashed content; "
            "use edge.ledger.canonical.decimal()"
        )
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
