"""``edge alarm list`` and the reload alarms against a real running node (``edge run``).

The demo scenario's cooling fails from 4 s to 12 s, so ``tunnel-temp-high`` activates a few
seconds after the start. On that live node: the list fits 80 columns and shows local times,
value and message; ``--json`` has the raw figures; a rejected reload raises ``config:rules``
(listed), a later valid reload clears it on the ledger; editing the active alarm's limit resets
it with a ``reset`` entry on the ledger instead of silently.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from node_db import sync_db

from edge.firmware_sim import SimulatorThread, load_scenario
from edge.ledger.journal import journal_path

pytestmark = pytest.mark.integration

EDGE = [sys.executable, "-m", "edge"]


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimulatorThread]:
    for name in ("node.toml", "tunnel.yaml"):
        with resources.as_file(resources.files("edge.demo") / name) as src:
            shutil.copyfile(src, tmp_path / name)
    with SimulatorThread(load_scenario("demo"), tmp_path, seed=3) as running:
        yield running


@pytest.fixture
def node_dir(sim: SimulatorThread, tmp_path: Path) -> Path:
    return tmp_path


def _alarm_entries(db: Path) -> list[dict[str, Any]]:
    if not db.exists():
        return []
    sync_db(db)  # a running node's journal first, as edge ledger readers do
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT raw FROM entries WHERE type LIKE 'alarm%' ORDER BY seq")
        return [json.loads(r[0]) for r in rows.fetchall()]
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def _wait_for(predicate: Callable[[], object], what: str, timeout: float = 25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EDGE, *args], capture_output=True, text=True, timeout=30, env={"TZ": "Europe/Berlin",
        "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def _event(db: Path, rule: str, event: str) -> dict[str, Any] | None:
    return next(
        (
            e
            for e in _alarm_entries(db)
            if e["body"].get("rule") == rule and e["body"].get("event") == event
        ),
        None,
    )


def test_alarm_list_config_alarm_and_reset_on_a_running_node(node_dir: Path) -> None:
    db = node_dir / "data" / "ledger.db"
    toml = str(node_dir / "node.toml")
    rules = node_dir / "tunnel.yaml"
    good = rules.read_text()
    proc = subprocess.Popen(
        [*EDGE, "run", "-c", toml], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_for(lambda: _event(db, "tunnel-temp-high", "activated"), "the limit alarm")

        # -- the list, for people: 80 columns, local times, value, message, config:rules
        listed = _edge("alarm", "list", "-c", toml)
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert max(map(len, lines)) <= 80
        assert "times are local (CET, UTC+01:00)" in lines[0]  # TZ=Europe/Berlin, December
        row = next(line for line in lines if line.startswith("tunnel-temp-high "))
        assert "ACTIVE unacked" in row
        assert "degC" in row  # the value with its unit
        since = row.split("ACTIVE unacked")[1].split()[0]
        assert len(since) == 8
        assert since.count(":") == 2
        message = lines[lines.index(row) + 1]
        assert message.startswith("    tunnel product temperature")
        assert any(line.startswith("config:rules ") and "normal" in line for line in lines)
        assert any(line.startswith("ACTIVE unacked: the condition is present") for line in lines)

        # -- --json: the raw values
        raw = _edge("alarm", "list", "-c", toml, "--json")
        assert raw.returncode == 0, raw.stderr
        alarms = json.loads(raw.stdout)
        high = alarms["tunnel-temp-high"]
        activated = _event(db, "tunnel-temp-high", "activated")
        assert activated is not None
        assert high["state"] == "active_unack"
        assert isinstance(high["since"], float)
        assert abs(high["since"] - time.time()) < 60
        assert high["value"] > 8.0
        assert high["unit"] == "degC"
        assert high["message"] == activated["body"]["message"]
        assert alarms["config:rules"]["state"] == "normal"

        # -- a rejected reload raises config:rules, and the list shows it
        rules.write_text(good.replace("max_age: 3s", "max_age: 3 parsecs"))
        proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: _event(db, "config:rules", "activated"), "config alarm")
        config = json.loads(_edge("alarm", "list", "-c", toml, "--json").stdout)["config:rules"]
        assert config["state"] == "active_unack"
        assert "tunnel.yaml" in config["message"]
        assert isinstance(config["since"], float)

        # -- a valid reload that edits the active alarm's limit: config:rules cleared, the
        #    limit alarm reset with an entry (it was not acknowledged)
        rules.write_text(good.replace("high: 8.0 degC", "high: 30.0 degC"))
        proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: _event(db, "config:rules", "cleared"), "config alarm cleared")
        _wait_for(lambda: _event(db, "tunnel-temp-high", "reset"), "reset entry")
        cleared = _event(db, "config:rules", "cleared")
        reset = _event(db, "tunnel-temp-high", "reset")
        assert cleared is not None
        assert reset is not None
        assert cleared["body"]["from"] == "active_unack"
        assert cleared["body"]["to"] == "rtn_unack"  # nobody acknowledged it yet
        assert reset["body"]["from"] in ("active_unack", "rtn_unack")
        assert reset["body"]["to"] == "normal"
        assert "rule was changed" in reset["body"]["message"]
        after = json.loads(_edge("alarm", "list", "-c", toml, "--json").stdout)
        assert after["tunnel-temp-high"]["state"] == "normal"
        assert after["config:rules"]["state"] == "rtn_unack"

        # -- config:rules is acknowledged like any alarm, recorded with who
        ack = _edge("alarm", "ack", "config:rules", "-c", toml, "--actor", "qa.jane", "--json")
        assert ack.returncode == 0, ack.stdout + ack.stderr
        # the ack waits unsigned in the commit journal (moved every 120 s): edge ledger query
        # asks the running node to sign and move it first, so it sees the ack at once
        assert journal_path(db).stat().st_size > 0
        queried = _edge("ledger", "query", "--db", str(db), "--type", "alarm.ack", "--json")
        assert queried.returncode == 0, queried.stdout + queried.stderr
        assert [json.loads(line)["body"]["rule"] for line in queried.stdout.splitlines()] == [
            "config:rules"
        ]
        assert json.loads(ack.stdout) == {"ok": True, "rule": "config:rules",
                                          "events": ["acknowledged"]}  # fmt: skip
        shelve = _edge("alarm", "shelve", "config:rules", "-c", toml, "--for", "1m", "--json")
        assert shelve.returncode == 1
        assert json.loads(shelve.stdout) == {
            "ok": False, "error": "config:rules can only be acknowledged"
        }  # fmt: skip
        final = json.loads(_edge("alarm", "list", "-c", toml, "--json").stdout)
        assert final["config:rules"]["state"] == "normal"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()
    acks = [e for e in _alarm_entries(db) if e["type"] == "alarm.ack"]
    me = f"unix:{pwd.getpwuid(os.geteuid()).pw_name}"  # the socket's peer, not --actor
    assert [(a["body"]["rule"], a["actor"]) for a in acks] == [("config:rules", me)]
    verify = _edge("ledger", "verify", "--db", str(db))
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_alarm_list_without_a_node_is_one_line_or_json(tmp_path: Path) -> None:
    toml = tmp_path / "node.toml"
    with resources.as_file(resources.files("edge.demo") / "node.toml") as src:
        shutil.copyfile(src, toml)
    text = _edge("alarm", "list", "-c", str(toml))
    assert text.returncode == 1
    assert text.stdout == ""
    assert text.stderr.count("\n") == 1
    assert text.stderr.startswith("edge: no running node at ")
    as_json = _edge("alarm", "list", "-c", str(toml), "--json")
    assert as_json.returncode == 1
    error = json.loads(as_json.stdout)
    assert error["ok"] is False
    assert error["error"].startswith("no running node at ")


def _ts_epoch(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def test_an_alarm_active_from_before_a_restart_shows_since_from_the_ledger(
    sim: SimulatorThread, node_dir: Path
) -> None:
    db = node_dir / "data" / "ledger.db"
    toml = str(node_dir / "node.toml")
    cmd = [*EDGE, "run", "-c", toml]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: _event(db, "tunnel-temp-high", "activated"), "the limit alarm")
        # keep the tunnel warm past the scenario's fault so the alarm stays active
        _wait_for(lambda: sim.now() > 12.3, "the end of the scheduled fault")
        sim.set_model("tunnel", "temperature", setpoint=20.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
    activated = _event(db, "tunnel-temp-high", "activated")
    assert activated is not None
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: _edge("alarm", "list", "-c", toml).returncode == 0, "the restart")
        high = json.loads(_edge("alarm", "list", "-c", toml, "--json").stdout)["tunnel-temp-high"]
        assert high["state"] == "active_unack"
        assert high["since"] == pytest.approx(_ts_epoch(activated["ts"]), abs=1e-3)
        assert high["message"] == activated["body"]["message"]
        assert high["value"] == pytest.approx(float(activated["body"]["value"]))
        text = _edge("alarm", "list", "-c", toml).stdout
        row = next(x for x in text.splitlines() if x.startswith("tunnel-temp-high "))
        assert " - " not in row  # a local time, not the unknown mark
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()
