"""CRC-16/MODBUS (polynomial 0xA001 reflected, initial 0xFFFF), appended low byte first."""

from __future__ import annotations

__all__ = ["append_crc", "check_crc", "crc16"]


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc16(data: bytes) -> int:
    """Return the Modbus CRC-16 of ``data`` as an integer (as computed, before byte swap)."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc


def append_crc(frame: bytes) -> bytes:
    """Return ``frame`` followed by its CRC, low byte first as on the wire."""
    return frame + crc16(frame).to_bytes(2, "little")


def check_crc(frame: bytes) -> bool:
    """Whether the last two bytes of ``frame`` are the CRC of the bytes before them."""
    return len(frame) >= 4 and crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")
