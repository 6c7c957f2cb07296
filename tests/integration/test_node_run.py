"""`edge run` as a real process against firmware-sim: start, poll, alarm, SIGTERM, verify, restart."""

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
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from node_db import sync_db

from edge.firmware_sim import SimulatorThread, load_scenario

pytestmark = pytest.mark.integration

EDGE = [sys.executable, "-m", "edge"]


@pytest.fixture
def node_dir(tmp_path: Path) -> Iterator[Path]:
    """The demo's node config and rules in tmp_path, with the demo scenario served there."""
    for name in ("node.toml", "tunnel.yaml"):
        with resources.as_file(resources.files("edge.demo") / name) as src:
            shutil.copyfile(src, tmp_path / name)
    with SimulatorThread(load_scenario("demo"), tmp_path, seed=3):
        yield tmp_path


def _entries(db: Path, type_: str | None = None) -> list[dict[str, object]]:
    if not db.exists():
        return []
    sync_db(db)  # a running node's journal first, as edge ledger readers do
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT raw FROM entries ORDER BY feed, seq").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()
    out = [json.loads(r[0]) for r in rows]
    return [e for e in out if type_ is None or e["type"] == type_]


def _edge(*args: str) -> subprocess.CompletedProcess[str]:
    """Run an edge command as an operator would; its output as text."""
    return subprocess.run([*EDGE, *args], capture_output=True, text=True, timeout=30)


def _assert_done(args: list[str], saying: str) -> None:
    """The command succeeds and its output says ``saying``."""
    result = _edge(*args)
    assert result.returncode == 0, result.stderr
    assert saying in result.stdout


def _assert_refused(args: list[str], message: str) -> None:
    """The command fails with exit 1 and exactly this one line."""
    result = _edge(*args)
    assert result.returncode == 1
    assert result.stderr.strip() == message


def _entry_ids(db: Path, type_: str) -> list[str]:
    sync_db(db)  # a running node's journal first, as edge ledger readers do
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [
            i
            for (i,) in conn.execute("SELECT id FROM entries WHERE type = ? ORDER BY seq", (type_,))
        ]
    finally:
        conn.close()


def _wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _wait_for_alarm(db: Path) -> None:
    """The demo scenario's cooling fails from 4 s to 12 s: the limit alarm must fire."""
    _wait_for(
        lambda: any(e["body"]["event"] == "activated" for e in _entries(db, "alarm")), 25, "alarm"
    )


def _assert_verifies(db: Path) -> None:
    """The quality manager's command agrees: exit 0."""
    verify = subprocess.run(
        [*EDGE, "ledger", "verify", "--db", str(db)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _start(node_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*EDGE, "run", "-c", str(node_dir / "node.toml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _stop(proc: subprocess.Popen[bytes]) -> tuple[int, float, str]:
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, time.monotonic() - t0, err.decode()


def test_run_polls_raises_alarm_and_stops_cleanly_on_sigterm(node_dir: Path) -> None:
    db = node_dir / "data" / "ledger.db"
    proc = _start(node_dir)
    try:
        _wait_for_alarm(db)
    finally:
        code, took, err = _stop(proc)
    assert code == 0, err
    assert took < 2.0, f"stopped {took:.2f} s after SIGTERM"
    assert "Traceback" not in err
    types = [e["type"] for e in _entries(db)]
    assert types[:3] == ["node.start", "config.change", "rules.change"]  # first start
    assert "readings.digest" in types
    # node.stop closes the run: only its checkpoint comes after it, the last readings before it
    assert [t for t in types if t != "checkpoint"][-1] == "node.stop"
    _assert_verifies(db)


def test_restart_keeps_alarm_state_and_chain(node_dir: Path) -> None:
    db = node_dir / "data" / "ledger.db"
    proc = _start(node_dir)
    try:
        _wait_for_alarm(db)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    # the engine state lives in the ledger database, stored with the batch of its events
    assert not (node_dir / "data" / "engine-state.json").exists()
    sync_db(db)  # a running node's journal first, as edge ledger readers do
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        (raw,) = conn.execute("SELECT state FROM engine_state WHERE name = 'rules'").fetchone()
    finally:
        conn.close()
    state = json.loads(raw)
    assert state["alarms"]["tunnel-temp-high"]["state"] == "active_unack"
    activated_before = sum(e["body"]["event"] == "activated" for e in _entries(db, "alarm"))
    proc = _start(node_dir)
    try:
        _wait_for(lambda: len(_entries(db, "node.start")) == 2, 15, "second start")
        time.sleep(1.5)
    finally:
        code, _, err = _stop(proc)
    assert code == 0, err
    # the alarm that was active before the kill is not raised a second time after the restart
    activated_after = sum(e["body"]["event"] == "activated" for e in _entries(db, "alarm"))
    assert activated_after == activated_before
    assert len(_entries(db, "config.change")) == 1  # the same config: recorded once, at first
    _assert_verifies(db)


def test_bad_rule_reload_keeps_running_set_and_records_config_alarm(node_dir: Path) -> None:
    db = node_dir / "data" / "ledger.db"
    rules = node_dir / "tunnel.yaml"
    proc = _start(node_dir)
    try:
        _wait_for(lambda: len(_entries(db, "rules.change")) == 1, 15, "first rule set")
        good = rules.read_text()
        rules.write_text(good.replace("max_age: 3s", "max_age: 3 parsecs"))
        proc.send_signal(signal.SIGHUP)
        _wait_for(
            lambda: any(e["body"]["rule"] == "config:rules" for e in _entries(db, "alarm")),
            15,
            "config alarm",
        )
        assert proc.poll() is None, "node died on a bad rule file"
        rules.write_text(good.replace("high: 8.0 degC", "high: 9.0 degC"))
        os.utime(rules)
        proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: len(_entries(db, "rules.change")) == 2, 15, "second rule set")
    finally:
        code, _, err = _stop(proc)
    assert code == 0, err
    hashes = [e["body"]["hash"] for e in _entries(db, "rules.change")]
    assert hashes[0] != hashes[1]
    alarm = next(e for e in _entries(db, "alarm") if e["body"]["rule"] == "config:rules")
    assert "tunnel.yaml" in alarm["body"]["message"]


def test_bad_config_is_one_line_and_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "node.toml"
    bad.write_text('[node]\nid = "x"\n[devices.d]\nbus = "nope"\npoll = "fast"\n')
    result = subprocess.run(
        [*EDGE, "run", "-c", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{bad}:5: devices.d.poll: bad duration 'fast'" in result.stderr


def test_operator_actions_via_cli_and_mqtt_are_recorded_with_who(node_dir: Path, broker) -> None:  # type: ignore[no-untyped-def]
    db = node_dir / "data" / "ledger.db"
    toml = node_dir / "node.toml"
    toml.write_text(
        toml.read_text() + f'\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
        '[operators]\nact = ["mqtt:op.max"]\ncorrect = ["mqtt:op.max"]\n'
    )
    me = f"unix:{pwd.getpwuid(os.geteuid()).pw_name}"  # who the node sees on its socket
    sub_out = node_dir / "mqtt.log"
    with sub_out.open("wb") as out:
        sub = subprocess.Popen(
            [
                "mosquitto_sub",
                "-h",
                "127.0.0.1",
                "-p",
                str(broker.port),
                "-t",
                "edge/#",
                "-v",
                "-q",
                "1",
            ],
            stdout=out,
        )
    proc = _start(node_dir)
    try:
        _wait_for_alarm(db)
        _assert_done(
            ["alarm", "ack", "tunnel-temp-high", "-c", str(toml), "--actor", "qa.jane",
             "--comment", "checked"],
            "acknowledged",
        )  # fmt: skip
        _assert_refused(
            ["alarm", "ack", "no-such-rule", "-c", str(toml), "--actor", "qa.jane"],
            "edge: no alarm rule or tag 'no-such-rule' in the running rule set",
        )
        pub = [
            "mosquitto_pub",
            "-h",
            "127.0.0.1",
            "-p",
            str(broker.port),
            "-t",
            "edge/demo-gw1/cmd/op.max",  # the broker user (an ACL binds it: test_operator_auth)
            "-q",
            "1",
            "-m",
        ]
        # a quality manager corrects the alarm entry (by an id prefix) through the running node
        alarm_id = _entry_ids(db, "alarm")[0]
        _assert_done(
            ["ledger", "correct", alarm_id[:10], "-c", str(toml), "--actor", "qa.jane",
             "--reason", "probe was in the door draught"],
            "through the running node",
        )  # fmt: skip
        _assert_refused(
            ["ledger", "correct", "0123456789", "-c", str(toml), "--reason", "x"],
            "edge: entry 0123456789: no entry in the ledger has this id",
        )
        subprocess.run([*pub, '{"action": "ack"}'], check=True, timeout=10)
        subprocess.run([*pub, "not json at all"], check=True, timeout=10)
        bad_correct = '{"action": "correct", "entry": "0123456789", "actor": "x", "comment": "y"}'
        subprocess.run([*pub, bad_correct], check=True, timeout=10)
        shelve = '{"action": "shelve", "rule": "tunnel-temp-stale", "actor": "op.max", "duration": "10m"}'
        subprocess.run([*pub, shelve], check=True, timeout=10)
        _wait_for(lambda: len(_entries(db, "alarm.shelve")) == 1, 15, "shelve entry")
        assert proc.poll() is None, "node died on a malformed MQTT command"
    finally:
        code, _, err = _stop(proc)
        sub.terminate()
        sub.wait(timeout=10)
    assert code == 0, err
    acks = _entries(db, "alarm.ack")
    # the authenticated Unix user acts; the name given with --actor is kept as a claim
    assert [(a["actor"], a["body"]["rule"], a["body"]["comment"]) for a in acks] == [
        (me, "tunnel-temp-high", "checked [claimed actor: qa.jane]")
    ]
    assert _entries(db, "alarm.shelve")[0]["actor"] == "mqtt:op.max"
    # with the node stopped, a correction goes straight into its ledger
    offline = _edge("ledger", "correct", alarm_id, "-c", str(toml), "--actor", "qa.jane",
                    "--reason", "second look", "--json")  # fmt: skip
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["corrects"] == alarm_id
    corrections = _entries(db, "correction")
    assert [(c["actor"], c["body"]["corrects"], c["refs"]) for c in corrections] == [
        (me, alarm_id, [alarm_id]),
        (me, alarm_id, [alarm_id]),
    ]
    assert (
        corrections[0]["body"]["reason"] == "probe was in the door draught [claimed actor: qa.jane]"
    )
    _assert_verifies(db)
    log = sub_out.read_text()
    assert "edge/demo-gw1/alarms/tunnel-temp-high" in log
    assert '"event":"activated"' in log
    assert "rule: missing (required for ack)" in log
    assert "command: not JSON" in log
    assert "entry 0123456789: no entry in the ledger has this id" in log  # and the node ran on
