"""`/metrics` and `edge status` of a real node process, checked against what the node did.

The node polls issue 18's 40-point job from firmware-sim over Modbus TCP and sends its alerts to
a real Mosquitto. The endpoint is scraped over HTTP and parsed with prometheus-client's own
parser; the figures are compared with independent witnesses: the simulator's count of requests
it answered, the ledger database, the alerts a subscriber received.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from node_job import POINTS, write_node, write_scenario
from prometheus_client.parser import text_string_to_metric_families

from edge.firmware_sim import SimulatorThread, load_scenario

pytestmark = pytest.mark.integration

EDGE = [sys.executable, "-m", "edge"]
PER_REQUEST = POINTS // 2  # two requests a cycle: 20 holding, 20 input registers


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """name -> {sorted labels: value}, parsed by prometheus-client's parser."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain; version=")
        text = answer.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def _one(m: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str) -> float:
    return m[name][tuple(sorted(labels.items()))]


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _scrapes(port: int) -> bool:
    try:
        _scrape(port)
    except (OSError, urllib.error.URLError):
        return False
    return True


def test_metrics_and_status_match_what_the_node_did(tmp_path: Path, broker) -> None:  # type: ignore[no-untyped-def]
    port = _free_port()
    scenario = load_scenario(write_scenario(tmp_path))
    alerts = tmp_path / "alerts.txt"
    with SimulatorThread(scenario, tmp_path / "sim", seed=2) as sim:
        config = write_node(tmp_path, sim.tcp_endpoints["plc"][1], broker_port=broker.port,
                            metrics=f"127.0.0.1:{port}")  # fmt: skip
        with alerts.open("w") as out:
            sub = subprocess.Popen(
                ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-v",
                 "-t", "edge/+/alarms/#"], stdout=out, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        node = subprocess.Popen([*EDGE, "run", "-c", str(config)], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        try:
            _wait_for(lambda: _scrapes(port), 30, "/metrics")
            # two swings of p00 across its limit: alarms raised and cleared, alerts sent
            _wait_for(lambda: _one(_scrape(port), "edge_alerts_published_total") >= 3, 30,
                      "three alerts published")  # fmt: skip
            # the slave goes away: what was counted so far is what it answered
            sim.inject("plc", "port_gone")
            _wait_for(
                lambda: _one(_scrape(port), "edge_readings_total", device="plant",
                             quality="comm_fail") > 0, 30, "comm_fail readings",
            )  # fmt: skip
            answered = sim.tcp["plc"].requests
            m = _scrape(port)
            status = subprocess.run([*EDGE, "status", "-c", str(config), "--json"],
                                    capture_output=True, text=True, timeout=30)  # fmt: skip
            table = subprocess.run([*EDGE, "status", "-c", str(config)],
                                   capture_output=True, text=True, timeout=30)  # fmt: skip
            with pytest.raises(urllib.error.HTTPError) as missing:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/nothing", timeout=10)
            assert missing.value.code == 404
            missing.value.close()  # the error holds the response open
            # the subscriber has had time for every alert the broker acknowledged
            time.sleep(1.0)
        finally:
            node.send_signal(signal.SIGTERM)
            _, err = node.communicate(timeout=30)
            sub.terminate()
            sub.wait(timeout=10)
    assert node.returncode == 0, err.decode()

    # readings: every request the simulator answered gave 20 good readings (one may have been
    # answered as the port went, its reply lost)
    good = _one(m, "edge_readings_total", device="plant", quality="good")
    assert answered * PER_REQUEST - PER_REQUEST <= good <= answered * PER_REQUEST
    assert good % PER_REQUEST == 0
    # the node counts what it sent; the simulator what it received (before the port went)
    assert _one(m, "edge_bus_requests_total", bus="plc") >= answered
    assert _one(m, "edge_bus_port_open", bus="plc") in (0.0, 1.0)
    polls = _one(m, "edge_device_polls_total", bus="plc", device="plant")
    readings = sum(v for k, v in m["edge_readings_total"].items() if ("device", "plant") in k)
    assert readings == polls * POINTS  # every cycle gives each point a reading of some quality
    rate = _one(m, "edge_device_readings_per_second", device="plant")
    assert 0 < rate <= POINTS * 10 * 1.1  # at most 40 points every 100 ms

    # ledger: the head the node reports is in the database, with the seq it says
    db = sqlite3.connect(f"file:{tmp_path / 'data' / 'ledger.db'}?mode=ro", uri=True)
    try:
        (max_seq,) = db.execute("SELECT max(seq) FROM entries").fetchone()
        alarm_entries = db.execute("SELECT count(*) FROM entries WHERE type = 'alarm'").fetchone()
    finally:
        db.close()
    head = _one(m, "edge_ledger_head_seq")
    assert 0 < head <= max_seq
    commits = _one(m, "edge_ledger_commits_total")
    assert commits > 0
    assert 0 < _one(m, "edge_ledger_commit_seconds_total") / commits < 5.0

    # alerts: published = acknowledged by the broker = received by the subscriber (so far)
    published = _one(m, "edge_alerts_published_total")
    received = alerts.read_text().count("\n")
    assert published <= received <= alarm_entries[0]
    assert _one(m, "edge_alerts_dropped_total") == 0
    states = {dict(k)["state"]: v for k, v in m["edge_alarms"].items()}
    assert sum(states.values()) == 1  # one rule
    # the process collector: this node's own memory
    assert m["process_resident_memory_bytes"][()] > 1e6

    # edge status --json: the same metrics, through the control socket
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    names = {x["name"] for x in data["metrics"]}
    assert {"edge_readings_total", "edge_ledger_head_seq", "edge_queue_depth"} <= names
    assert data["node"] == "job40-gw"
    assert table.returncode == 0, table.stderr
    assert "plant" in table.stdout
    assert "readings/s" in table.stdout

    # no node: one line, exit 1
    gone = subprocess.run([*EDGE, "status", "-c", str(config)], capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert gone.returncode == 1
    assert gone.stderr.strip().count("\n") == 0
    assert gone.stderr.startswith("edge: no running node at ")
    gone = subprocess.run([*EDGE, "status", "-c", str(config), "--json"], capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert gone.returncode == 1
    failure = json.loads(gone.stdout)
    assert failure["ok"] is False
    assert failure["error"].startswith("no running node at ")
