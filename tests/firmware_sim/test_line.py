"""Serial line devices on real PTYs, read with pyserial: scale, scanner, thermometer."""

from __future__ import annotations

import os
import re
import select
import time

import pytest
import serial

from edge.firmware_sim import SimulatorThread, parse_scenario

SCENARIO = """
name: lines
buses:
  scale-line: {kind: line, baudrate: 9600}
  scan-line: {kind: line, baudrate: 9600}
  probe-line: {kind: line, baudrate: 9600, line_ending: "\\r"}
devices:
  scale:
    bus: scale-line
    kind: scale
    interval: 50ms
    settle: 150ms
    query: "P"
    points:
      weight: {unit: g, model: {kind: normal, mean: 12.34, sd: 0.5, period: 300ms}}
  scanner:
    bus: scan-line
    kind: scanner
    interval: 100ms
    query: READ
    lots:
      - {at: 0s, code: LOT-A}
      - {at: 600ms, code: LOT-B}
  thermo:
    bus: probe-line
    kind: thermometer
    query: "T?"
    points:
      temperature: {unit: C, value: 4.5}
"""

SCALE_LINE = re.compile(rb"^(ST|US),(GS|NT),[+-]\d{4}\.\d{2} g\r\n$")


@pytest.fixture
def sim(tmp_path):
    with SimulatorThread(parse_scenario(SCENARIO, None), tmp_path, seed=2) as running:
        yield running


def open_port(sim, bus: str, timeout: float = 1.0) -> serial.Serial:
    port = serial.Serial(str(sim.serial_paths[bus]), 9600, timeout=timeout)
    port.reset_input_buffer()
    return port


def test_scale_prints_stable_and_unstable_lines(sim):
    with open_port(sim, "scale-line") as port:
        lines = [port.readline() for _ in range(30)]
    assert all(SCALE_LINE.match(line) for line in lines), lines
    states = {line[:2] for line in lines}
    assert states == {b"ST", b"US"}  # a new fill every 300 ms, unstable for 150 ms after it
    weights = [float(line[6:14]) for line in lines]
    assert all(9.0 < w < 16.0 for w in weights)
    assert len(set(weights)) > 2


def test_scale_answers_its_query(sim):
    sim.inject("scale", "no_response")  # silence the periodic lines...
    with open_port(sim, "scale-line", timeout=0.3) as port:
        assert port.readline() == b""
        sim.clear("scale")
        sim.inject("scale", "stuck")  # ...then freeze the reading to compare answers
        time.sleep(0.2)
        port.reset_input_buffer()
        port.write(b"P\r\n")
        line = port.readline()
    assert SCALE_LINE.match(line)


def test_lines_arrive_in_pieces(sim):
    fd = os.open(sim.serial_paths["scale-line"], os.O_RDONLY | os.O_NOCTTY)
    chunks = []
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunks.append(os.read(fd, 256))
    finally:
        os.close(fd)
    assert any(not c.endswith(b"\n") for c in chunks)  # a line split across reads
    joined = b"".join(chunks)
    assert joined.count(b"\r\n") >= 10


def test_scanner_lot_change_on_schedule(sim):
    with open_port(sim, "scan-line") as port:
        codes = []
        while sim.now() < 1.0:
            codes.append(port.readline().strip())
    assert codes[0] == b"LOT-A"
    assert codes[-1] == b"LOT-B"
    change = codes.index(b"LOT-B")
    assert set(codes[:change]) == {b"LOT-A"}
    assert set(codes[change:]) == {b"LOT-B"}


def test_scanner_on_demand_and_injected_code(sim):
    sim.inject("scanner", "no_response")
    with open_port(sim, "scan-line") as port:
        time.sleep(0.25)
        port.reset_input_buffer()
        sim.clear("scanner")
        assert sim.send_line("scanner", "LOT-X") is True
        assert port.readline() == b"LOT-X\r\n"


def test_thermometer_answers_only_when_asked(sim):
    with open_port(sim, "probe-line", timeout=0.3) as port:
        assert port.read(100) == b""
        port.write(b"T?\r")
        assert port.read_until(b"\r") == b"T=+004.50 C\r"
        port.write(b"X?\r")
        assert port.read(100) == b""  # unknown command: no answer


def test_line_faults(sim):
    with open_port(sim, "probe-line", timeout=0.3) as port:
        sim.inject("thermo", "corrupt_crc")
        port.write(b"T?\r")
        garbled = port.read_until(b"\r")
        assert garbled.endswith(b"\r")
        assert garbled != b"T=+004.50 C\r"
        assert len(garbled) == 12
        sim.clear("thermo")
        sim.inject("thermo", "slow_response", delay=0.5)
        port.write(b"T?\r")
        assert port.read_until(b"\r") == b""  # not within 0.3 s
        port.timeout = 1.0
        assert port.read_until(b"\r") == b"T=+004.50 C\r"
        sim.clear("thermo")
        sim.inject("thermo", "noise", sd=5.0)
        answers = set()
        for _ in range(5):
            port.write(b"T?\r")
            answers.add(port.read_until(b"\r"))
            time.sleep(0.1)
        assert len(answers) > 1


def test_line_port_gone_and_back(sim):
    link = sim.serial_paths["probe-line"]
    port = open_port(sim, "probe-line", timeout=0.3)
    sim.inject("thermo", "port_gone", duration=0.3)
    assert not link.exists()
    with pytest.raises(serial.SerialException):
        port.write(b"T?\r")  # the PTY is gone: EIO
    port.close()
    with pytest.raises(serial.SerialException):
        serial.Serial(str(link), 9600)
    time.sleep(0.5)
    with open_port(sim, "probe-line", timeout=0.5) as port:
        port.write(b"T?\r")
        assert port.read_until(b"\r") == b"T=+004.50 C\r"


def test_scale_net_mode_with_tare(tmp_path):
    text = SCENARIO.replace("    settle: 150ms\n", "    settle: 150ms\n    tare: 2.0\n")
    text = text.replace("model: {kind: normal, mean: 12.34, sd: 0.5, period: 300ms}", "value: 12.5")
    with (
        SimulatorThread(parse_scenario(text, None), tmp_path) as sim,
        open_port(sim, "scale-line") as port,
    ):
        time.sleep(max(0.0, 0.3 - sim.now()))  # unstable for `settle` after power-on
        port.reset_input_buffer()
        port.readline()  # possibly the tail of a line cut by the reset
        assert port.readline() == b"ST,NT,+0010.50 g\r\n"
