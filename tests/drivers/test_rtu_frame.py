"""RTU framing against minimalmodbus's and pymodbus's own framing (independent oracles)."""

from __future__ import annotations

import struct

import minimalmodbus
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse

from edge.drivers.rtu_frame import (
    BadFrameError,
    ExceptionReplyError,
    build_read,
    crc16,
    parse_reply,
    reply_length,
)


@given(st.binary(max_size=64))
def test_crc_matches_minimalmodbus(data: bytes) -> None:
    assert struct.pack("<H", crc16(data)) == minimalmodbus._calculate_crc(data)


def test_known_frame() -> None:
    # the classic example: read 3 holding registers at 0x006B from unit 0x11; CRC 76 87
    assert build_read(0x11, 3, 0x006B, 3) == bytes.fromhex("1103006B00037687")


@given(
    st.integers(1, 247),
    st.sampled_from([3, 4]),
    st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125),
)
def test_parse_pymodbus_built_reply(unit: int, function: int, regs: list[int]) -> None:
    from pymodbus.framer import FramerRTU
    from pymodbus.pdu import DecodePDU

    pdu = ReadHoldingRegistersResponse(registers=regs, dev_id=unit)
    pdu.function_code = function
    frame = FramerRTU(DecodePDU(False)).buildFrame(pdu)
    assert len(frame) == reply_length(function, len(regs))
    assert parse_reply(unit, function, len(regs), frame) == regs


def _reply(unit: int, function: int, payload: bytes) -> bytes:
    body = bytes([unit, function, len(payload)]) + payload
    return body + struct.pack("<H", crc16(body))


def test_bits_reply() -> None:
    frame = _reply(1, 1, bytes([0b1000_0101, 0b1]))
    assert parse_reply(1, 1, 9, frame) == [1, 0, 1, 0, 0, 0, 0, 1, 1]


def test_discards() -> None:
    good = _reply(1, 3, b"\x00\x2a")
    assert parse_reply(1, 3, 1, good) == [42]
    with pytest.raises(BadFrameError, match="CRC"):
        parse_reply(1, 3, 1, good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(BadFrameError, match="unit 2"):
        parse_reply(1, 3, 1, _reply(2, 3, b"\x00\x2a"))
    with pytest.raises(BadFrameError, match="function"):
        parse_reply(1, 3, 1, _reply(1, 4, b"\x00\x2a"))
    with pytest.raises(BadFrameError, match="byte count"):
        parse_reply(1, 3, 2, good)
    with pytest.raises(BadFrameError, match="short"):
        parse_reply(1, 3, 1, good[:3])
    exc = bytes([1, 0x83, 2])
    with pytest.raises(ExceptionReplyError) as info:
        parse_reply(1, 3, 1, exc + struct.pack("<H", crc16(exc)))
    assert info.value.code == 2
