"""Whole scenarios running: links, ports.json, thread wrapper, shipped register maps."""

from __future__ import annotations

import asyncio
import json
import os
import time

import minimalmodbus
import pytest
import serial
from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from edge.firmware_sim import Simulator, SimulatorThread, exchange_time, load_scenario
from edge.firmware_sim.rtu import PTY_LATENCY


@pytest.mark.parametrize("name", ["demo", "bottling", "cold-room"])
async def test_shipped_scenarios_start_and_clean_up(tmp_path, name):
    scenario = load_scenario(name)
    async with Simulator(scenario, tmp_path, seed=1) as sim:
        info = json.loads((tmp_path / "ports.json").read_text())
        assert info["scenario"] == name
        assert info["seed"] == 1
        for bus, path in sim.serial_paths.items():
            assert path == tmp_path / f"{bus}.tty"
            assert os.readlink(path).startswith("/dev/pts/")
            assert info["serial"][bus]["path"] == str(path)
            assert info["serial"][bus]["baudrate"] == scenario.buses[bus].baudrate
        for bus, (host, port) in sim.tcp_endpoints.items():
            assert info["tcp"][bus] == {
                "host": host,
                "port": port,
                "devices": info["tcp"][bus]["devices"],
            }
        links = list(sim.serial_paths.values())
    assert not any(p.exists() or p.is_symlink() for p in links)
    assert not (tmp_path / "ports.json").exists()


def test_thread_wrapper_with_minimalmodbus(tmp_path):
    with SimulatorThread("demo", tmp_path, seed=0) as sim:
        instrument = minimalmodbus.Instrument(str(sim.serial_paths["tunnel-bus"]), 1)
        instrument.serial.baudrate = 19200
        instrument.serial.timeout = 0.5
        temperature = instrument.read_float(0, functioncode=3)
        humidity = instrument.read_register(2, number_of_decimals=1)
        running = instrument.read_register(3)
        assert 3.9 < temperature < 4.2
        assert 80.0 < humidity < 90.0
        assert running == 1
        # register model access for tests: set a register, read it over the wire
        sim.registers("tunnel").set("holding", 3, [0])
        assert instrument.read_register(3) == 0
        sim.set_model("tunnel", "temperature", setpoint=30.0, tau=0.2)
        time.sleep(1.0)
        assert instrument.read_float(0) > 25.0
        assert sim.value("tunnel", "temperature") > 25.0
        instrument.serial.close()


async def test_bottling_register_maps_over_the_wire(tmp_path):
    async with Simulator("bottling", tmp_path, seed=4, line_timing=False) as sim:
        await asyncio.sleep(1.0)
        c = AsyncModbusSerialClient(
            port=str(sim.serial_paths["line-bus"]),
            framer=FramerType.RTU,
            baudrate=19200,
            timeout=0.5,
            retries=0,
        )
        assert await c.connect()
        f32, u32 = c.DATATYPE.FLOAT32, c.DATATYPE.UINT32
        bottles = c.convert_from_registers(
            (await c.read_holding_registers(0, count=2, device_id=1)).registers, u32
        )
        assert 1 <= bottles <= 4  # 2 per second
        fill = c.convert_from_registers(
            (await c.read_input_registers(0, count=2, device_id=1)).registers,
            f32,
            word_order="little",
        )
        assert 490.0 < fill < 515.0  # CDAB float
        assert (await c.read_coils(0, count=1, device_id=1)).bits[0] is True
        assert (await c.read_discrete_inputs(0, count=1, device_id=1)).bits[0] is False
        torque = (await c.read_input_registers(0, count=1, device_id=2)).registers[0] / 100
        assert 1.8 < torque < 2.6
        for unit, expected in ((3, 6.0), (4, 4.0)):
            regs = (await c.read_holding_registers(0, count=3, device_id=unit)).registers
            assert abs(c.convert_from_registers(regs[:2], f32) - expected) < 0.3
            assert regs[2] == expected * 10  # int16 setpoint x10
        c.close()
        host, port = sim.tcp_endpoints["plc"]
        t = AsyncModbusTcpClient(host, port=port, timeout=0.5, retries=0)
        assert await t.connect()
        assert (await t.read_holding_registers(0, count=1, device_id=1)).registers == [120]
        t.close()

        def ask_scanner() -> bytes:  # blocking pyserial, off the simulator's loop
            with serial.Serial(str(sim.serial_paths["lot-scanner"]), 9600, timeout=0.5) as scanner:
                scanner.write(b"READ\r\n")
                return scanner.readline()

        assert await asyncio.to_thread(ask_scanner) == b"L2026-0412-A\r\n"


async def test_cold_room_register_maps_over_the_wire(tmp_path):
    async with Simulator("cold-room", tmp_path, seed=4, line_timing=False) as sim:
        c = AsyncModbusSerialClient(
            port=str(sim.serial_paths["cold-bus"]),
            framer=FramerType.RTU,
            baudrate=9600,
            stopbits=2,
            timeout=0.5,
            retries=0,
        )
        assert await c.connect()
        regs = (await c.read_input_registers(0, count=2, device_id=1)).registers
        assert 15 <= c.convert_from_registers(regs[:1], c.DATATYPE.INT16) <= 25  # 2.0 degC x10
        assert 850 <= regs[1] <= 910  # 88 %RH x10
        assert (await c.read_discrete_inputs(0, count=1, device_id=2)).bits[
            0
        ] is True  # door open at start
        words = (await c.read_holding_registers(0, count=2, device_id=3)).registers
        coil = c.convert_from_registers(
            [words[1], words[0]], c.DATATYPE.FLOAT32
        )  # DCBA: swap words...
        swapped = [((w & 0xFF) << 8) | (w >> 8) for w in (words[1], words[0])]  # ...and bytes
        coil = c.convert_from_registers(swapped, c.DATATYPE.FLOAT32)
        assert -7.0 < coil < 0.0  # defrost just began: warming from -6 toward 12
        c.close()


async def test_line_timing_never_answers_faster_than_the_wire(tmp_path):
    async with Simulator("cold-room", tmp_path, seed=0) as sim:  # 9600 baud, 5 ms turnaround
        c = AsyncModbusSerialClient(
            port=str(sim.serial_paths["cold-bus"]),
            framer=FramerType.RTU,
            baudrate=9600,
            timeout=1.0,
            retries=0,
        )
        assert await c.connect()
        start = time.monotonic()
        for _ in range(3):
            await c.read_input_registers(0, count=2, device_id=1)
        elapsed = (time.monotonic() - start) / 3
        c.close()
    # the wait is shortened by what the PTY itself adds (rtu.PTY_LATENCY), never by more
    assert elapsed >= exchange_time(8, 9, 9600, turnaround=0.005) - PTY_LATENCY


def test_parity_e_master_can_reopen_the_same_pty(tmp_path):
    """A PTY drops parity; reopening with parity E must still work (see ptyport._park_speed)."""
    from edge.firmware_sim import append_crc

    with SimulatorThread("bottling", tmp_path, line_timing=False) as sim:
        for _ in range(3):
            with serial.Serial(
                str(sim.serial_paths["line-bus"]), 19200, parity=serial.PARITY_EVEN, timeout=0.5
            ) as port:
                port.write(append_crc(bytes([3, 3, 0, 2, 0, 1])))  # tunnel-1 setpoint x10
                assert port.read(7)[:5] == bytes([3, 3, 2, 0, 60])
        with serial.Serial(str(sim.serial_paths["filler-scale"]), 9600, parity="E", timeout=1) as s:
            assert s.readline().endswith(b" g\r\n")
        with serial.Serial(str(sim.serial_paths["filler-scale"]), 9600, parity="E", timeout=1) as s:
            assert s.readline().endswith(b" g\r\n")
