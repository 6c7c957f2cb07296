"""``edge read --once --json`` against independent pymodbus slaves (TCP and RTU over real PTYs)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from edge.cli import main

from .conftest import Catalog, write_node


def run_read(config: Path, *extra: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(main, ["read", "-c", str(config), "--once", "--json", *extra])
    assert result.exit_code == 0, result.output
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


def test_read_tcp_every_type_and_order(tmp_path: Path, tcp_slave: str, catalog: Catalog) -> None:
    config = write_node(
        tmp_path,
        {"kind": "tcp", "address": tcp_slave, "timeout": "500ms"},
        {"plc": {"unit": 1, "poll": "200ms"}},
        {n: {"device": "plc", **p} for n, p in catalog.points.items()},
    )
    assert_catalog(run_read(config), catalog)


def test_read_rtu_every_type_and_order(tmp_path: Path, rtu_slave: str, catalog: Catalog) -> None:
    config = write_node(
        tmp_path,
        {"kind": "rtu", "port": rtu_slave, "baudrate": 115200, "timeout": "500ms"},
        {"plc": {"unit": 1, "poll": "200ms"}},
        {n: {"device": "plc", **p} for n, p in catalog.points.items()},
    )
    assert_catalog(run_read(config), catalog)


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


def test_read_single_point_and_unit(tmp_path: Path, tcp_slave: str, catalog: Catalog) -> None:
    config = write_node(
        tmp_path,
        {"kind": "tcp", "address": tcp_slave},
        {"plc": {"unit": 1}},
        {n: {"device": "plc", **p} for n, p in catalog.points.items()},
    )
    rows = run_read(config, "--point", "temp")
    assert [(r["point"], r["unit"], r["quality"]) for r in rows] == [("temp", "degC", "good")]
    assert rows[0]["value"] == pytest.approx(23.0)
    assert rows[0]["latency"] > 0


def test_read_table_output(tmp_path: Path, tcp_slave: str, catalog: Catalog) -> None:
    config = write_node(
        tmp_path,
        {"kind": "tcp", "address": tcp_slave},
        {"plc": {"unit": 1}},
        {"lot": {"device": "plc", **catalog.points["lot"]}},
    )
    result = CliRunner().invoke(main, ["read", "-c", str(config), "--once"])
    assert result.exit_code == 0
    assert result.stdout.split()[:3] == ["lot", "LOT-42A", "good"]


def test_illegal_register_marks_only_that_point(tmp_path: Path, tcp_slave: str) -> None:
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
    got = {r["point"]: r["quality"] for r in run_read(config)}
    assert got == {"a": "good", "b": "good", "c": "good", "beyond": "config_error"}


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
    result = CliRunner().invoke(main, ["read", "-c", str(config), "--once"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert "points.wide" in lines[0]
    assert "limit of 2" in lines[0]
    assert "points.hidden" in lines[1]
    assert "forbidden" in lines[1]
    assert "Traceback" not in result.output


def test_unknown_point(tmp_path: Path) -> None:
    config = write_node(
        tmp_path,
        {"kind": "tcp", "address": "127.0.0.1:1"},
        {"plc": {}},
        {"x": {"device": "plc", "register": 1}},
    )
    result = CliRunner().invoke(main, ["read", "-c", str(config), "--once", "--point", "y"])
    assert result.exit_code == 2
    assert "--point y: no such point" in result.stderr


def test_dead_endpoint_reports_comm_fail(tmp_path: Path) -> None:
    from .conftest import free_port

    config = write_node(
        tmp_path,
        {"kind": "tcp", "address": f"127.0.0.1:{free_port()}", "timeout": "100ms"},
        {"plc": {}},
        {"x": {"device": "plc", "register": 1}},
    )
    rows = run_read(config)
    assert [(r["point"], r["quality"], r["value"]) for r in rows] == [("x", "comm_fail", None)]


def test_probe_rtu_shows_every_order(rtu_slave: str, catalog: Catalog) -> None:
    addr = catalog.points["float32_cdab"]["register"]
    result = CliRunner().invoke(
        main,
        [
            "probe",
            "--port",
            rtu_slave,
            "--unit",
            "1",
            "--register",
            str(addr),
            "--count",
            "2",
            "--baud",
            "115200",
        ],
    )
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("float32"))
    cells = row.split()
    # columns: type ABCD CDAB BADC DCBA; the value was stored CDAB
    assert cells[2] == "3.14159"
    assert "3.14159" not in (cells[1], cells[3], cells[4])


def test_probe_dead_port_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["probe", "--port", str(tmp_path / "nope"), "--register", "0"]
    )
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "nope" in result.stderr


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
    (row,) = run_read(config)
    if echo:
        assert (row["quality"], row["value"]) == ("good", pytest.approx(23.0))
    else:  # our own request read back as the reply: discarded, never decoded
        assert (row["quality"], row["value"]) == ("comm_fail", None)


def test_missing_port_is_reported_on_stderr(tmp_path: Path) -> None:
    config = write_node(
        tmp_path,
        {"kind": "rtu", "port": str(tmp_path / "ttyUSB9")},
        {"plc": {}},
        {"x": {"device": "plc", "register": 1}},
    )
    result = CliRunner().invoke(main, ["read", "-c", str(config), "--once", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["quality"] == "comm_fail"
    (line,) = result.stderr.splitlines()
    assert "event=bus.port_unavailable" in line
    assert "ttyUSB9" in line
