"""The RTU slave on a real PTY, checked by pymodbus's client as an independent master."""

from __future__ import annotations

import asyncio
import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer.rtu import FramerRTU
from pymodbus.pdu import ModbusPDU

from edge.firmware_sim import Fault, append_crc
from edge.firmware_sim.rtu import RequestFramer


async def test_fc03_fc04_read_registers(bus):
    bus.units[1].bank.set("holding", 10, [1, 2, 0xFFFF])
    bus.units[1].bank.set("input", 5, [0xBEEF, 7])
    rr = await bus.client.read_holding_registers(10, count=3, device_id=1)
    assert rr.registers == [1, 2, 0xFFFF]
    rr = await bus.client.read_input_registers(5, count=2, device_id=1)
    assert rr.registers == [0xBEEF, 7]


async def test_fc01_fc02_read_bits(bus):
    bank = bus.units[1].bank
    bank.set("coil", 0, [True, False, True, True, False, False, False, False, True])
    bank.set("discrete", 3, [True, True, False, True])
    rr = await bus.client.read_coils(0, count=9, device_id=1)
    assert rr.bits[:9] == [True, False, True, True, False, False, False, False, True]
    rr = await bus.client.read_discrete_inputs(3, count=4, device_id=1)
    assert rr.bits[:4] == [True, True, False, True]


async def test_fc05_fc15_write_coils(bus):
    rr = await bus.client.write_coil(7, True, device_id=1)
    assert not rr.isError()
    assert bus.units[1].bank.coils[7] is True
    await bus.client.write_coil(7, False, device_id=1)
    assert bus.units[1].bank.coils[7] is False
    pattern = [True, False, False, True, True, False, True, False, True, True]
    rr = await bus.client.write_coils(20, pattern, device_id=1)
    assert not rr.isError()
    assert bus.units[1].bank.coils[20:30] == pattern
    assert (await bus.client.read_coils(20, count=10, device_id=1)).bits[:10] == pattern


async def test_fc06_fc16_write_registers(bus):
    rr = await bus.client.write_register(3, 0xA55A, device_id=1)
    assert not rr.isError()
    assert bus.units[1].bank.holding[3] == 0xA55A
    rr = await bus.client.write_registers(40, [10, 20, 30, 40], device_id=1)
    assert not rr.isError()
    assert bus.units[1].bank.holding[40:44] == [10, 20, 30, 40]
    assert (await bus.client.read_holding_registers(40, count=4, device_id=1)).registers == [
        10,
        20,
        30,
        40,
    ]


async def test_multidrop_each_unit_answers_only_its_id(bus):
    bus.units[1].bank.set("holding", 0, [111])
    bus.units[2].bank.set("holding", 0, [222])
    assert (await bus.client.read_holding_registers(0, count=1, device_id=1)).registers == [111]
    assert (await bus.client.read_holding_registers(0, count=1, device_id=2)).registers == [222]
    with pytest.raises(ModbusIOException):
        await bus.client.read_holding_registers(0, count=1, device_id=3)  # nobody home: silence


async def test_broadcast_write_reaches_every_unit_and_gets_no_reply(bus):
    rr = await bus.client.write_register(1, 4242, device_id=0, no_response_expected=True)
    assert rr is None
    await asyncio.sleep(0.05)
    assert bus.units[1].bank.holding[1] == 4242
    assert bus.units[2].bank.holding[1] == 4242
    assert not [data for sending, data in bus.packets if not sending]  # nothing came back


async def test_exception_01_illegal_function(bus):
    rr = await bus.client.read_exception_status(device_id=1)  # FC07: not implemented
    assert rr.isError()
    assert rr.exception_code == 1


async def test_exception_02_illegal_address(bus):
    rr = await bus.client.read_holding_registers(48, count=5, device_id=1)  # table has 50
    assert rr.isError()
    assert rr.exception_code == 2
    rr = await bus.client.write_coil(40, True, device_id=1)
    assert rr.isError()
    assert rr.exception_code == 2


class RawRequest(ModbusPDU):
    """A request pymodbus would refuse to build: raw function code and body."""

    def __init__(self, function_code: int, body: bytes, dev_id: int = 1) -> None:
        super().__init__(dev_id=dev_id)
        self.function_code = function_code
        self.body = body

    def encode(self) -> bytes:
        return self.body


async def test_exception_03_illegal_value(bus):
    # pymodbus validates counts itself, so these go out as raw PDUs through its transaction layer
    too_many = RawRequest(3, struct.pack(">HH", 0, 126))  # FC03 with more than 125 registers
    rr = await bus.client.execute(False, too_many)
    assert rr.isError()
    assert rr.exception_code == 3
    bad_coil = RawRequest(5, struct.pack(">HH", 0, 0x1234))  # FC05 value not 0000/FF00
    rr = await bus.client.execute(False, bad_coil)
    assert rr.isError()
    assert rr.exception_code == 3


async def test_exception_04_device_failure_injected(bus):
    bus.units[2].faults.add(Fault.make("exception", 0.0, {"code": 4}))
    rr = await bus.client.read_holding_registers(0, count=1, device_id=2)
    assert rr.isError()
    assert rr.exception_code == 4
    rr = await bus.client.read_holding_registers(0, count=1, device_id=1)  # neighbour unaffected
    assert not rr.isError()


async def test_corrupted_crc_reply_is_rejected_by_master(bus):
    bus.units[1].faults.add(Fault.make("corrupt_crc", 0.0, {}))
    with pytest.raises(ModbusIOException):
        await bus.client.read_holding_registers(0, count=2, device_id=1)
    replies = [data for sending, data in bus.packets if not sending]
    assert replies, "the slave did answer, with a damaged frame"
    frame = b"".join(replies)
    assert frame[:2] == b"\x01\x03"
    # pymodbus's own CRC routine (an independent implementation) disagrees with the trailer
    assert FramerRTU.compute_CRC(frame[:-2]) != int.from_bytes(frame[-2:], "big")
    bus.units[1].faults.clear()
    assert not (await bus.client.read_holding_registers(0, count=2, device_id=1)).isError()


async def test_request_with_bad_crc_is_ignored_and_counted(bus):
    request = bytearray(append_crc(bytes([1, 3, 0, 0, 0, 1])))
    request[-1] ^= 0xFF
    bus.client.close()  # a second reader on the tty would take the reply
    fd = os.open(bus.path, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(fd, bytes(request))
        await asyncio.sleep(0.1)
        assert bus.slave.stats.crc_errors == 1
        assert bus.slave.stats.replies == 0
        os.write(fd, append_crc(bytes([1, 3, 0, 0, 0, 1])))  # the next good frame is served
        await asyncio.sleep(0.1)
        assert bus.slave.stats.replies == 1
    finally:
        os.close(fd)


async def test_frame_split_across_writes_is_reassembled(bus):
    bus.units[1].bank.set("holding", 0, [0x1234, 0x5678])
    request = append_crc(bytes([1, 16, 0, 4, 0, 2, 4, 0, 9, 0, 8]))  # FC16 with a byte count
    bus.client.close()  # a second reader on the tty would take the reply
    fd = os.open(bus.path, os.O_RDWR | os.O_NOCTTY)
    try:
        for piece in (request[:3], request[3:7], request[7:]):
            os.write(fd, piece)
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)
        assert bus.units[1].bank.holding[4:6] == [9, 8]
        reply = os.read(fd, 64)
        assert reply == append_crc(bytes([1, 16, 0, 4, 0, 2]))
    finally:
        os.close(fd)


async def test_wrong_unit_reply_is_rejected_by_master(bus):
    bus.units[1].faults.add(Fault.make("wrong_unit", 0.0, {"unit": 9}))
    with pytest.raises(ModbusIOException):
        await bus.client.read_holding_registers(0, count=1, device_id=1)
    replies = b"".join(data for sending, data in bus.packets if not sending)
    assert replies[0] == 9


def test_framer_pure_cases():
    framer = RequestFramer(frame_gap=0.5)
    good = append_crc(bytes([5, 3, 0, 1, 0, 2]))
    # two frames in one chunk, then a frame in three chunks
    assert framer.feed(good + good, now=0.0) == [good, good]
    assert framer.feed(good[:2], now=1.0) == []
    assert framer.feed(good[2:5], now=1.1) == []
    assert framer.feed(good[5:], now=1.2) == [good]
    # a stale half frame is dropped after the gap, the next frame is still found
    assert framer.feed(good[:4], now=2.0) == []
    assert framer.feed(good, now=3.0) == [good]
    assert framer.stats.dropped_bytes == 4
    # unknown function: found by its CRC (FC17 report server id, 4 bytes)
    report = append_crc(bytes([5, 17]))
    assert framer.feed(report, now=4.0) == [report]


def test_fc16_length_from_byte_count():
    framer = RequestFramer()
    values = struct.pack(">3H", 1, 2, 3)
    frame = append_crc(bytes([1, 16, 0, 0, 0, 3, 6]) + values)
    assert framer.feed(frame[:8], now=0.0) == []
    assert framer.feed(frame[8:], now=0.0) == [frame]


@given(
    st.lists(
        st.tuples(st.integers(1, 247), st.sampled_from([1, 2, 3, 4, 5, 6, 15, 16])),
        min_size=1,
        max_size=8,
    ),
    st.lists(st.integers(1, 40), min_size=1, max_size=20),
)
def test_framer_any_chunking_yields_the_same_frames(specs, cuts):
    frames = []
    for unit, function in specs:
        if function in (15, 16):
            frames.append(append_crc(bytes([unit, function, 0, 0, 0, 2, 4, 1, 2, 3, 4])))
        else:
            frames.append(append_crc(bytes([unit, function, 0, 1, 0, 2])))
    stream = b"".join(frames)
    framer = RequestFramer()
    out, pos, i = [], 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        out += framer.feed(stream[pos : pos + step], now=0.0)
        pos, i = pos + step, i + 1
    assert out == frames
    assert framer.stats.crc_errors == 0
