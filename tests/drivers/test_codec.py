"""Point decoding/encoding against independent oracles: struct and pymodbus's convert helpers."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client.mixin import ModbusClientMixin

from edge.config import PointConfig
from edge.drivers.codec import (
    NUMERIC_FORMATS,
    decode_point,
    decode_registers,
    encode_point,
    encode_registers,
    float32_decimal,
    point_decoder,
    register_count,
    scale_value,
    wire_address,
)

from .conftest import PYMODBUS_TYPES, oracle_registers

ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
DT = ModbusClientMixin.DATATYPE

INT_RANGES = {
    "int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1),
}  # fmt: skip


def values_for(dtype: str) -> st.SearchStrategy[int | float]:
    if dtype in INT_RANGES:
        lo, hi = INT_RANGES[dtype]
        return st.integers(lo, hi)
    width = 32 if dtype == "float32" else 64
    return st.floats(width=width, allow_nan=False)


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", list(NUMERIC_FORMATS))
@given(data=st.data())
def test_numeric_matches_pymodbus(dtype: str, order: str, data: st.DataObject) -> None:
    value = data.draw(values_for(dtype))
    regs = oracle_registers(value, dtype, order)
    assert encode_registers(value, dtype, order) == regs
    assert same(decode_registers(regs, dtype, order), value)


@pytest.mark.parametrize("dtype", list(NUMERIC_FORMATS))
@given(data=st.data())
def test_dcba_is_little_endian_and_any_registers_roundtrip(dtype: str, data: st.DataObject) -> None:
    fmt, width = NUMERIC_FORMATS[dtype]
    regs = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=width, max_size=width))
    raw = b"".join(struct.pack(">H", r) for r in regs)
    # DCBA: the wire bytes, read as one little-endian number
    assert same(decode_registers(regs, dtype, "DCBA"), struct.unpack("<" + fmt, raw)[0])
    for order in ORDERS:
        decoded = decode_registers(regs, dtype, order)
        if not (isinstance(decoded, float) and math.isnan(decoded)):
            assert encode_registers(decoded, dtype, order) == regs


def test_known_float_in_all_orders() -> None:
    # 123.456f = 0x42F6E979: A=42 B=F6 C=E9 D=79
    wire = {
        "ABCD": [0x42F6, 0xE979],
        "CDAB": [0xE979, 0x42F6],
        "BADC": [0xF642, 0x79E9],
        "DCBA": [0x79E9, 0xF642],
    }
    for order, regs in wire.items():
        assert decode_registers(regs, "float32", order) == pytest.approx(123.456, rel=1e-7)


def test_sixteen_bit_orders() -> None:
    assert decode_registers([0x1234], "uint16", "ABCD") == 0x1234
    assert decode_registers([0x1234], "uint16", "CDAB") == 0x1234
    assert decode_registers([0x1234], "uint16", "BADC") == 0x3412
    assert decode_registers([0xFFFE], "int16") == -2


@given(reg=st.integers(0, 0xFFFF), bit=st.integers(0, 15))
def test_bit_in_register(reg: int, bit: int) -> None:
    assert decode_registers([reg], "bit", bit=bit) is bool(reg & (1 << bit))
    assert decode_registers(encode_registers(True, "bit", bit=bit), "bit", bit=bit) is True
    assert decode_registers([reg], "bool") is (reg != 0)


@given(
    text=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20),
    order=st.sampled_from(ORDERS),
)
def test_string_roundtrip(text: str, order: str) -> None:
    length = max(1, (len(text) + 1) // 2)
    regs = encode_registers(text, "string", order, length=length)
    assert len(regs) == length
    assert decode_registers(regs, "string", order) == text


def test_string_matches_pymodbus_and_strips_padding() -> None:
    regs = ModbusClientMixin.convert_to_registers("BATCH-7", DT.STRING)
    assert decode_registers(regs, "string") == "BATCH-7"
    assert decode_registers([0x4142, 0x2020], "string") == "AB"
    assert decode_registers([0x4241, 0x0043], "string", "BADC") == "ABC"
    with pytest.raises(ValueError, match="do not fit"):
        encode_registers("ABCDE", "string", length=2)


@given(
    raw=st.integers(-(2**15), 2**15 - 1),
    scale=st.sampled_from([0.1, 0.01, 2.0, 1.0]),
    offset=st.sampled_from([0.0, -40.0, 3.5]),
)
def test_scale_offset_roundtrip(raw: int, scale: float, offset: float) -> None:
    p = PointConfig("p", "d", type="int16", scale=scale, offset=offset)
    value = decode_point(p, [raw & 0xFFFF])
    assert value == pytest.approx(raw * scale + offset)
    assert encode_point(p, value) == [raw & 0xFFFF]


def _shortest_by_search(x: float) -> float:
    """Independent of numpy: the fewest %g digits that still name the same float32."""
    packed = struct.pack(">f", x)
    for digits in range(1, 10):
        candidate = float(f"{x:.{digits}g}")
        if struct.pack(">f", candidate) == packed:
            return candidate
    raise AssertionError(f"no decimal of 9 digits names {x!r}")


@given(bits=st.integers(0, 2**32 - 1))
def test_float32_reading_is_the_shortest_decimal_naming_the_same_float32(bits: int) -> None:
    (x,) = struct.unpack(">f", bits.to_bytes(4, "big"))
    if not math.isfinite(x):
        assert math.isnan(float32_decimal(x)) if math.isnan(x) else float32_decimal(x) == x
        return
    value = float32_decimal(x)
    assert struct.pack(">f", value) == struct.pack(">f", x)  # nothing the device sent is lost
    assert value == float(str(np.float32(x)))  # numpy's Dragon4 (our code has no numpy)
    if abs(x) >= 1.1754943508222875e-38 and bits & 0x7FFFFF:
        # normal floats off the powers of two: the %g search agrees (at a power of two the
        # rounding interval is lopsided and a neighbour of the %g decimal may be shorter)
        assert value == _shortest_by_search(x)


@pytest.mark.parametrize("exponent", range(-149, 128))
def test_float32_decimal_at_powers_of_two_and_their_neighbours(exponent: int) -> None:
    bits = struct.unpack(">I", struct.pack(">f", 2.0**exponent))[0]
    for b in (bits - 1, bits, bits + 1):
        for sign in (0, 1 << 31):
            (x,) = struct.unpack(">f", ((b | sign) & 0xFFFFFFFF).to_bytes(4, "big"))
            if math.isfinite(x):
                assert float32_decimal(x) == float(str(np.float32(x))), x


def test_float32_point_reads_the_decimal_the_device_meant() -> None:
    p = PointConfig("p", "d", type="float32", order="CDAB")
    regs = oracle_registers(0.1, "float32", "CDAB")  # pymodbus packs 0.1 into a float32
    assert decode_registers(regs, "float32", "CDAB") != 0.1  # exact: 0.10000000149011612
    assert decode_point(p, regs) == 0.1  # so a limit of 0.1 is not exceeded by 0.1
    assert encode_point(p, decode_point(p, regs)) == regs
    scaled = PointConfig("p", "d", type="float32", scale=10.0)
    assert decode_point(scaled, oracle_registers(8.796824, "float32", "ABCD")) == pytest.approx(
        87.96824, rel=1e-12
    )


def test_unscaled_ints_stay_ints() -> None:
    assert scale_value(7, 1.0, 0.0) == 7
    assert isinstance(scale_value(7, 1.0, 0.0), int)
    assert scale_value(True, 10.0, 1.0) is True
    assert scale_value("x", 10.0, 1.0) == "x"


def test_register_count_and_address_base() -> None:
    assert register_count(PointConfig("p", "d", type="float64")) == 4
    assert register_count(PointConfig("p", "d", type="string", length=5)) == 5
    assert register_count(PointConfig("p", "d", type="bit", bit=3)) == 1
    assert register_count(PointConfig("p", "d", table="coil", type="bool")) == 1
    assert wire_address(PointConfig("p", "d", register=40001), 1) == 40000
    assert wire_address(PointConfig("p", "d", register=0), 0) == 0


def test_encode_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        encode_registers(70000, "uint16")
    with pytest.raises(ValueError, match="outside"):
        decode_registers([0x10000], "uint16")
    with pytest.raises(ValueError, match="needs 2 registers"):
        decode_registers([1], "float32")


def test_pymodbus_types_cover_every_numeric_type() -> None:
    assert set(PYMODBUS_TYPES) == set(NUMERIC_FORMATS)


@given(
    dtype=st.sampled_from(["uint16", "int16", "uint32", "float32", "bit", "bool"]),
    order=st.sampled_from(["ABCD", "CDAB", "BADC", "DCBA"]),
    scale=st.one_of(
        st.just(1.0), st.sampled_from([0.1, 0.01, 2.0, 0.5, 1e-7]), st.floats(-1e3, 1e3)
    ),
    offset=st.one_of(st.just(0.0), st.sampled_from([-40.0, 0.25, 3.0]), st.floats(-1e3, 1e3)),
    registers=st.lists(st.integers(-2, 0x10001), min_size=0, max_size=3),
)
def test_a_point_decoder_gives_what_decode_point_gives(
    dtype: str, order: str, scale: float, offset: float, registers: list[int]
) -> None:
    """The poller's per-point decoder: the same value and type, or the same error, every time."""
    point = PointConfig("p", "d", type=dtype, order=order, scale=scale, offset=offset)

    def outcome(decode: object) -> object:
        try:
            value = decode(registers)  # type: ignore[operator]
        except (ValueError, IndexError, struct.error) as exc:
            return type(exc), str(exc)
        return type(value), struct.pack("<d", value) if type(value) is float else value

    assert outcome(point_decoder(point)) == outcome(lambda r: decode_point(point, r))
