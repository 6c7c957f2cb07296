"""Modbus TCP server checked by pymodbus's TCP client: every function code and exception."""

from __future__ import annotations

import asyncio
import contextlib
import struct

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from edge.firmware_sim import Fault, ModbusDevice, RegisterBank, TcpServer


@pytest.fixture
async def tcp():
    devices = [
        ModbusDevice("plc", 1, RegisterBank.create(holding=20, input=20, coils=20, discrete=20))
    ]
    server = TcpServer(devices)
    task = asyncio.create_task(server.serve(), name="test tcp server")
    await asyncio.sleep(0.05)
    client = AsyncModbusTcpClient(server.host, port=server.port, timeout=0.5, retries=0)
    assert await client.connect()
    try:
        yield server, devices[0], client
    finally:
        client.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_every_function_code(tcp):
    _, device, client = tcp
    bank = device.bank
    bank.set("input", 0, [11, 12])
    bank.set("discrete", 0, [True, False, True])
    assert not (await client.write_register(0, 7)).isError()
    assert bank.holding[0] == 7
    assert not (await client.write_registers(1, [8, 9])).isError()
    assert (await client.read_holding_registers(0, count=3)).registers == [7, 8, 9]
    assert (await client.read_input_registers(0, count=2)).registers == [11, 12]
    assert not (await client.write_coil(2, True)).isError()
    assert not (await client.write_coils(4, [True, True, False, True])).isError()
    assert (await client.read_coils(0, count=8)).bits[:8] == [
        False,
        False,
        True,
        False,
        True,
        True,
        False,
        True,
    ]
    assert (await client.read_discrete_inputs(0, count=3)).bits[:3] == [True, False, True]


async def test_exceptions(tcp):
    _, device, client = tcp
    assert (await client.read_exception_status()).exception_code == 1
    assert (await client.read_holding_registers(19, count=2)).exception_code == 2
    rr = await client.read_holding_registers(0, count=2, device_id=7)  # no such unit behind us
    assert rr.exception_code == 0x0B
    device.faults.add(Fault.make("exception", 0.0, {"code": 4, "function": 3}))
    assert (await client.read_holding_registers(0, count=1)).exception_code == 4
    assert not (await client.read_input_registers(0, count=1)).isError()  # other functions fine


async def test_illegal_value_raw_frame(tcp):
    server, _, client = tcp
    client.close()
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(struct.pack(">HHHB", 0x1234, 0, 6, 1) + bytes([3, 0, 0, 0, 126]))
        reply = await asyncio.wait_for(reader.readexactly(9), 2)
        assert reply == struct.pack(">HHHB", 0x1234, 0, 3, 1) + bytes([0x83, 3])
    finally:
        writer.close()


async def test_corrupt_fault_spoils_transaction_id(tcp):
    _, device, client = tcp
    device.faults.add(Fault.make("corrupt_crc", 0.0, {}))
    with pytest.raises(ModbusIOException):
        await client.read_holding_registers(0, count=1)


async def test_unplug_and_plug_back_on_same_port(tcp):
    server, _, client = tcp
    port = server.port
    server.unplug_now()
    await asyncio.sleep(0.05)
    with pytest.raises((ModbusIOException, ConnectionException)):
        await client.read_holding_registers(0, count=1)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(server.host, port)
    await server.plug()
    assert server.port == port
    fresh = AsyncModbusTcpClient(server.host, port=port, timeout=0.5, retries=0)
    assert await fresh.connect()
    assert not (await fresh.read_holding_registers(0, count=1)).isError()
    fresh.close()
