"""The slave's application layer, PDU in, PDU out (no transport)."""

from __future__ import annotations

import struct

import pytest

from edge.firmware_sim import RegisterBank, handle_pdu


@pytest.fixture
def bank():
    b = RegisterBank.create(holding=10, input=10, coils=20, discrete=20)
    b.set("holding", 0, list(range(100, 110)))
    return b


def test_read_holding(bank):
    assert handle_pdu(bank, bytes([3, 0, 2, 0, 2])) == bytes([3, 4, 0, 102, 0, 103])


def test_coil_packing_lsb_first(bank):
    bank.set("coil", 0, [1, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    assert handle_pdu(bank, bytes([1, 0, 0, 0, 10])) == bytes([1, 2, 0b00000001, 0b00000010])


def test_write_multiple_coils(bank):
    reply = handle_pdu(bank, bytes([15, 0, 3, 0, 10, 2, 0b11001101, 0b01]))
    assert reply == bytes([15, 0, 3, 0, 10])
    assert bank.get("coil", 3, 10) == [1, 0, 1, 1, 0, 0, 1, 1, 1, 0]


@pytest.mark.parametrize(
    ("pdu", "code"),
    [
        (bytes([0x2B, 0x0E, 1, 0]), 1),  # read device identification: not implemented
        (bytes([3, 0, 9, 0, 2]), 2),  # 9..10 of a 10-register table
        (bytes([4, 0, 10, 0, 1]), 2),
        (bytes([6, 0, 10, 0, 1]), 2),
        (bytes([2, 0, 0, 0x07, 0xD1]), 3),  # 2001 bits
        (bytes([16, 0, 0, 0, 2, 3, 0, 1, 0]), 3),  # byte count disagrees with quantity
        (bytes([15, 0, 0, 0, 9, 1, 0xFF]), 3),
        (bytes([3, 0, 0]), 3),  # truncated
    ],
)
def test_exceptions(bank, pdu, code):
    assert handle_pdu(bank, pdu) == bytes([pdu[0] | 0x80, code])


def test_write_single_register_echoes(bank):
    pdu = bytes([6]) + struct.pack(">HH", 7, 0xBEEF)
    assert handle_pdu(bank, pdu) == pdu
    assert bank.holding[7] == 0xBEEF
