"""``edge read --once --json`` against firmware-sim (RTU on its PTY and Modbus TCP)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from edge.cli import main
from edge.firmware_sim.simulator import SimulatorThread

# the simulator computes values as floats: keep 64-bit integers exact in a double (< 2**53)
VALUES: dict[str, Any] = {
    "int16": -12345,
    "uint16": 0xA1B2,
    "int32": -19088744,
    "uint32": 0x89ABCDEF,
    "int64": -0x1A2B3C4D5E6F70,
    "uint64": 0x1A2B3C4D5E6F70,
    "float32": 3.14159,  # sent as the float32 nearest it, read back as the decimal meant
    "float64": 2.718281828459045,
}
WIDTH = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "int64": 4,
    "uint64": 4,
    "float32": 2,
    "float64": 4,
}
ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")


def catalog() -> dict[str, dict[str, Any]]:
    points, reg = {}, 0
    for dtype, value in VALUES.items():
        for order in ORDERS:
            points[f"{dtype}_{order.lower()}"] = {
                "register": reg,
                "type": dtype,
                "order": order,
                "value": value,
            }
            reg += WIDTH[dtype]
    points["run"] = {"register": 3, "table": "coil", "type": "bool", "value": 1}
    return points


def yaml_value(v: Any) -> str:
    return json.dumps(v)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimulatorThread]:
    lines = [
        "name: readall",
        "buses:",
        "  serial:",
        "    kind: rtu",
        "    baudrate: 115200",
        "  net:",
        "    kind: tcp",
        "devices:",
    ]
    for dev, bus, unit in (("plc_rtu", "serial", 7), ("plc_tcp", "net", 1)):
        lines += [f"  {dev}:", f"    bus: {bus}", f"    unit: {unit}", "    points:"]
        for name, spec in catalog().items():
            inner = ", ".join(f"{k}: {yaml_value(v)}" for k, v in spec.items())
            lines.append(f"      {name}: {{{inner}}}")
    path = tmp_path / "readall.yaml"
    path.write_text("\n".join(lines) + "\n")
    with SimulatorThread(path, tmp_path / "run", seed=0) as s:
        yield s


def node_toml(tmp_path: Path, sim: SimulatorThread) -> Path:
    host, port = sim.tcp_endpoints["net"]
    out = [
        "[node]", 'id = "sim-read"', "",
        "[buses.serial]", 'kind = "rtu"', f'port = "{sim.serial_paths["serial"]}"', "baudrate = 115200", 'timeout = "500ms"', "",
        "[buses.net]", 'kind = "tcp"', f'address = "{host}:{port}"', "",
        "[devices.plc_rtu]", 'bus = "serial"', "unit = 7", "",
        "[devices.plc_tcp]", 'bus = "net"', "unit = 1", "",
    ]  # fmt: skip
    for dev in ("plc_rtu", "plc_tcp"):
        for name, spec in catalog().items():
            out.append(f"[points.{dev}_{name}]")
            out.append(f'device = "{dev}"')
            out += [f"{k} = {json.dumps(v)}" for k, v in spec.items() if k != "value"]
            out.append("")
    path = tmp_path / "node.toml"
    path.write_text("\n".join(out))
    return path


def test_edge_read_against_firmware_sim(tmp_path: Path, sim: SimulatorThread) -> None:
    result = CliRunner().invoke(
        main, ["read", "-c", str(node_toml(tmp_path, sim)), "--once", "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = {r["point"]: r for r in map(json.loads, result.stdout.splitlines())}
    expected: dict[str, Any] = {}
    for dev in ("plc_rtu", "plc_tcp"):
        for name, spec in catalog().items():
            want = spec["value"]
            expected[f"{dev}_{name}"] = bool(want) if spec.get("table") == "coil" else want
    assert set(rows) == set(expected)
    for name, want in expected.items():
        row = rows[name]
        assert row["quality"] == "good", row
        if isinstance(want, float):
            assert math.isclose(row["value"], want, rel_tol=0, abs_tol=0), row
        else:
            assert row["value"] == want, row
