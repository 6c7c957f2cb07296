"""One test per fault, each seen by an independent master (pymodbus) through a running Simulator."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path

import pytest
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from edge.firmware_sim import Simulator, parse_scenario

SCENARIO = """
name: faults
buses:
  bus: {kind: rtu, baudrate: 115200}
  net: {kind: tcp}
devices:
  probe:
    bus: bus
    unit: 1
    points:
      level: {register: 0, type: float32, value: 10.0}
      count: {register: 2, type: uint32, model: {kind: counter, rate: 10}}
  other:
    bus: bus
    unit: 2
    points:
      level: {register: 0, type: uint16, value: 5}
  plc:
    bus: net
    unit: 1
    points:
      speed: {register: 0, type: uint16, value: 120}
"""


@pytest.fixture
async def sim(tmp_path: Path):
    async with Simulator(
        parse_scenario(SCENARIO, None), tmp_path, seed=3, line_timing=False
    ) as running:
        yield running


@pytest.fixture
async def client(sim):
    c = AsyncModbusSerialClient(
        port=str(sim.serial_paths["bus"]),
        framer=FramerType.RTU,
        baudrate=115200,
        timeout=0.4,
        retries=0,
    )
    assert await c.connect()
    yield c
    c.close()


async def level(client) -> float:
    rr = await client.read_holding_registers(0, count=2, device_id=1)
    return client.convert_from_registers(rr.registers, client.DATATYPE.FLOAT32)


async def count(client) -> int:
    rr = await client.read_holding_registers(2, count=2, device_id=1)
    return client.convert_from_registers(rr.registers, client.DATATYPE.UINT32)


async def samples(client, n: int, every: float = 0.1) -> list[float]:
    out = []
    for _ in range(n):
        out.append(await level(client))
        await asyncio.sleep(every)  # one model step apart: independent draws
    return out


async def test_noise(sim, client):
    assert await level(client) == 10.0
    sim.inject("probe", "noise", sd=0.5, point="level")
    values = await samples(client, 25)
    assert len(set(values)) > 20
    assert 0.2 < statistics.stdev(values) < 1.0
    assert abs(statistics.mean(values) - 10.0) < 0.5
    sim.clear("probe", "noise")
    assert await level(client) == 10.0


async def test_drift(sim, client):
    sim.inject("probe", "drift", rate=2.0)
    first = await level(client)
    await asyncio.sleep(0.5)
    second = await level(client)
    assert 0.6 < second - first < 2.0  # 2 units/s over ~0.5 s
    assert second > 10.5


async def test_stuck(sim, client):
    before = await count(client)
    await asyncio.sleep(0.25)
    assert await count(client) > before  # the counter runs at 10/s
    sim.inject("probe", "stuck", point="count")
    frozen = await count(client)
    await asyncio.sleep(0.35)
    assert await count(client) == frozen
    sim.clear("probe", "stuck")
    assert await count(client) > frozen


async def test_spikes(sim, client):
    sim.inject("probe", "spikes", magnitude=100.0, probability=0.5, point="level")
    values = await samples(client, 20)
    assert set(values) <= {10.0, 110.0, -90.0}
    assert len({v for v in values if v != 10.0}) >= 1  # P(no spike in 20 steps) = 2**-20
    assert 10.0 in values


async def test_no_response(sim, client):
    sim.inject("probe", "no_response", duration=0.6)
    with pytest.raises(ModbusIOException):
        await level(client)
    assert (await client.read_holding_registers(0, count=1, device_id=2)).registers == [5]
    await asyncio.sleep(0.6)
    assert await level(client) == 10.0  # cleared itself


async def test_corrupted_crc(sim, client):
    sim.inject("probe", "corrupt_crc")
    with pytest.raises(ModbusIOException):
        await level(client)
    sim.clear("probe")
    assert await level(client) == 10.0


async def test_slow_response(sim, tmp_path):
    sim.inject("probe", "slow_response", delay=0.5)
    patient = AsyncModbusSerialClient(
        port=str(sim.serial_paths["bus"]),
        framer=FramerType.RTU,
        baudrate=115200,
        timeout=2.0,
        retries=0,
    )
    assert await patient.connect()
    try:
        start = time.monotonic()
        assert await level(patient) == 10.0
        assert time.monotonic() - start >= 0.5
    finally:
        patient.close()


async def test_slow_response_at_a_chosen_time(sim, client):
    """``at``: the reply ends at a set time after the request (187 ms of a 200 ms timeout, or
    just past it), as pymodbus measures it."""
    sim.inject("probe", "slow_response", at="250ms")
    times = []
    for _ in range(3):
        start = time.monotonic()
        assert await level(client) == 10.0  # timeout 0.4 s: in time
        times.append(time.monotonic() - start)
    assert min(times) >= 0.25, times
    assert max(times) < 0.25 + 0.1, times
    sim.inject("probe", "slow_response", at=0.5)  # a number of seconds works too
    with pytest.raises(ModbusIOException):
        await level(client)  # past the 0.4 s timeout


async def test_slow_response_times_out_an_impatient_master(sim, client):
    sim.inject("probe", "slow_response", delay=1.0)
    with pytest.raises(ModbusIOException):
        await level(client)  # timeout 0.4 s


async def test_wrong_unit_id(sim, tmp_path):
    sim.inject("probe", "wrong_unit", unit=7)
    seen: list[bytes] = []

    def trace(sending: bool, data: bytes) -> bytes:
        if not sending:
            seen.append(bytes(data))
        return data

    c = AsyncModbusSerialClient(
        port=str(sim.serial_paths["bus"]),
        framer=FramerType.RTU,
        baudrate=115200,
        timeout=0.4,
        retries=0,
        trace_packet=trace,
    )
    assert await c.connect()
    try:
        with pytest.raises(ModbusIOException):
            await level(c)
        assert b"".join(seen)[0] == 7
    finally:
        c.close()


@pytest.mark.parametrize("code", [1, 2, 3, 4, 6])
async def test_exception_responses(sim, client, code):
    sim.inject("probe", "exception", code=code, function=3)
    rr = await client.read_holding_registers(0, count=2, device_id=1)
    assert rr.isError()
    assert rr.exception_code == code
    assert not (await client.write_register(10, 1, device_id=1)).isError()  # FC06 unaffected


async def test_port_disappears_and_returns_at_same_path(sim, client):
    link = sim.serial_paths["bus"]
    first = os.readlink(link)
    assert await level(client) == 10.0
    sim.inject("probe", "port_gone", duration=0.5)  # a device name: its bus is unplugged
    assert not link.exists()
    assert not link.is_symlink()
    with pytest.raises((ModbusIOException, ConnectionException)):
        await level(client)
    await asyncio.sleep(0.7)
    assert link.is_symlink()
    assert os.readlink(link) == sim.ports["bus"].device  # the new PTY
    client.close()
    again = AsyncModbusSerialClient(
        port=str(link), framer=FramerType.RTU, baudrate=115200, timeout=0.4, retries=0
    )
    assert await again.connect()
    try:
        assert await level(again) == 10.0
    finally:
        again.close()
    assert sim.ports["bus"].generation == 2  # a new PTY (the kernel may reuse the pts number)
    assert first.startswith("/dev/pts/")


async def test_port_gone_until_cleared(sim):
    link = sim.serial_paths["bus"]
    sim.inject("bus", "port_gone")
    await asyncio.sleep(0.3)
    assert not link.exists()
    assert sim.unplugged("bus")
    sim.clear("bus")
    assert link.is_symlink()
    c = AsyncModbusSerialClient(
        port=str(link), framer=FramerType.RTU, baudrate=115200, timeout=0.4, retries=0
    )
    assert await c.connect()
    assert await level(c) == 10.0
    c.close()


async def test_tcp_port_gone_and_back(sim):
    host, port = sim.tcp_endpoints["net"]
    c = AsyncModbusTcpClient(host, port=port, timeout=0.4, retries=0)
    assert await c.connect()
    assert (await c.read_holding_registers(0, count=1)).registers == [120]
    sim.inject("plc", "port_gone", duration=0.4)
    await asyncio.sleep(0.05)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(host, port)
    c.close()
    await asyncio.sleep(0.5)
    c = AsyncModbusTcpClient(host, port=port, timeout=0.4, retries=0)
    assert await c.connect()
    assert (await c.read_holding_registers(0, count=1)).registers == [120]
    c.close()


async def test_scheduled_faults(tmp_path):
    text = (
        SCENARIO
        + """
schedule:
  - {at: 300ms, duration: 300ms, device: probe, fault: no_response}
  - {at: 900ms, duration: 300ms, device: other, fault: port_gone}
"""
    )
    async with Simulator(parse_scenario(text, None), tmp_path, line_timing=False) as sim:
        link = sim.serial_paths["bus"]
        c = AsyncModbusSerialClient(
            port=str(link), framer=FramerType.RTU, baudrate=115200, timeout=0.1, retries=0
        )
        assert await c.connect()
        assert await level(c) == 10.0
        await asyncio.sleep(0.4 - sim.now())
        with pytest.raises(ModbusIOException):
            await level(c)
        await asyncio.sleep(0.7 - sim.now())
        assert await level(c) == 10.0
        await asyncio.sleep(1.0 - sim.now())
        assert not link.exists()
        assert sim.unplugged("bus")
        c.close()
        await asyncio.sleep(1.3 - sim.now())
        assert not sim.unplugged("bus")
        c = AsyncModbusSerialClient(
            port=str(link), framer=FramerType.RTU, baudrate=115200, timeout=0.2, retries=0
        )
        assert await c.connect()
        assert await level(c) == 10.0
        c.close()


def test_bad_fault_requests_are_refused(tmp_path):
    from edge.firmware_sim import SimulatorThread

    with SimulatorThread(parse_scenario(SCENARIO, None), tmp_path, line_timing=False) as sim:
        with pytest.raises(ValueError, match="unknown fault 'smoke'"):
            sim.inject("probe", "smoke")
        with pytest.raises(ValueError, match="sd: not a parameter of fault 'drift'"):
            sim.inject("probe", "drift", sd=1)
        with pytest.raises(KeyError, match="no device 'nope'"):
            sim.inject("nope", "noise")
        with pytest.raises(KeyError, match="has no point 'levle'"):
            sim.inject("probe", "noise", point="levle")
