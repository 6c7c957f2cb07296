"""Value encoding (type, byte/word order, scale) against pymodbus's converters and struct."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client.mixin import ModbusClientMixin

from edge.firmware_sim import RegisterBank, decode, encode

DT = ModbusClientMixin.DATATYPE
_PYMODBUS = {
    "int16": DT.INT16, "uint16": DT.UINT16, "int32": DT.INT32, "uint32": DT.UINT32,
    "int64": DT.INT64, "uint64": DT.UINT64, "float32": DT.FLOAT32, "float64": DT.FLOAT64,
}  # fmt: skip
_RANGES = {
    "int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1), "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1), "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1),
}  # fmt: skip


@pytest.mark.parametrize("data_type", list(_RANGES))
@given(data=st.data())
def test_integers_match_pymodbus(data_type, data):
    low, high = _RANGES[data_type]
    value = data.draw(st.integers(low, high))
    # ABCD is pymodbus's big word order; CDAB is its little word order (bytes stay big-endian)
    assert encode(value, data_type, "ABCD") == ModbusClientMixin.convert_to_registers(
        value, _PYMODBUS[data_type]
    )
    assert encode(value, data_type, "CDAB") == ModbusClientMixin.convert_to_registers(
        value, _PYMODBUS[data_type], word_order="little"
    )
    for order in ("ABCD", "DCBA", "BADC", "CDAB"):
        assert decode(encode(value, data_type, order), data_type, order) == value


@given(st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_float32_matches_pymodbus(value):
    words = encode(value, "float32", "ABCD")
    assert words == ModbusClientMixin.convert_to_registers(value, DT.FLOAT32)
    assert ModbusClientMixin.convert_from_registers(words, DT.FLOAT32) == value
    for order in ("ABCD", "DCBA", "BADC", "CDAB"):
        assert decode(encode(value, "float32", order), "float32", order) == value


def test_byte_orders_of_a_known_float():
    # 4.0 as IEEE 754 single precision is 0x40800000; 1.5 is 0x3FC00000
    assert encode(4.0, "float32", "ABCD") == [0x4080, 0x0000]
    raw = struct.pack(">f", -1.25)  # bytes A B C D = BF A0 00 00
    assert encode(-1.25, "float32", "ABCD") == [0xBFA0, 0x0000]
    assert encode(-1.25, "float32", "CDAB") == [0x0000, 0xBFA0]
    assert encode(-1.25, "float32", "BADC") == [0xA0BF, 0x0000]
    assert encode(-1.25, "float32", "DCBA") == [0x0000, 0xA0BF]
    assert b"".join(w.to_bytes(2, "big") for w in encode(-1.25, "float32", "DCBA")) == raw[::-1]


def test_scale_offset_round_and_clamp():
    assert encode(85.27, "uint16", scale=0.1) == [853]
    assert decode([853], "uint16", scale=0.1) == pytest.approx(85.3)
    assert encode(-4.0, "int16", scale=0.1) == [0x10000 - 40]
    assert encode(20.0, "uint16", scale=0.1, offset=-50.0) == [700]
    assert encode(1e9, "uint16") == [0xFFFF]  # a transmitter saturates at its span
    assert encode(-5, "uint16") == [0]


def test_strings():
    words = encode("AB12", "string", length=3)
    assert words == [0x4142, 0x3132, 0x0000]
    assert decode(words, "string") == "AB12"


def test_bank_values_and_bounds():
    bank = RegisterBank.create(holding=4, coils=2)
    bank.set_value("holding", 0, math.pi, "float64")
    assert bank.get_value("holding", 0, "float64") == math.pi
    bank.set_value("coil", 1, True, "bool")
    assert bank.get("coil", 0, 2) == [0, 1]
    with pytest.raises(IndexError, match=r"holding 3\.\.4 outside 0\.\.3"):
        bank.set("holding", 3, [1, 2])
