"""Modbus application layer of a slave: one request PDU in, one reply PDU out. Pure, no I/O.

Function codes 01, 02, 03, 04 (reads), 05, 06 (single writes), 15, 16 (multiple writes).
Anything else is answered with exception 01. Checks follow the Modbus application protocol
spec V1.1b3 §6 in its order: quantity out of range -> 03, address range outside the table
-> 02 (so a wrong map and a wrong request give different answers, as on real devices).
"""

from __future__ import annotations

import struct

from edge.firmware_sim.registers import RegisterBank

__all__ = [
    "DEVICE_FAILURE",
    "ILLEGAL_ADDRESS",
    "ILLEGAL_FUNCTION",
    "ILLEGAL_VALUE",
    "SUPPORTED_FUNCTIONS",
    "WRITE_FUNCTIONS",
    "exception_pdu",
    "handle_pdu",
]

ILLEGAL_FUNCTION = 0x01
ILLEGAL_ADDRESS = 0x02
ILLEGAL_VALUE = 0x03
DEVICE_FAILURE = 0x04

SUPPORTED_FUNCTIONS = frozenset({1, 2, 3, 4, 5, 6, 15, 16})
WRITE_FUNCTIONS = frozenset({5, 6, 15, 16})

_READS = {1: ("coil", 2000), 2: ("discrete", 2000), 3: ("holding", 125), 4: ("input", 125)}


def exception_pdu(function: int, code: int) -> bytes:
    """An exception reply: the function code with its high bit set, then the exception code."""
    return bytes([(function | 0x80) & 0xFF, code])


def _pack_bits(bits: list[int]) -> bytes:
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def _unpack_bits(data: bytes, count: int) -> list[bool]:
    return [bool(data[i // 8] >> (i % 8) & 1) for i in range(count)]


def handle_pdu(bank: RegisterBank, pdu: bytes) -> bytes:
    """Apply one request to ``bank`` and return the reply PDU (normal or exception)."""
    if not pdu:
        return exception_pdu(0, ILLEGAL_FUNCTION)
    function, body = pdu[0], pdu[1:]
    if function not in SUPPORTED_FUNCTIONS:
        return exception_pdu(function, ILLEGAL_FUNCTION)
    if len(body) < 4:
        return exception_pdu(function, ILLEGAL_VALUE)
    address, quantity = struct.unpack(">HH", body[:4])
    with bank.lock:
        if function in _READS:
            table, limit = _READS[function]
            if len(body) != 4 or not 1 <= quantity <= limit:
                return exception_pdu(function, ILLEGAL_VALUE)
            if address + quantity > len(bank.table(table)):
                return exception_pdu(function, ILLEGAL_ADDRESS)
            values = bank.get(table, address, quantity)
            if function in (1, 2):
                data = _pack_bits(values)
            else:
                data = b"".join(v.to_bytes(2, "big") for v in values)
            return bytes([function, len(data)]) + data
        if function == 5:
            if len(body) != 4 or quantity not in (0x0000, 0xFF00):
                return exception_pdu(function, ILLEGAL_VALUE)
            if address >= len(bank.coils):
                return exception_pdu(function, ILLEGAL_ADDRESS)
            bank.set("coil", address, [quantity == 0xFF00])
            return pdu
        if function == 6:
            if len(body) != 4:
                return exception_pdu(function, ILLEGAL_VALUE)
            if address >= len(bank.holding):
                return exception_pdu(function, ILLEGAL_ADDRESS)
            bank.set("holding", address, [quantity])
            return pdu
        # 15 and 16: address, quantity, byte count, values
        if len(body) < 5:
            return exception_pdu(function, ILLEGAL_VALUE)
        byte_count, payload = body[4], body[5:]
        if function == 15:
            ok = 1 <= quantity <= 0x07B0 and byte_count == (quantity + 7) // 8
            table = "coil"
        else:
            ok = 1 <= quantity <= 0x007B and byte_count == 2 * quantity
            table = "holding"
        if not ok or len(payload) != byte_count:
            return exception_pdu(function, ILLEGAL_VALUE)
        if address + quantity > len(bank.table(table)):
            return exception_pdu(function, ILLEGAL_ADDRESS)
        if function == 15:
            bank.set("coil", address, _unpack_bits(payload, quantity))
        else:
            bank.set("holding", address, list(struct.unpack(f">{quantity}H", payload)))
        return bytes([function]) + body[:4]
