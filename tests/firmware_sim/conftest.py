"""Fixtures: a live RTU slave on a real PTY and pymodbus as the independent master."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient

from edge.firmware_sim import ModbusDevice, PtyPort, RegisterBank, RtuSlave


@dataclass
class Bus:
    slave: RtuSlave
    units: dict[int, ModbusDevice]
    path: Path
    client: AsyncModbusSerialClient
    packets: list[tuple[bool, bytes]]


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[Bus]:
    """Units 1 and 2 on one PTY (multi-drop), no line timing; pymodbus connected to it."""
    units = {
        1: ModbusDevice(
            "meter", 1, RegisterBank.create(holding=50, input=20, coils=40, discrete=30)
        ),
        2: ModbusDevice(
            "valve", 2, RegisterBank.create(holding=10, input=10, coils=10, discrete=10)
        ),
    }
    slave = RtuSlave(
        PtyPort(tmp_path / "bus.tty"), units.values(), baudrate=19200, line_timing=False
    )
    task = asyncio.create_task(slave.serve(), name="test rtu slave")
    await asyncio.sleep(0)  # serve() opens the port
    packets: list[tuple[bool, bytes]] = []

    def trace(sending: bool, data: bytes) -> bytes:
        packets.append((sending, bytes(data)))
        return data

    client = AsyncModbusSerialClient(
        port=str(tmp_path / "bus.tty"),
        framer=FramerType.RTU,
        baudrate=19200,
        timeout=0.3,
        retries=0,
        trace_packet=trace,
    )
    assert await client.connect()
    try:
        yield Bus(slave, units, tmp_path / "bus.tty", client, packets)
    finally:
        client.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
