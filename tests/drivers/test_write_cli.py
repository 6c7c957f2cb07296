"""``edge write`` against pymodbus slaves, each write read back with pymodbus's own client; and
the refusal to write on a bus that a running poller owns (real processes holding the locks)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.client.mixin import ModbusClientMixin

from edge.cli import main

from .conftest import Catalog, write_node

EDGE = [sys.executable, "-m", "edge"]


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


def tcp_client(address: str) -> ModbusTcpClient:
    host, _, port = address.rpartition(":")
    client = ModbusTcpClient(host, port=int(port))
    assert client.connect()
    return client


def holding(address: str, start: int, count: int) -> list[int]:
    client = tcp_client(address)
    try:
        return list(client.read_holding_registers(start, count=count, device_id=1).registers)
    finally:
        client.close()


def test_write_register_fc06_over_rtu(rtu_slave: str) -> None:
    result = invoke("write", "--port", rtu_slave, "--baud", "115200", "--register", "100",
                    "--yes", "4242")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("written FC06: holding 100 of unit 1")
    client = ModbusSerialClient(port=rtu_slave, baudrate=115200, timeout=1)
    assert client.connect()
    try:
        assert client.read_holding_registers(100, count=1, device_id=1).registers == [4242]
    finally:
        client.close()


def test_write_float32_cdab_fc16_over_tcp(tcp_slave: str) -> None:
    result = invoke("write", "--port", tcp_slave, "--register", "120", "--type", "float32",
                    "--order", "CDAB", "--yes", "--", "-12.5", "1e-3")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "FC16" in result.stdout
    regs = holding(tcp_slave, 120, 4)
    decode = ModbusClientMixin.convert_from_registers
    f32 = ModbusClientMixin.DATATYPE.FLOAT32
    assert decode(regs[:2], f32, word_order="little") == -12.5
    assert decode(regs[2:], f32, word_order="little") == pytest.approx(1e-3, rel=1e-7)


def test_write_one_based_typed_int32(tcp_slave: str) -> None:
    result = invoke("write", "--port", tcp_slave, "--register", "131", "--address-base", "1",
                    "--type", "int32", "--yes", "--json", "--", "-100000")  # fmt: skip
    assert result.exit_code == 0, result.output
    regs = holding(tcp_slave, 130, 2)
    i32 = ModbusClientMixin.DATATYPE.INT32
    assert ModbusClientMixin.convert_from_registers(regs, i32) == -100000


def test_write_coils_fc05_and_fc15(tcp_slave: str) -> None:
    one = invoke("write", "--port", tcp_slave, "--table", "coil", "--register", "30", "--yes", "on")
    assert one.exit_code == 0, one.output
    assert "FC05" in one.stdout
    many = invoke("write", "--port", tcp_slave, "--table", "coil", "--register", "40", "--yes",
                  "1", "0", "1", "1")  # fmt: skip
    assert many.exit_code == 0, many.output
    assert "FC15" in many.stdout
    client = tcp_client(tcp_slave)
    try:
        assert client.read_coils(30, count=1, device_id=1).bits[0] is True
        assert client.read_coils(40, count=4, device_id=1).bits[:4] == [True, False, True, True]
    finally:
        client.close()


def test_write_asks_before_writing(tcp_slave: str, catalog: Catalog) -> None:
    before = holding(tcp_slave, 18, 1)
    no = invoke("write", "--port", tcp_slave, "--register", "18", "7", input="n\n")
    assert no.exit_code == 1
    assert "write FC06: holding 18 of unit 1" in no.stderr  # the question shows the words
    assert "0007" in no.stderr
    assert holding(tcp_slave, 18, 1) == before
    yes = invoke("write", "--port", tcp_slave, "--register", "18", "7", input="y\n")
    assert yes.exit_code == 0, yes.output
    assert holding(tcp_slave, 18, 1) == [7]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "uint16", "70000"], "does not fit uint16"),
        (["--type", "int16", "abc"], "invalid literal"),
        (["--type", "float32", "nan"], "NaN"),
        (["--fc", "6", "1", "2"], "FC06 cannot write 2 register(s)"),
        (["--table", "coil", "2"], "not a coil value"),
    ],
)
def test_bad_values_are_usage_errors(tcp_slave: str, args: list[str], message: str) -> None:
    result = invoke("write", "--port", tcp_slave, "--register", "0", "--yes", *args)
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.fixture
def reader_running(
    tmp_path: Path, tcp_slave: str, rtu_slave: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Two `edge read` processes polling both slaves, as a running node would (killed at the
    end, so their endpoint lock file stays behind: in this test's own lock folder)."""
    monkeypatch.setenv("EDGE_LOCK_DIR", str(tmp_path / "locks"))  # theirs and ours
    procs = []
    for name, bus in (
        ("tcp", {"kind": "tcp", "address": tcp_slave}),
        ("rtu", {"kind": "rtu", "port": rtu_slave, "baudrate": 115200}),
    ):
        folder = tmp_path / name
        folder.mkdir()
        config = write_node(
            folder,
            bus,
            {"plc": {"unit": 1, "poll": "50ms"}},
            {"x": {"device": "plc", "register": 18}},
        )
        proc = subprocess.Popen([*EDGE, "read", "-c", str(config), "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
        assert proc.stdout is not None
        proc.stdout.readline()  # it has polled: its port and lock are taken
        procs.append(proc)
    yield
    for proc in procs:
        proc.kill()
        proc.communicate()


def test_write_refused_on_a_bus_a_poller_owns(
    reader_running: None, tcp_slave: str, rtu_slave: str
) -> None:
    tcp = invoke("write", "--port", tcp_slave, "--register", "18", "--yes", "9")
    assert tcp.exit_code == 1
    assert "in use by a running edge node or edge read" in tcp.stderr
    rtu = invoke("write", "--port", rtu_slave, "--register", "18", "--yes", "9")
    assert rtu.exit_code == 1
    assert f"port {rtu_slave} is in use by another program" in rtu.stderr
    assert holding(tcp_slave, 18, 1) == [0xA1B2]  # nothing was written
