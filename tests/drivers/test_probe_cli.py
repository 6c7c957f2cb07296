"""``edge probe`` and ``edge scan`` against pymodbus slaves (RTU over PTYs, TCP) and firmware-sim."""

from __future__ import annotations

import json
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from edge.cli import main

from .cli_fixtures import sim_rtu
from .conftest import (
    Catalog,
    PtyBridge,
    ServerThread,
    free_port,
    oracle_registers,
    sim_device,
    write_node,
)

__all__ = ["sim_rtu"]  # a fixture used here


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def rows_of(result: Result) -> dict[str, list[str]]:
    """The decoded table: type -> cells (ABCD CDAB BADC DCBA, blanks dropped)."""
    out = {}
    for line in result.stdout.splitlines():
        cells = line.split()
        if cells and cells[0] in ("int16", "uint16", "int32", "uint32", "int64", "uint64",
                                  "float32", "float64"):  # fmt: skip
            out[cells[0]] = cells[1:]
    return out


@pytest.fixture
def exact_slave() -> Iterator[str]:
    """A TCP slave holding values that 6 significant digits would round."""
    cat = Catalog()
    for i, r in enumerate(oracle_registers(-1234.0625, "float32", "ABCD")):
        cat.holding[0 + i] = r
    for i, r in enumerate(oracle_registers(0.1 + 0.2, "float64", "ABCD")):
        cat.holding[10 + i] = r
    for i, r in enumerate(oracle_registers(123456789012, "int64", "ABCD")):
        cat.holding[20 + i] = r
    port = free_port()
    with ServerThread(lambda: ModbusTcpServer([sim_device(1, cat)], address=("127.0.0.1", port))):
        yield f"127.0.0.1:{port}"


def test_probe_prints_exact_values(exact_slave: str) -> None:
    for register, dtype, want in (
        ("0", "float32", "-1234.0625"),
        ("10", "float64", "0.30000000000000004"),
        ("20", "int64", "123456789012"),
    ):
        result = invoke("probe", "--port", exact_slave, "--register", register)
        assert result.exit_code == 0, result.output
        assert rows_of(result)[dtype][0] == want


def test_probe_rtu_shows_every_order(rtu_slave: str, catalog: Catalog) -> None:
    addr = catalog.points["float32_cdab"]["register"]
    result = invoke(
        "probe", "--port", rtu_slave, "--unit", "1", "--register", str(addr), "--count", "2",
        "--baud", "115200",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cells = rows_of(result)["float32"]
    # columns: ABCD CDAB BADC DCBA; the value was stored CDAB
    assert cells[1] == "3.14159"
    assert "3.14159" not in (cells[0], cells[2], cells[3])


@pytest.fixture
def rtu_8n2(catalog: Catalog) -> Iterator[tuple[str, int]]:
    """A pymodbus RTU slave configured 8N2; yields our end of the cable and its descriptor."""
    with (
        PtyBridge() as bridge,
        ServerThread(
            lambda: ModbusSerialServer(
                [sim_device(1, catalog)],
                framer=FramerType.RTU,
                port=bridge.path1,
                baudrate=9600,
                bytesize=8,
                parity="N",
                stopbits=2,
            )
        ),
    ):
        yield bridge.path2, bridge._slaves[1]


def test_probe_8n2_device(rtu_8n2: tuple[str, int], catalog: Catalog) -> None:
    """The port is opened with two stop bits and eight data bits (checked on the tty itself)."""
    path, fd = rtu_8n2
    args = ["probe", "--port", path, "--baud", "9600", "--register", "18", "--count", "1"]
    assert invoke(*args).exit_code == 0
    assert not termios.tcgetattr(fd)[2] & termios.CSTOPB  # 8N1 by default
    result = invoke(*args, "--data-bits", "8", "--stop-bits", "2", "--parity", "N")
    assert result.exit_code == 0, result.output
    cflag = termios.tcgetattr(fd)[2]
    assert cflag & termios.CSTOPB
    assert cflag & termios.CSIZE == termios.CS8
    assert rows_of(result)["uint16"][0] == str(0xA1B2)
    assert "9600 8N2" in result.stdout


def test_probe_coils_and_discrete_inputs(tcp_slave: str, catalog: Catalog) -> None:
    result = invoke("probe", "--port", tcp_slave, "--table", "coil", "--register", "0",
                    "--count", "8", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["raw"] == [int(catalog.coils.get(i, False)) for i in range(8)]
    assert "decoded" not in body
    result = invoke("probe", "--port", tcp_slave, "--table", "discrete", "--register", "2",
                    "--count", "3")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].split() == ["0", "1", "0"]  # discrete input 3 is on


def test_probe_one_based_addresses(tcp_slave: str, catalog: Catalog) -> None:
    wire = catalog.points["float32_abcd"]["register"]
    result = invoke(
        "probe", "--port", tcp_slave, "--register", str(wire + 1), "--count", "2",
        "--address-base", "1", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert (body["register"], body["wire"]) == (wire + 1, wire)
    assert body["decoded"]["float32"]["ABCD"] == 3.14159
    below = invoke("probe", "--port", tcp_slave, "--register", "0", "--address-base", "1")
    assert below.exit_code == 2
    assert "address base 1" in below.stderr


def test_probe_takes_bus_settings_from_node_config(
    tmp_path: Path, rtu_slave: str, catalog: Catalog
) -> None:
    """-c node.toml --device: port, 115200 baud, unit 2 and address base 1 all from the file."""
    config = write_node(
        tmp_path,
        {"kind": "rtu", "port": rtu_slave, "baudrate": 115200, "timeout": "500ms"},
        {"plc": {"unit": 2, "address_base": 1}},
        {},
    )
    wire = catalog.points["float64_dcba"]["register"]
    result = invoke("probe", "-c", str(config), "--device", "plc", "--register", str(wire + 1),
                    "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert (body["unit"], body["wire"]) == (2, wire)
    assert body["decoded"]["float64"]["DCBA"] == 2.718281828459045
    wrong = invoke("probe", "-c", str(config), "--device", "nope", "--register", "1")
    assert wrong.exit_code == 2
    assert "no device 'nope' (devices: plc)" in wrong.stderr
    alone = invoke("probe", "-c", str(config), "--register", "1")
    assert alone.exit_code == 2
    assert "go together" in alone.stderr


def test_probe_interval_polls_repeatedly(tcp_slave: str) -> None:
    result = invoke("probe", "--port", tcp_slave, "--register", "18", "--count", "1",
                    "--interval", "50ms", "--cycles", "3", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    polls = [json.loads(line) for line in result.stdout.splitlines()]
    assert [p["raw"] for p in polls] == [[0xA1B2]] * 3
    assert polls[0]["ts"] < polls[1]["ts"] < polls[2]["ts"]


def test_probe_trace(rtu_slave: str) -> None:
    result = invoke("probe", "--port", rtu_slave, "--baud", "115200", "--register", "18",
                    "--count", "1", "--trace")  # fmt: skip
    assert result.exit_code == 0, result.output
    tx, rx = result.stderr.splitlines()
    assert tx.startswith("trace tx 01 03 00 12 00 01 ")
    assert rx.startswith("trace rx 01 03 02 a1 b2 ")


def test_probe_missing_port_is_one_line(tmp_path: Path) -> None:
    port = tmp_path / "nope"
    result = invoke("probe", "--port", str(port), "--register", "0")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.count(str(port)) == 1
    assert "Errno" not in line
    assert "does not exist" in line
    as_json = invoke("probe", "--port", str(port), "--register", "0", "--json")
    assert as_json.exit_code == 1
    failure = json.loads(as_json.stdout)  # the command's failure: on stdout, as everywhere
    assert (failure["ok"], failure["kind"]) == (False, "port_missing")
    assert as_json.stderr == ""


def test_probe_exception_is_explained(tcp_slave: str) -> None:
    result = invoke("probe", "--port", tcp_slave, "--register", "300")
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "edge: unit 1 answered exception 02 (illegal data address) -- the register does not"
    )


# --- scan ----------------------------------------------------------------------------------------


def test_scan_finds_the_units_that_answer(sim_rtu: str) -> None:
    result = invoke("scan", "--port", sim_rtu, "--baud", "115200", "--units", "1-8",
                    "--timeout", "0.05")  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-1] == "2 of 8 unit ids answer: 3, 7"
    assert lines[0] == "unit   3: answers (holding 0 = 215)"
    as_json = invoke("scan", "--port", sim_rtu, "--baud", "115200", "--units", "7,3,9",
                     "--timeout", "0.05", "--json")  # fmt: skip
    assert [json.loads(line)["unit"] for line in as_json.stdout.splitlines()] == [7, 3]


def test_scan_nothing_found_and_bad_ranges(sim_rtu: str) -> None:
    result = invoke("scan", "--port", sim_rtu, "--units", "10-11", "--timeout", "0.05")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == ["0 of 2 unit ids answer: none"]
    for bad in ("5-3", "1-300", "x"):
        result = invoke("scan", "--port", sim_rtu, "--units", bad)
        assert result.exit_code == 2, bad
        assert "--units" in result.stderr


@pytest.fixture
def gateway() -> Iterator[str]:
    """A Modbus TCP gateway written out from the spec: unit 5 answers register 0 = 55; for any
    other unit the gateway itself answers exception 0B (target device failed to respond)."""
    import asyncio
    import struct

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                tid, _, length, unit = struct.unpack(">HHHB", await reader.readexactly(7))
                pdu = await reader.readexactly(length - 1)
                if unit == 5:
                    reply = bytes([pdu[0], 2]) + struct.pack(">H", 55)
                else:
                    reply = bytes([pdu[0] | 0x80, 0x0B])
                writer.write(struct.pack(">HHHB", tid, 0, len(reply) + 1, unit) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    port = free_port()
    with ServerThread(lambda: _Gateway(serve, port)):
        yield f"127.0.0.1:{port}"


class _Gateway:
    """Enough of a pymodbus server's interface for ServerThread."""

    def __init__(self, handler: object, port: int) -> None:
        self.handler, self.port = handler, port
        self._server: object = None

    async def serve_forever(self) -> None:
        import asyncio

        self._server = await asyncio.start_server(self.handler, "127.0.0.1", self.port)  # type: ignore[arg-type]
        async with self._server:  # type: ignore[attr-defined]
            await self._server.serve_forever()  # type: ignore[attr-defined]

    async def shutdown(self) -> None:
        self._server.close()  # type: ignore[attr-defined]


def test_scan_through_a_gateway_ignores_its_own_exceptions(gateway: str) -> None:
    result = invoke("scan", "--port", gateway, "--units", "1-8")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "unit   5: answers (holding 0 = 55)",
        "1 of 8 unit ids answer: 5",
    ]
