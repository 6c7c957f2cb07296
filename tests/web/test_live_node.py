"""``edge serve`` beside a running node: pages show what the node committed seconds ago.

A real ``edge run`` on the demo config (its simulated line served by firmware-sim), the commit
journal on (``[ledger] commit_journal``: small commits wait in ``ledger.db.eqj`` up to two
minutes); the view,
started with the node's config, must show the cooling alarm the demo raises within seconds, so
it has to ask the node to move its journal (the control socket's ``sync``) as the ``edge
ledger`` readers do.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from web_server import start_server, stop_server

from edge.config import load_config
from edge.firmware_sim import SimulatorThread, load_scenario

pytestmark = pytest.mark.integration


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Path]:
    for name in ("node.toml", "tunnel.yaml"):
        with resources.as_file(resources.files("edge.demo") / name) as src:
            shutil.copyfile(src, tmp_path / name)
    config = tmp_path / "node.toml"
    text = config.read_text()
    assert "[ledger]\n" in text
    config.write_text(text.replace("[ledger]\n", "[ledger]\ncommit_journal = true\n", 1))
    with SimulatorThread(load_scenario("demo"), tmp_path, seed=3):
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge", "run", "-c", str(tmp_path / "node.toml")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield tmp_path / "node.toml"
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return str(resp.read().decode())


def test_pages_follow_a_running_node(node: Path) -> None:
    cfg = load_config(node)
    deadline = time.monotonic() + 30
    while not cfg.control_socket.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cfg.control_socket.exists(), "the node did not start"
    srv = start_server(cfg.ledger_path, "-c", str(node), "--verify-every", "0")
    try:
        deadline = time.monotonic() + 45  # the demo's cooling fails 4 s after start
        page = ""
        while time.monotonic() < deadline:
            page = _get(srv.url + "/alarms")
            if 'data-state="active_unack"' in page or 'data-state="rtn_unack"' in page:
                break
            time.sleep(0.5)
        assert "tunnel-temp-high" in page, "the alarm the node committed never showed"
        # an acknowledgement made now, while the view runs, shows within seconds (not after the
        # journal's two minutes)
        ack = subprocess.run(
            [sys.executable, "-m", "edge", "alarm", "ack", "tunnel-temp-high", "-c", str(node),
             "--comment", "seen from the office"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert ack.returncode == 0, ack.stdout + ack.stderr
        acked = time.monotonic()
        while time.monotonic() < acked + 20:
            row = _get(srv.url + "/alarms").split("tunnel-temp-high", 1)[-1].split("</tr>", 1)[0]
            if "unix:" in row:
                break
            time.sleep(0.5)
        assert "unix:" in row, row  # who acknowledged it, as the node recorded it
    finally:
        stop_server(srv)
