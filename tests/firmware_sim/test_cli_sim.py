"""``edge sim run`` / ``edge sim list`` as real processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import minimalmodbus
from click.testing import CliRunner

from edge.cli import main


def test_sim_list():
    result = CliRunner().invoke(main, ["sim", "list"])
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.output.splitlines()]
    assert names == ["bottling", "cold-room", "demo"]
    assert "19200 8N1" in result.output


def test_sim_run_serves_until_sigint(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge",
            "sim",
            "run",
            "demo",
            "--seed",
            "3",
            "--run-dir",
            str(run_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ports = run_dir / "ports.json"
        deadline = time.monotonic() + 20
        while not ports.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        info = json.loads(ports.read_text())
        link = info["serial"]["tunnel-bus"]["path"]
        assert link == str(run_dir / "tunnel-bus.tty")
        assert info["serial"]["tunnel-bus"]["devices"] == {"tunnel": 1}
        instrument = minimalmodbus.Instrument(link, 1)
        instrument.serial.baudrate = 19200
        instrument.serial.timeout = 0.5
        assert 3.8 < instrument.read_float(0) < 4.3
        instrument.serial.close()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert f"tunnel-bus       rtu  {run_dir / 'tunnel-bus.tty'} 19200 8N1  tunnel unit 1" in out
    assert not (run_dir / "tunnel-bus.tty").is_symlink()


def test_sim_run_unknown_scenario():
    result = CliRunner().invoke(main, ["sim", "run", "bakery"])
    assert result.exit_code == 1
    assert "edge: bakery: no such scenario (shipped: bottling, cold-room, demo" in result.output
