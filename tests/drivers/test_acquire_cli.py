"""``edge read`` end to end against independent pymodbus slaves (TCP, and RTU over real PTYs) and
firmware-sim: values, the table's columns, exit codes, one diagnosed line per failing device,
frame traces, repeated polling, a slow scale, and a closed pipe."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from edge.cli import main
from edge.firmware_sim.simulator import SimulatorThread

from .cli_fixtures import sim_rtu
from .conftest import Catalog, free_port, oracle_registers, write_node

__all__ = ["sim_rtu"]  # a fixture used here

EDGE = [sys.executable, "-m", "edge"]


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def run_read(config: Path, *extra: str, code: int = 0) -> list[dict[str, Any]]:
    result = invoke("read", "-c", str(config), "--once", "--json", *extra)
    assert result.exit_code == code, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_catalog(rows: list[dict[str, Any]], catalog: Catalog) -> None:
    got = {r["point"]: r for r in rows}
    assert set(got) == set(catalog.expected)
    for name, want in catalog.expected.items():
        row = got[name]
        assert row["quality"] == "good", row
        if isinstance(want, float):
            assert math.isclose(row["value"], want, rel_tol=0, abs_tol=1e-12), (name, row)
        else:
            assert row["value"] == want, (name, row)
            assert type(row["value"]) is type(want), (name, row)


def catalog_node(tmp_path: Path, bus: dict[str, Any], catalog: Catalog, unit: int = 1) -> Path:
    return write_node(
        tmp_path,
        bus,
        {"plc": {"unit": unit, "poll": "200ms"}},
        {n: {"device": "plc", **p} for n, p in catalog.points.items()},
    )


# --- values ------------------------------------------------------------------------------------


def test_read_tcp_every_type_and_order(tmp_path: Path, tcp_slave: str, catalog: Catalog) -> None:
    config = catalog_node(
        tmp_path, {"kind": "tcp", "address": tcp_slave, "timeout": "500ms"}, catalog
    )
    assert_catalog(run_read(config), catalog)


def test_read_rtu_every_type_and_order(tmp_path: Path, rtu_slave: str, catalog: Catalog) -> None:
    bus = {"kind": "rtu", "port": rtu_slave, "baudrate": 115200, "timeout": "500ms"}
    assert_catalog(run_read(catalog_node(tmp_path, bus, catalog)), catalog)


def test_read_rtu_one_based_addresses(tmp_path: Path, rtu_slave: str, catalog: Catalog) -> None:
    """address_base = 1: the manual's register numbers, one more than on the wire."""
    points = {
        n: {"device": "plc", **p, "register": p["register"] + 1} for n, p in catalog.points.items()
    }
    config = write_node(
        tmp_path,
        {"kind": "rtu", "port": rtu_slave, "baudrate": 115200, "timeout": "500ms"},
        {"plc": {"unit": 2, "poll": "200ms", "address_base": 1}},
        points,
    )
    assert_catalog(run_read(config), catalog)


def test_json_rows_carry_register_type_and_raw_words(
    tmp_path: Path, tcp_slave: str, catalog: Catalog
) -> None:
    """The raw words are what pymodbus put in the registers (its own encoder, not ours)."""
    config = catalog_node(tmp_path, {"kind": "tcp", "address": tcp_slave}, catalog)
    rows = {r["point"]: r for r in run_read(config)}
    for name in ("float32_cdab", "int64_dcba", "uint16_badc"):
        dtype, order = name.split("_")
        row = rows[name]
        assert row["raw"] == oracle_registers(catalog.expected[name], dtype, order.upper())
        assert (row["table"], row["register"], row["device"]) == (
            "holding",
            catalog.points[name]["register"],
            "plc",
        )
    assert rows["float32_cdab"]["type"] == "float32 CDAB"
    assert rows["temp"]["raw"] == [2150]
    assert rows["coil7"]["raw"] == [1]
    assert rows["flag2"]["type"] == "bit 2"


def test_table_has_a_header_and_exact_values(
    tmp_path: Path, tcp_slave: str, catalog: Catalog
) -> None:
    config = catalog_node(tmp_path, {"kind": "tcp", "address": tcp_slave}, catalog)
    result = invoke(
        "read", "-c", str(config), "--once", "--point", "float64_abcd", "--point", "lot"
    )
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == [
        "point", "value", "unit", "quality", "device", "register", "type", "raw", "latency"
    ]  # fmt: skip
    cells = {r.split()[0]: r.split() for r in rows}
    # every digit of the double, the register and the raw words as pymodbus stored them
    assert cells["float64_abcd"][1:4] == ["2.718281828459045", "-", "good"]
    raw = " ".join(f"{w:04X}" for w in oracle_registers(math.e, "float64", "ABCD"))
    assert raw in rows[0]
    assert "holding 102" in rows[0]
    assert cells["lot"][1] == "LOT-42A"


# --- exit codes and diagnosis ------------------------------------------------------------------


def test_wrong_unit_id_is_diagnosed_on_one_line(tmp_path: Path, sim_rtu: str) -> None:
    """Units 3 and 7 answer; unit 9 stays silent."""
    config = write_node(
        tmp_path,
        {"kind": "rtu", "port": sim_rtu, "baudrate": 115200, "timeout": "200ms"},
        {"plc": {"unit": 9}},
        {"temp": {"device": "plc", "register": 0}},
    )
    result = invoke("read", "-c", str(config), "--once")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        "edge: device plc (bus line1, unit 9): no answer from unit 9 within 0.2s"
    )
    for hint in ("unit id", "baud rate", "parity", "A/B wiring", "115200 baud 8N1"):
        assert hint in line
    assert "comm_fail" in result.stdout


def test_exception_names_the_register_and_its_meaning(tmp_path: Path, tcp_slave: str) -> None:
    """Exception 02 on a merged request: the request splits, only the bad point is config_error."""
    points = {
        "a": {"device": "plc", "register": 250},
        "b": {"device": "plc", "register": 255},
        "beyond": {"device": "plc", "register": 256},  # the slave holds 0..255
        "c": {"device": "plc", "register": 252, "type": "uint32"},
    }
    config = write_node(
        tmp_path, {"kind": "tcp", "address": tcp_slave}, {"plc": {"unit": 1}}, points
    )
    result = invoke("read", "-c", str(config), "--once", "--json")
    assert result.exit_code == 1
    got = {r["point"]: r["quality"] for r in map(json.loads, result.stdout.splitlines())}
    assert got == {"a": "good", "b": "good", "c": "good", "beyond": "config_error"}
    (line,) = result.stderr.splitlines()
    problem = json.loads(line)
    assert problem["kind"] == "exception"
    assert problem["reason"] == "unit 1 answered exception 02 (illegal data address)"
    assert "holding 256" in problem["error"]
    assert "address_base" in problem["hint"]


def test_missing_port_is_said_once_without_errno_noise(tmp_path: Path) -> None:
    port = tmp_path / "ttyUSB9"
    config = write_node(
        tmp_path,
        {"kind": "rtu", "port": str(port)},
        {"plc": {}},
        {"x": {"device": "plc", "register": 1}},
    )
    result = invoke("read", "-c", str(config), "--once", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["quality"] == "comm_fail"
    (line,) = result.stderr.splitlines()
    problem = json.loads(line)
    assert problem["kind"] == "port_missing"
    assert problem["error"].count(str(port)) == 1
    assert "Errno" not in line
    assert "/dev/serial/by-id" in problem["hint"]


def test_refused_connection(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    config = write_node(
        tmp_path,
        {"kind": "tcp", "address": address, "timeout": "100ms"},
        {"plc": {}},
        {"x": {"device": "plc", "register": 1}},
    )
    result = invoke("read", "-c", str(config), "--once")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert f"connection to {address} refused" in line
    assert "502" in line  # the hint names the usual port


@pytest.mark.parametrize("echo", [True, False])
def test_rs485_local_echo(
    tmp_path: Path, rtu_echo_slave: str, catalog: Catalog, echo: bool
) -> None:
    config = write_node(
        tmp_path,
        {
            "kind": "rtu",
            "port": rtu_echo_slave,
            "baudrate": 115200,
            "timeout": "300ms",
            "echo": echo,
        },
        {"plc": {"unit": 1}},
        {"temp": {"device": "plc", **catalog.points["temp"]}},
    )
    (row,) = run_read(config, code=0 if echo else 1)
    if echo:
        assert (row["quality"], row["value"]) == ("good", pytest.approx(23.0))
    else:  # our own request read back as the reply: discarded, never decoded
        assert (row["quality"], row["value"]) == ("comm_fail", None)


def test_bad_config_is_one_line_per_problem(tmp_path: Path) -> None:
    config = write_node(
        tmp_path,
        {"kind": "rtu", "port": "/dev/null"},
        {"plc": {"unit": 1, "max_registers": 2, "forbidden": [[10, 19]]}},
        {
            "wide": {"device": "plc", "register": 0, "type": "float64"},
            "hidden": {"device": "plc", "register": 12},
        },
    )
    result = invoke("read", "-c", str(config), "--once")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert "points.wide" in lines[0]
    assert "limit of 2" in lines[0]
    assert "points.hidden" in lines[1]
    assert "forbidden" in lines[1]
    assert "Traceback" not in result.output


def test_unknown_point_and_nothing_to_read(tmp_path: Path) -> None:
    config = write_node(
        tmp_path,
        {"kind": "tcp", "address": "127.0.0.1:1"},
        {"plc": {}},
        {"x": {"device": "plc", "register": 1}},
    )
    result = invoke("read", "-c", str(config), "--once", "--point", "y")
    assert result.exit_code == 2
    assert "--point y: no such point" in result.stderr
    empty = write_node(tmp_path, {"kind": "tcp", "address": "127.0.0.1:1"}, {"plc": {}}, {})
    result = invoke("read", "-c", str(empty), "--once", "--json")
    assert result.exit_code == 1, "--once with nothing read must not exit 0"
    assert json.loads(result.stdout)["ok"] is False  # a failure: JSON on stdout, as everywhere
    assert json.loads(result.stdout)["error"].endswith(
        "no points to read (add [points.NAME] sections)"
    )


# --- trace, interval ---------------------------------------------------------------------------


def test_trace_shows_frames_and_request_count(
    tmp_path: Path, rtu_slave: str, catalog: Catalog
) -> None:
    config = write_node(
        tmp_path,
        {"kind": "rtu", "port": rtu_slave, "baudrate": 115200, "timeout": "500ms"},
        {"plc": {"unit": 1}},
        {"temp": {"device": "plc", **catalog.points["temp"]}},
    )
    result = invoke("read", "-c", str(config), "--once", "--trace")
    assert result.exit_code == 0, result.output
    tx, rx, counts = result.stderr.splitlines()
    # FC04 input register 5, one register, unit 1; CRC as the Modbus spec's example algorithm
    assert tx == "trace line1 #1 tx 01 04 00 05 00 01 " + _crc_hex(bytes([1, 4, 0, 5, 0, 1]))
    reply = bytes([1, 4, 2, 0x08, 0x66])  # 2150 = 0x0866, as pymodbus answers it
    assert rx == f"trace line1 #1 rx {reply.hex(' ')} {_crc_hex(reply)}"
    assert counts.startswith("bus line1: 1 requests, 1 responses, 0 timeouts")


def _crc_hex(frame: bytes) -> str:
    """CRC-16/MODBUS bit by bit (independent of the table-driven one under test)."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return f"{crc & 0xFF:02x} {crc >> 8:02x}"


def test_interval_keeps_polling(tmp_path: Path, tcp_slave: str, catalog: Catalog) -> None:
    config = write_node(
        tmp_path,
        {"kind": "tcp", "address": tcp_slave},
        {"plc": {"unit": 1, "poll": "10s"}},
        {"temp": {"device": "plc", **catalog.points["temp"]}},
    )
    t0 = time.monotonic()
    result = invoke("read", "-c", str(config), "--json", "--interval", "150ms", "--cycles", "3")
    took = time.monotonic() - t0
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["quality"] for r in rows] == ["good"] * 3
    gaps = [b["ts"] - a["ts"] for a, b in itertools.pairwise(rows)]
    assert all(0.1 < g < 1.0 for g in gaps), gaps  # the 10 s configured poll was replaced
    assert took < 8


# --- a scale that prints every 500 ms ------------------------------------------------------------


def _scale(tmp_path: Path, interval: str) -> SimulatorThread:
    """firmware-sim: a scale that prints a line by itself every ``interval``."""
    scenario = tmp_path / "scale.yaml"
    scenario.write_text(
        "name: scale\nbuses:\n  scale-line: {kind: line, baudrate: 9600}\n"
        f"devices:\n  scale:\n    bus: scale-line\n    kind: scale\n    interval: {interval}\n"
        "    points:\n      weight: {unit: g, value: 502.5}\n"
    )
    return SimulatorThread(scenario, tmp_path / "run", seed=0)


@pytest.fixture
def slow_scale(tmp_path: Path) -> Iterator[str]:
    with _scale(tmp_path, "500ms") as sim:
        yield str(sim.serial_paths["scale-line"])


@pytest.fixture
def silent_scale(tmp_path: Path) -> Iterator[str]:
    """Prints every 60 s: silent for as long as a test listens."""
    with _scale(tmp_path, "60s") as sim:
        yield str(sim.serial_paths["scale-line"])


def test_slow_scale_reads_with_once(tmp_path: Path, slow_scale: str) -> None:
    """The bus timeout (200 ms) is shorter than the scale's interval: read listens for a line."""
    config = write_node(
        tmp_path,
        {"kind": "line", "port": slow_scale, "baudrate": 9600, "parser": "scale"},
        {"scale": {}},
        {"weight": {"device": "scale", "field": "weight", "unit": "g"}},
    )
    result = invoke("read", "-c", str(config), "--once", "--json")
    assert result.exit_code == 0, result.output
    (row,) = map(json.loads, result.stdout.splitlines())
    assert (row["quality"], row["value"], row["type"]) == ("good", 502.5, "line")
    assert row["raw"].endswith("502.50 g")


def test_line_device_silence_is_diagnosed(tmp_path: Path, silent_scale: str) -> None:
    config = write_node(
        tmp_path,
        {"kind": "line", "port": silent_scale, "baudrate": 9600, "parser": "scale"},
        {"scale": {}},
        {"weight": {"device": "scale", "field": "weight"}},
    )
    result = invoke("read", "-c", str(config), "--once", "--listen", "100ms")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert "no line within 0.2s" in line  # the bus timeout, longer than --listen
    assert "needs a query" in line


# --- a closed pipe -------------------------------------------------------------------------------


def test_closed_pipe_ends_quietly(tmp_path: Path, tcp_slave: str, catalog: Catalog) -> None:
    """``edge read --json | head -1``: no traceback, exit 1 (as click and rich end), head gets
    its line."""
    config = write_node(
        tmp_path,
        {"kind": "tcp", "address": tcp_slave},
        {"plc": {"unit": 1, "poll": "20ms"}},
        {"temp": {"device": "plc", **catalog.points["temp"]}},
    )
    edge = subprocess.Popen(
        [*EDGE, "read", "-c", str(config), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    head = subprocess.run(["head", "-1"], stdin=edge.stdout, capture_output=True, timeout=30)
    assert edge.stdout is not None
    edge.stdout.close()
    _, err = edge.communicate(timeout=30)
    assert json.loads(head.stdout)["point"] == "temp"
    assert err == b""
    assert edge.returncode == 1


def _into_closed_pipe(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Run edge with stdout a pipe nobody will ever read (closed before the command starts)."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([*EDGE, *args], stdout=write_end, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("mode", [[], ["--json"], ["--trace"]], ids=["table", "json", "trace"])
def test_pipe_closed_before_the_first_line(
    tmp_path: Path, tcp_slave: str, catalog: Catalog, mode: list[str]
) -> None:
    config = write_node(
        tmp_path,
        {"kind": "tcp", "address": tcp_slave},
        {"plc": {"unit": 1}},
        {"temp": {"device": "plc", **catalog.points["temp"]}},
    )
    result = _into_closed_pipe("read", "-c", str(config), "--once", *mode)
    assert result.returncode == 1
    assert b"Traceback" not in result.stderr
    assert b"BrokenPipe" not in result.stderr
    if mode != ["--trace"]:
        assert result.stderr == b""
    probe = _into_closed_pipe("probe", "--port", tcp_slave, "--register", "0", *mode)
    assert (probe.returncode, b"Traceback" in probe.stderr) == (1, False)
