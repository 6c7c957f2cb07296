"""Modbus RTU framing for read requests: CRC, request bytes, reply validation. Pure, no I/O.

A reply is only decoded when every check passes -- CRC, unit id, function code, byte count --
otherwise :class:`BadFrameError` says which check failed and the bytes are discarded.
"""

from __future__ import annotations

import struct

__all__ = [
    "EXCEPTION_LENGTH",
    "BadFrameError",
    "ExceptionReplyError",
    "build_read",
    "crc16",
    "parse_reply",
    "reply_length",
]

EXCEPTION_LENGTH = 5  #: unit, function|0x80, code, CRC (2)


def _table() -> list[int]:
    out = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        out.append(crc)
    return out


_TABLE = _table()


def crc16(data: bytes) -> int:
    """Modbus CRC-16 (poly 0xA001 reflected, init 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc


class BadFrameError(ValueError):
    """A reply failed a check (CRC, unit id, function code, length): discard it."""


class ExceptionReplyError(Exception):
    """The slave answered with a valid exception response."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(f"exception {code:02d}")


def build_read(unit: int, function: int, address: int, count: int) -> bytes:
    """The request frame for FC01-04."""
    body = struct.pack(">BBHH", unit, function, address, count)
    return body + struct.pack("<H", crc16(body))


def reply_length(function: int, count: int) -> int:
    """Bytes of a normal reply to a read of ``count`` registers (FC03/04) or bits (FC01/02)."""
    nbytes = (count + 7) // 8 if function in (1, 2) else 2 * count
    return 5 + nbytes


def parse_reply(unit: int, function: int, count: int, frame: bytes) -> list[int]:
    """Validate a complete reply and return its registers (or 0/1 per bit).

    Raises:
        ExceptionReplyError: a well-formed exception response from ``unit``.
        BadFrameError: anything else that is not exactly the expected reply.
    """
    if len(frame) < EXCEPTION_LENGTH:
        raise BadFrameError(f"short frame ({len(frame)} bytes)")
    if crc16(frame[:-2]) != int.from_bytes(frame[-2:], "little"):
        raise BadFrameError("CRC mismatch")
    if frame[0] != unit:
        raise BadFrameError(f"reply from unit {frame[0]}, expected {unit}")
    if frame[1] == function | 0x80 and len(frame) == EXCEPTION_LENGTH:
        raise ExceptionReplyError(frame[2])
    if frame[1] != function:
        raise BadFrameError(f"reply function {frame[1]:#04x}, expected {function:#04x}")
    expected = reply_length(function, count)
    if len(frame) != expected or frame[2] != expected - 5:
        raise BadFrameError(
            f"byte count {frame[2]} in a {len(frame)}-byte frame, expected {expected - 5}"
        )
    data = frame[3:-2]
    if function in (1, 2):
        return [(data[i // 8] >> (i % 8)) & 1 for i in range(count)]
    return list(struct.unpack(f">{count}H", data))
