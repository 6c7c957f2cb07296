"""Pure parts of the commissioning tools: diagnoses, exact values, write plans, CSV cells.

Property tests check the round trips that the end-to-end tests only sample: any finite double
recorded is read back by the rules tools as the same double; any value written is what probe
decodes from the words; and pymodbus (the independent oracle) agrees on the words.
"""

from __future__ import annotations

import errno
import math
import struct

import pytest
import serial
from hypothesis import given
from hypothesis import strategies as st

from edge.cli.diagnose import diagnose
from edge.cli.probe import exact
from edge.cli.record import csv_time, csv_value
from edge.cli.scan import parse_units
from edge.cli.write import plan_write
from edge.config import BusConfig
from edge.drivers.portlock import port_reason
from edge.errors import DeviceException, DeviceTimeout, FrameError, PortUnavailable
from edge.rules.recorded import parse_rows, parse_time

from .conftest import oracle_registers

RTU = BusConfig("rs485", "rtu", port="/dev/ttyUSB0", baudrate=9600, parity="E", timeout=0.3)
TCP = BusConfig("net", "tcp", address="10.0.0.5:502", timeout=1.0)


def _port_error(code: int, text: str) -> PortUnavailable:
    """As the RTU transport raises it: our message, pyserial's error as the cause."""
    cause = serial.SerialException(code, text)
    try:
        raise PortUnavailable(f"bus rs485 port /dev/ttyUSB0: {port_reason(cause)}") from cause
    except PortUnavailable as exc:
        return exc


def test_port_problems_name_the_fix() -> None:
    missing = diagnose(_port_error(errno.ENOENT, "could not open port"), RTU)
    assert (missing.kind, missing.reason) == ("port_missing", "port /dev/ttyUSB0 does not exist")
    denied = diagnose(_port_error(errno.EACCES, "could not open port"), RTU)
    assert denied.kind == "permission"
    assert "dialout" in denied.hint
    busy = diagnose(_port_error(errno.EAGAIN, "Could not exclusively lock port"), RTU)
    assert busy.reason == "port /dev/ttyUSB0 is in use by another program"
    assert "running edge node" in busy.hint
    assert port_reason(serial.SerialException(2, "could not open port x: [Errno 2] ...")) == (
        "No such file or directory"
    )


def test_device_problems_name_the_fix() -> None:
    silent = diagnose(DeviceTimeout("bus rs485 device d unit 4: no answer within 0.3s"), RTU, 4)
    assert silent.text() == (
        "no answer from unit 4 within 0.3s -- check the unit id, baud rate and parity"
        " (9600 baud 8E1) and the A/B wiring (swap A and B if unsure)"
    )
    gateway = diagnose(DeviceException("x: exception 11", 11), TCP, 3)
    assert (
        gateway.reason == "unit 3 answered exception 11 (gateway target device failed to respond)"
    )
    assert "unit id" in gateway.hint
    garbled = diagnose(
        FrameError("bus rs485 device d unit 4 holding 0: reply discarded: bad CRC"), RTU, 4
    )
    assert garbled.reason == "replies from unit 4 discarded (bad CRC)"
    refused = diagnose(PortUnavailable("bus net address 10.0.0.5:502: connection refused"), TCP)
    assert refused.reason == "connection to 10.0.0.5:502 refused"


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_recorded_doubles_read_back_exactly(x: float) -> None:
    (reading,) = parse_rows([[csv_time(0.0), "p", csv_value(x), "good"]], "rec.csv")
    assert reading.value == x
    assert math.copysign(1, reading.value) == math.copysign(1, x) or x == 0  # type: ignore[arg-type]


@given(st.floats(min_value=0, max_value=4102444800, allow_nan=False))
def test_recorded_times_read_back_within_a_microsecond(ts: float) -> None:
    assert parse_time(csv_time(ts)) == pytest.approx(ts, abs=1e-6)


def test_recorded_cells() -> None:
    rows = [[csv_time(1.5), "p", csv_value(v), "good"] for v in (True, False, None, "LOT 7", 42)]
    got = [r.value for r in parse_rows(rows, "rec.csv")]
    assert got == [True, False, None, "LOT 7", 42.0]
    assert csv_time(1_795_428_000.25) == "2026-11-23T10:00:00.250000Z"


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_written_float32_is_what_probe_and_pymodbus_read(x: float) -> None:
    plan = plan_write("holding", "float32", "CDAB", (repr(x),), 0, None)
    assert list(plan.values) == oracle_registers(x, "float32", "CDAB")
    assert plan.function == 16
    shown = exact(list(plan.values), "float32", "CDAB")
    # probe shows the shortest decimal naming the same float32
    assert struct.unpack(">f", struct.pack(">f", shown))[0] == x


@given(st.integers(-(2**63), 2**63 - 1))
def test_written_int64_round_trips(n: int) -> None:
    plan = plan_write("holding", "int64", "DCBA", (str(n),), 0, None)
    assert list(plan.values) == oracle_registers(n, "int64", "DCBA")
    assert exact(list(plan.values), "int64", "DCBA") == n


def test_write_plans() -> None:
    assert plan_write("holding", "uint16", "ABCD", ("0x1A2B",), 5, None).values == (0x1A2B,)
    assert plan_write("holding", "uint16", "ABCD", ("7",), 5, 16).function == 16
    assert plan_write("coil", "uint16", "ABCD", ("on", "0"), 0, None).values == (1, 0)
    with pytest.raises(ValueError, match="at most 123"):
        plan_write("holding", "uint16", "ABCD", tuple("1" * 124), 0, None)
    with pytest.raises(ValueError, match="past address 65535"):
        plan_write("holding", "uint32", "ABCD", ("1",), 65535, None)


def test_unit_ranges() -> None:
    assert parse_units("1-3,7, 2") == [1, 2, 3, 7]
    for bad in ("3-1", "0-248", "a", "1-", ""):
        with pytest.raises(ValueError, match="unit"):
            parse_units(bad)
