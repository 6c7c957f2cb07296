"""`edge sim run --tcp-port BUS=PORT` serves a tcp bus where a node config expects it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from pymodbus.client import ModbusTcpClient


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_fixed_port_is_served_and_listed(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "sim", "run", "bottling", "--run-dir", str(tmp_path),
         "--tcp-port", f"plc={port}", "--seconds", "20", "--no-line-timing"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if f"127.0.0.1:{port}" in line or f"127.0.0.1 {port}" in line:
                break
        else:
            raise AssertionError(
                f"port {port} not printed; stderr: {proc.stderr.read() if proc.stderr else ''}"
            )
        client = ModbusTcpClient("127.0.0.1", port=port, timeout=5)
        assert client.connect()
        reply = client.read_holding_registers(0, count=1, device_id=1)
        client.close()
        assert not reply.isError()
        assert reply.registers == [120]  # the line PLC's speed, bottles per minute
        listed = json.loads((tmp_path / "ports.json").read_text())
        assert str(port) in json.dumps(listed)
    finally:
        proc.terminate()
        proc.communicate(timeout=20)


def test_unknown_tcp_bus_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge", "sim", "run", "bottling", "--run-dir", str(tmp_path),
         "--tcp-port", "line-bus=5020", "--seconds", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "edge: --tcp-port line-bus=5020: no tcp bus 'line-bus' (tcp buses: plc)"
    )
