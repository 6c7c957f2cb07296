"""Compressed columnar encoding of a readings block (pure: bytes in, readings out).

Raw readings are most of what a node stores; as SQLite rows with JSON values they took ~128
bytes each. A block is instead stored as one blob: its readings split into columns, each column
encoded for what it holds, the whole compressed once with ``lzma`` (stdlib; measured against
``zlib -9`` and ``bz2`` on the 40-point job and the bottling scenario: lzma's raw format with no
container header and a 64 KiB dictionary was smallest: 2.65 bytes per reading on blocks of 1000
noisy readings of 40 points, against 2.82 for zlib and 3.19 for bz2, at ~2 us per reading;
storing short decimals as decimals then took it to 1.86).

Columns, in arrival order of the block's ``n`` readings:

* ``keys``: index into the block's table of distinct ``(point, unit)`` pairs (1 or 2 bytes).
* ``quality``: index into the block's table of distinct qualities (1 byte).
* ``ts``: microseconds since the epoch, the first absolute, then the difference to the previous
  reading (zigzag varints): readings of one poll share a time, so most differences are 0 and
  the others are the poll period.
* ``tags``: the value's type, or ``REPEAT`` when it equals the point's previous value (same type
  and same bits), which a slowly changing process makes the common case.
* ``decimals``: a float whose shortest decimal is short (a scaled register ``2.26``, a scale's
  ``502.45``: at most 12 digits) as that decimal: its number of decimals (a byte) and its digits
  as an integer, the difference to the point's previous one when the decimals are the same
  (zigzag varints); decoding parses the decimal back, which gives the very same float.
* ``floats``: any other float XOR the point's previous float (Gorilla's idea), as 8-byte words
  transposed into 8 byte planes, so the equal sign, exponent and leading mantissa bytes of a
  process value become long zero runs for the compressor.
* ``ints``: difference to the point's previous integer (zigzag varints): counters step by small
  amounts.
* ``texts``: length-prefixed UTF-8 of string values.

Decoding gives back exactly what was encoded (``float`` bits, ``int``, ``bool``, ``str``,
``None``, quality, unit, microsecond time). NaN and infinities are refused at encoding, as the
canonical form has no decimal for them (:func:`edge.ledger.canonical.decimal`).
"""

from __future__ import annotations

import calendar
import functools
import lzma
import math
import struct
import time
import zlib
from array import array
from collections.abc import Sequence
from typing import Any

import orjson

from edge.errors import NotCanonical, ReadingsDamaged

__all__ = [
    "FORMAT",
    "LZMA",
    "PIECE",
    "ZLIB",
    "BadBlock",
    "Item",
    "decode",
    "encode",
    "encode_piece",
    "format_micros",
    "parse_micros",
]

#: First byte of an encoded block: its compressor. ``LZMA`` for closed blocks (smallest);
#: ``ZLIB`` (level 1) for the open block's pieces staged with every batch: lzma's setup costs
#: ~0.4 ms a call, 20 us a reading for the ~20 readings a 50 ms batch carries, zlib's ~1 us.
LZMA, ZLIB = 1, 2
#: ``PIECE``: the open block's pieces as staged with a batch: their items as JSON (orjson, which
#: writes floats as their shortest round-trip text and keeps 1 and 1.0 apart), zlib level 1:
#: ~3 us a reading against ~10 for the columns in Python, ~10 bytes a reading either way.
PIECE = 3
FORMAT = LZMA
#: An item: (point, unit, time in microseconds since the epoch, value, quality).
Item = tuple[str, str, int, Any, str]

_NONE, _FALSE, _TRUE, _INT, _FLOAT, _TEXT, _REPEAT, _DECIMAL = range(8)
#: A float whose shortest decimal has at most this many digits is stored as that decimal.
_DECIMAL_DIGITS = 12
# A 64 KiB dictionary holds a whole block's columns; the default 8 MiB only costs setup time.
# Preset 3 (liblzma's fast mode): 0.2 ms for a 1,000-reading block of the 40-point job against
# 0.9 ms at preset 6, for 6 % more bytes (0.99 against 0.93 a reading). A decoder needs only the
# dictionary size, so blocks written at preset 6 before read back the same.
_FILTERS: list[dict[str, Any]] = [{"id": lzma.FILTER_LZMA2, "preset": 3, "dict_size": 1 << 16}]
#: A block decodes to at most this many bytes of columns (a damaged blob must not make a reader
#: allocate without bound): 2**32 readings per block is the rowid limit, far above any config.
_MAX_DECODED = 1 << 28


BadBlock = ReadingsDamaged  #: the bytes are not an encoded readings block (damaged or not ours)


def format_micros(micros: int) -> str:
    """Microseconds since the epoch -> fixed-width RFC 3339 UTC (as :func:`format_ts` writes)."""
    seconds, fraction = divmod(micros, 1_000_000)
    return f"{_second_text(seconds)}.{fraction:06d}Z"


@functools.lru_cache(maxsize=256)
def _second_text(seconds: int) -> str:
    # gmtime + strftime cost ~1 us; a block's readings fall in a few seconds, and hashing a
    # block formats every reading's time (1.3 ms a block of 1,000 without this cache)
    at = time.gmtime(seconds)
    return f"{at.tm_year:04d}" + time.strftime("-%m-%dT%H:%M:%S", at)  # %Y: '999' for 0999


def parse_micros(ts: str) -> int:
    """Fixed-width RFC 3339 UTC (``2026-11-23T10:31:40.123456Z``) -> microseconds since the epoch.

    Raises:
        ValueError: ``ts`` is not in that form.
    """
    if len(ts) != 27 or ts[19] != "." or ts[26] != "Z":
        raise ValueError(f"not a fixed-width RFC 3339 UTC time: {ts!r}")
    seconds = calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
    return seconds * 1_000_000 + int(ts[20:26])


def _varints(out: bytearray, numbers: Sequence[int]) -> None:
    """Append zigzag LEB128 varints (any size of int)."""
    append = out.append
    for x in numbers:
        z = (x << 1) if x >= 0 else ((-x) << 1) - 1
        while z > 0x7F:
            append((z & 0x7F) | 0x80)
            z >>= 7
        append(z)


def _read_varints(data: bytes, pos: int, count: int) -> tuple[list[int], int]:
    out: list[int] = []
    append = out.append
    end = len(data)
    for _ in range(count):
        z = shift = 0
        while True:
            if pos >= end:
                raise BadBlock("truncated varint column")
            byte = data[pos]
            pos += 1
            z |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
            if shift > 700:
                raise BadBlock("varint too long")
        append((z >> 1) if not z & 1 else -((z + 1) >> 1))
    return out, pos


def _float_bits(x: float) -> int:
    return int.from_bytes(struct.pack("<d", x), "little")


def _as_decimal(x: float) -> tuple[int, int] | None:
    """``x`` as (mantissa, decimals) with ``x == float(f"{mantissa}e-{decimals}")``, if short.

    A scaled register (``2.26``), a scale's text (``502.45``) or a rounded value has a short
    shortest decimal: its mantissa steps by small integers where its float bits churn. A
    float32 widened to a double (``502.3125061035156``) does not, and stays a float.
    """
    text = repr(x)
    if "e" in text or "n" in text or text == "-0.0":
        return None
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0")
    if len(whole.lstrip("-")) + len(frac) > _DECIMAL_DIGITS:
        return None
    return int(whole + frac), len(frac)


def encode(items: Sequence[Item], *, fast: bool = False) -> bytes:
    """Encode readings (arrival order) as one compressed block (``fast``: zlib, for staging).

    Raises:
        NotCanonical: a float value is NaN or infinite.
        ValueError: ``items`` is empty.
    """
    if not items:
        raise ValueError("a readings block needs at least one reading")
    key_ix: dict[tuple[str, str], int] = {}
    qual_ix: dict[str, int] = {}
    keys: list[int] = []
    quals = bytearray()
    stamps: list[int] = []
    tags = bytearray()
    floats: list[int] = []
    ints: list[int] = []
    decimals: list[int] = []
    scales = bytearray()
    texts = bytearray()
    last: dict[int, tuple[int, Any]] = {}  # key -> (tag, value or float bits) of its previous value
    last_float: dict[int, int] = {}
    last_int: dict[int, int] = {}
    last_dec: dict[int, tuple[int, int]] = {}
    # A float's bits and short decimal, per value: a slowly changing process repeats its
    # values (a block of the 40-point job has a few hundred distinct ones in 1,000 readings).
    # Not 0.0: it equals -0.0 as a key, and their bits differ.
    float_forms: dict[float, tuple[int, tuple[int, int] | None]] = {}
    prev_ts = 0
    norm: Any
    for point, unit, micros, value, quality in items:
        dec = None
        k = key_ix.setdefault((point, unit), len(key_ix))
        keys.append(k)
        quals.append(qual_ix.setdefault(quality, len(qual_ix)) & 0xFF)
        stamps.append(micros - prev_ts)
        prev_ts = micros
        if value is None:
            tag, norm = _NONE, None
        elif value is True:
            tag, norm = _TRUE, True
        elif value is False:
            tag, norm = _FALSE, False
        elif isinstance(value, int):
            tag, norm = _INT, int(value)
        elif isinstance(value, float):
            forms = float_forms.get(value)  # never NaN: only finite values are kept
            if forms is None:
                if not math.isfinite(value):
                    raise NotCanonical(f"{value!r} has no decimal representation")
                forms = (_float_bits(value), _as_decimal(value))
                if value != 0.0:
                    float_forms[value] = forms
            tag, (norm, dec) = _FLOAT, forms
        elif isinstance(value, str):
            tag, norm = _TEXT, value
        else:
            raise ValueError(f"a reading's value cannot be a {type(value).__name__}")
        if last.get(k) == (tag, norm):
            tags.append(_REPEAT)
            continue
        last[k] = (tag, norm)
        if tag == _FLOAT and dec is not None:
            mantissa, scale = dec
            tags.append(_DECIMAL)
            scales.append(scale)
            before = last_dec.get(k)
            decimals.append(mantissa - before[0] if before and before[1] == scale else mantissa)
            last_dec[k] = dec
            continue
        tags.append(tag)
        if tag == _FLOAT:
            floats.append(norm ^ last_float.get(k, 0))
            last_float[k] = norm
        elif tag == _INT:
            ints.append(norm - last_int.get(k, 0))
            last_int[k] = norm
        elif tag == _TEXT:
            raw = norm.encode()
            _varints(texts, (len(raw),))
            texts += raw
    if len(qual_ix) > 256:
        raise ValueError("more than 256 distinct qualities in one block")
    table = orjson.dumps({"k": list(key_ix), "q": list(qual_ix)})
    wide = len(key_ix) > 256
    body = bytearray()
    counts = (len(items), len(table), int(wide), len(floats), len(ints), len(decimals), len(texts))
    _varints(body, counts)
    body += table
    body += array("H", keys).tobytes() if wide else bytes(keys)
    body += quals
    body += tags
    _varints(body, stamps)
    words = array("Q", floats).tobytes()
    body += b"".join(words[plane::8] for plane in range(8))  # byte planes
    _varints(body, ints)
    body += scales
    _varints(body, decimals)
    body += texts
    if fast:
        return bytes((ZLIB,)) + zlib.compress(body, 1)
    return bytes((LZMA,)) + lzma.compress(bytes(body), format=lzma.FORMAT_RAW, filters=_FILTERS)


def encode_piece(items: Sequence[Item], *, checked: bool = False) -> bytes:
    """Encode a few readings cheaply, for staging (integers beyond 64 bits: as a block, zlib).

    ``checked``: the caller knows no float value is NaN or infinite (orjson would write null).

    Raises:
        NotCanonical: a float value is NaN or infinite.
    """
    if not checked:
        for item in items:
            value = item[3]
            if type(value) is float and not math.isfinite(value):
                raise NotCanonical(f"{value!r} has no decimal representation")
    try:
        return bytes((PIECE,)) + zlib.compress(orjson.dumps(items), 1)
    except orjson.JSONEncodeError:  # an int orjson cannot write
        return encode(items, fast=True)


def _decode_piece(blob: bytes) -> list[Item]:
    unpacker = zlib.decompressobj()
    data = unpacker.decompress(blob[1:], _MAX_DECODED)
    if not unpacker.eof or unpacker.unused_data:
        raise BadBlock("truncated or oversized readings piece")
    rows = orjson.loads(data)
    if not isinstance(rows, list) or not rows:
        raise BadBlock("a readings piece is not a list of readings")
    out: list[Item] = []
    for row in rows:
        if not (
            isinstance(row, list)
            and len(row) == 5
            and type(row[0]) is str
            and type(row[1]) is str
            and type(row[2]) is int
            and (row[3] is None or type(row[3]) in (bool, int, float, str))
            and type(row[4]) is str
        ):
            raise BadBlock(f"a readings piece holds something that is not a reading: {row!r:.80}")
        out.append((row[0], row[1], row[2], row[3], row[4]))
    return out


def decode(blob: bytes) -> list[Item]:
    """The readings of an encoded block, exactly as encoded, in arrival order.

    Raises:
        BadBlock: ``blob`` is damaged or not an encoded block.
    """
    try:
        return _decode(blob)
    except BadBlock:
        raise
    except (
        lzma.LZMAError,
        zlib.error,
        ValueError,
        IndexError,
        KeyError,
        TypeError,
        OverflowError,
    ) as exc:
        raise BadBlock(f"damaged readings block: {exc}") from exc


def _decode(blob: bytes) -> list[Item]:
    unpacker: Any
    if blob[:1] == bytes((PIECE,)):
        return _decode_piece(blob)
    if blob[:1] == bytes((LZMA,)):
        unpacker = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_FILTERS)
    elif blob[:1] == bytes((ZLIB,)):
        unpacker = zlib.decompressobj()
    else:
        raise BadBlock(f"unknown readings block format {blob[:1].hex() or 'empty'}")
    data = unpacker.decompress(blob[1:], _MAX_DECODED)
    if not unpacker.eof:
        raise BadBlock("truncated or oversized readings block")
    if unpacker.unused_data:
        raise BadBlock("trailing bytes after the readings block")
    (n, table_len, wide, n_floats, n_ints, n_decs, n_texts), pos = _read_varints(data, 0, 7)
    if min(n, table_len, n_floats, n_ints, n_decs, n_texts) < 0 or n == 0:
        raise BadBlock("bad readings block header")
    table = orjson.loads(data[pos : pos + table_len])
    pos += table_len
    pairs = [(str(p), str(u)) for p, u in table["k"]]
    qualities = [str(q) for q in table["q"]]
    if wide:
        keys = array("H", data[pos : pos + 2 * n]).tolist()
        pos += 2 * n
    else:
        keys = list(data[pos : pos + n])
        pos += n
    quals = data[pos : pos + n]
    tags = data[pos + n : pos + 2 * n]
    pos += 2 * n
    if len(keys) != n or len(tags) != n:
        raise BadBlock("truncated readings block")
    deltas, pos = _read_varints(data, pos, n)
    planes = data[pos : pos + 8 * n_floats]
    pos += 8 * n_floats
    if len(planes) != 8 * n_floats:
        raise BadBlock("truncated float column")
    words = bytearray(8 * n_floats)
    for plane in range(8):
        words[plane::8] = planes[plane * n_floats : (plane + 1) * n_floats]
    xors = array("Q", bytes(words)).tolist()
    int_deltas, pos = _read_varints(data, pos, n_ints)
    scales = data[pos : pos + n_decs]
    pos += n_decs
    dec_deltas, pos = _read_varints(data, pos, n_decs)
    texts = data[pos : pos + n_texts]
    if pos + n_texts != len(data):
        raise BadBlock("readings block columns do not add up")
    out: list[Item] = []
    last: dict[int, Any] = {}
    last_float: dict[int, int] = {}
    last_int: dict[int, int] = {}
    last_dec: dict[int, tuple[int, int]] = {}
    fi = ii = di = ti = 0
    micros = 0
    for i in range(n):
        k = keys[i]
        micros += deltas[i]
        tag = tags[i]
        if tag == _REPEAT:
            value = last[k]
        else:
            if tag == _NONE:
                value = None
            elif tag == _FALSE:
                value = False
            elif tag == _TRUE:
                value = True
            elif tag == _FLOAT:
                bits = xors[fi] ^ last_float.get(k, 0)
                fi += 1
                last_float[k] = bits
                value = struct.unpack("<d", bits.to_bytes(8, "little"))[0]
            elif tag == _DECIMAL:
                scale = scales[di]
                mantissa = dec_deltas[di]
                di += 1
                before = last_dec.get(k)
                if before is not None and before[1] == scale:
                    mantissa += before[0]
                last_dec[k] = (mantissa, scale)
                value = float(f"{mantissa}e-{scale}")
            elif tag == _INT:
                value = int_deltas[ii] + last_int.get(k, 0)
                ii += 1
                last_int[k] = value
            elif tag == _TEXT:
                (size,), ti = _read_varints(texts, ti, 1)
                if size < 0 or ti + size > len(texts):
                    raise BadBlock("truncated text column")
                value = texts[ti : ti + size].decode()
                ti += size
            else:
                raise BadBlock(f"unknown value tag {tag}")
            last[k] = value
        point, unit = pairs[k]
        out.append((point, unit, micros, value, qualities[quals[i]]))
    if fi != n_floats or ii != n_ints or di != n_decs or ti != n_texts:
        raise BadBlock("readings block columns do not add up")
    return out
