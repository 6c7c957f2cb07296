"""CRC-16/MODBUS against a published frame and against pymodbus's implementation."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from pymodbus.framer.rtu import FramerRTU

from edge.firmware_sim import append_crc, check_crc, crc16


def test_known_frame():
    # FC03 unit 1, 10 registers from 0: the frame printed in countless Modbus manuals
    assert append_crc(bytes.fromhex("01030000000A")) == bytes.fromhex("01030000000AC5CD")


@given(st.binary(min_size=0, max_size=300))
def test_matches_pymodbus(data):
    # pymodbus returns the CRC byte-swapped (wire order as a big-endian integer)
    ours = crc16(data).to_bytes(2, "little")
    assert ours == FramerRTU.compute_CRC(data).to_bytes(2, "big")


@given(st.binary(min_size=2, max_size=100), st.integers(0, 7), st.data())  # >= 4-byte frames
def test_any_single_bit_flip_is_detected(data, bit, draw):
    frame = bytearray(append_crc(data))
    assert check_crc(bytes(frame))
    index = draw.draw(st.integers(0, len(frame) - 1))
    frame[index] ^= 1 << bit
    assert not check_crc(bytes(frame))
