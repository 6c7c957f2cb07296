"""``edge record`` and ``edge readings export``: both write the CSV ``edge rules test --data``
reads, checked by round trips (record -> rules test; a real node's store -> export -> rules test)."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from node_db import sync_db

from edge.cli import main
from edge.firmware_sim import SimulatorThread, load_scenario
from edge.ledger import Ledger, NodeKey
from edge.readings import Quality, Reading
from edge.rules.recorded import read_csv

from .cli_fixtures import sim_rtu
from .conftest import Catalog, write_node

__all__ = ["sim_rtu"]  # a fixture used here

EDGE = [sys.executable, "-m", "edge"]

RULES = """version: 1
rules:
  - id: temp-high
    kind: limit
    point: temp
    high: 20 degC
  - id: valve-open
    kind: limit
    point: big
    high: 2.7
"""


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def events(rules: Path, data: Path, *extra: str) -> list[dict[str, object]]:
    result = invoke("rules", "test", str(rules), "--data", str(data), "--json", *extra)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_record_round_trips_through_rules_test(
    tmp_path: Path, tcp_slave: str, catalog: Catalog
) -> None:
    points = {
        "temp": catalog.points["temp"],
        "big": catalog.points["float64_abcd"],
        "lot": catalog.points["lot"],
        "run": catalog.points["coil7"],
        "neg": catalog.points["int64_cdab"],
    }
    config = write_node(
        tmp_path,
        {"kind": "tcp", "address": tcp_slave},
        {"plc": {"unit": 1}},
        {n: {"device": "plc", **p} for n, p in points.items()},
    )
    out = tmp_path / "rec.csv"
    result = invoke("record", "-c", str(config), "--seconds", "0.5", "--interval", "100ms",
                    "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "recorded" in result.stderr
    summary = invoke("record", "-c", str(config), "--seconds", "0.2", "--out",
                     str(tmp_path / "again.csv"), "--json", "--point", "temp")  # fmt: skip
    assert summary.exit_code == 0, summary.output
    body = json.loads(summary.stdout)
    assert body["ok"] is True
    assert body["good"] == body["readings"] >= 1
    assert out.read_text().splitlines()[0] == "ts,point,value,quality"
    readings = read_csv(out, text_points={"lot"})
    by_point: dict[str, list[Reading]] = {}
    for r in readings:
        by_point.setdefault(r.point, []).append(r)
    assert set(by_point) == set(points)
    assert 3 <= len(by_point["temp"]) <= 8  # 0.5 s at 100 ms
    # every value exactly as decoded: read back through the rules tools' own parser
    assert {r.value for r in by_point["big"]} == {2.718281828459045}
    assert {r.value for r in by_point["temp"]} == {23.0}
    assert {r.value for r in by_point["lot"]} == {"LOT-42A"}
    assert {r.value for r in by_point["run"]} == {True}
    assert {r.value for r in by_point["neg"]} == {float(catalog.expected["int64_cdab"])}
    assert all(r.quality == Quality.GOOD for r in readings)
    (rules := tmp_path / "rules.yaml").write_text(RULES)
    got = events(rules, out)
    assert sorted((e["rule"], e["event"], e["value"]) for e in got) == [
        ("temp-high", "activated", 23.0),
        ("valve-open", "activated", 2.718281828459045),
    ]


def test_record_keeps_failed_polls_as_empty_values(tmp_path: Path, sim_rtu: str) -> None:
    """A silent unit: rows with no value and quality comm_fail, and exit 1 (nothing good)."""
    config = write_node(
        tmp_path,
        {"kind": "rtu", "port": sim_rtu, "baudrate": 115200, "timeout": "50ms"},
        {"ghost": {"unit": 9}, "a": {"unit": 3}},
        {"g": {"device": "ghost", "register": 0}, "t": {"device": "a", "register": 0}},
    )
    out = tmp_path / "rec.csv"
    result = invoke("record", "-c", str(config), "--seconds", "0.4", "--interval", "100ms",
                    "--out", str(out), "--point", "g")  # fmt: skip
    assert result.exit_code == 1
    assert "no answer from unit 9" in result.stderr
    rows = out.read_text().splitlines()[1:]
    assert rows
    assert all(row.endswith(",g,,comm_fail") for row in rows)
    assert {r.quality for r in read_csv(out)} == {Quality.COMM_FAIL}


def _store(path: Path, key: NodeKey, readings: list[Reading], *, prune_before: float = 0) -> None:
    with Ledger.open(path, key) as ledger:
        for i in range(0, len(readings), 4):
            ledger.append_readings(readings[i : i + 4])
        ledger.commit()
        if prune_before:
            ledger.prune_readings(prune_before)


def test_export_writes_exact_values_in_a_window(tmp_path: Path) -> None:
    t0 = 1_795_428_000.0  # 2026-11-23T10:00:00Z
    readings = [Reading("temp", t0 + i, i * 0.1, Quality.GOOD, "degC") for i in range(10)] + [
        Reading("lot", t0 + 0.5, "0042", Quality.GOOD),
        Reading("run", t0 + 1.5, True, Quality.GOOD),
        Reading("temp", t0 + 20, None, Quality.COMM_FAIL, "degC"),
    ]
    db = tmp_path / "ledger.db"
    _store(db, NodeKey.generate(), readings)
    out = tmp_path / "all.csv"
    result = invoke("readings", "export", "--db", str(db), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "exported 13 readings" in result.stderr
    back = read_csv(out, text_points={"lot"})
    # exactly what was stored: floats bit for bit, the lot as text, no value as no value
    want = sorted(readings, key=lambda r: r.ts)
    assert [(r.point, r.ts, r.value, r.quality) for r in back] == [
        (r.point, pytest.approx(r.ts, abs=1e-6), r.value, r.quality) for r in want
    ]
    assert all(type(a.value) is type(b.value) for a, b in zip(back, want, strict=True))
    window = invoke("readings", "export", "--db", str(db), "--point", "temp",
                    "--since", "2026-11-23T10:00:02Z", "--until", "2026-11-23T10:00:05Z")  # fmt: skip
    assert window.exit_code == 0, window.output
    lines = window.stdout.splitlines()
    assert lines[0] == "ts,point,value,quality"
    assert lines[1:] == [
        "2026-11-23T10:00:02.000000Z,temp,0.2,good",
        "2026-11-23T10:00:03.000000Z,temp,0.30000000000000004,good",  # 3 * 0.1, not rounded
        "2026-11-23T10:00:04.000000Z,temp,0.4,good",
    ]


def test_export_reports_pruned_blocks_and_bad_files(tmp_path: Path) -> None:
    t0 = 1_795_428_000.0
    db = tmp_path / "ledger.db"
    _store(db, NodeKey.generate(), [Reading("x", t0 + i, float(i)) for i in range(8)],
           prune_before=t0 + 3.5)  # fmt: skip
    result = invoke("readings", "export", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1 + 4  # the first block (4 readings) is gone
    assert "1 block(s) in the window were pruned" in result.stderr
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    result = invoke("readings", "export", "--db", str(other))
    assert result.exit_code == 1
    assert (
        result.stderr.strip() == f"edge: {other}: not an edge ledger database (no readings table)"
    )
    result = invoke("readings", "export", "--db", str(tmp_path / "missing.db"))
    assert result.exit_code == 1
    assert "no such file" in result.stderr
    result = invoke("readings", "export", "--db", str(db), "--since", "yesterday-ish")
    assert result.exit_code == 2
    assert "--since" in result.stderr
    as_json = invoke(
        "readings", "export", "--db", str(db), "--json", "--out", str(tmp_path / "o.csv")
    )
    assert as_json.exit_code == 0, as_json.output
    summary = json.loads(as_json.stdout)
    assert (summary["ok"], summary["readings"], summary["pruned_blocks"]) == (True, 4, 1)
    failed = invoke(
        "readings", "export", "--db", str(other), "--json", "--out", str(tmp_path / "p.csv")
    )
    assert failed.exit_code == 1
    assert json.loads(failed.stdout)["ok"] is False
    assert invoke("readings", "export", "--db", str(db), "--json").exit_code == 2  # stdout: CSV


def test_export_counts_only_pruned_blocks_the_window_touches(tmp_path: Path) -> None:
    """The pruned block holds 10:00:00-10:00:03; a window counts it only if it overlaps."""
    t0 = 1_795_428_000.0
    db = tmp_path / "ledger.db"
    _store(db, NodeKey.generate(), [Reading("x", t0 + i, float(i)) for i in range(8)],
           prune_before=t0 + 3.5)  # fmt: skip
    out = tmp_path / "o.csv"

    def pruned(*window: str) -> int:
        result = invoke("readings", "export", "--db", str(db), "--json", "--out", str(out),
                        *window)  # fmt: skip
        return int(json.loads(result.stdout)["pruned_blocks"])

    assert pruned("--since", "2026-11-23T10:00:03Z") == 1  # its last reading is in
    assert pruned("--since", "2026-11-23T10:00:03.5Z") == 0  # all of it before the window
    assert pruned("--until", "2026-11-23T10:00:00.5Z") == 1  # its first reading is in
    assert pruned("--until", "2026-11-23T10:00:00Z") == 0  # the end is exclusive
    assert pruned("--since", "2026-11-23T10:00:01Z", "--until", "2026-11-23T10:00:02Z") == 1


def test_record_and_export_name_an_out_file_they_cannot_create(
    tmp_path: Path, tcp_slave: str, catalog: Catalog
) -> None:
    """Both commands open --out alike: one line naming the file, exit 1, JSON with --json."""
    db = tmp_path / "ledger.db"
    _store(db, NodeKey.generate(), [Reading("x", 1_795_428_000.0, 1.0)])
    config = write_node(
        tmp_path,
        {"kind": "tcp", "address": tcp_slave},
        {"plc": {"unit": 1}},
        {"temp": {"device": "plc", **catalog.points["temp"]}},
    )
    bad = tmp_path / "no-such-dir" / "rec.csv"
    for command in (["readings", "export", "--db", str(db)],
                    ["record", "-c", str(config), "--seconds", "0.1"]):  # fmt: skip
        result = invoke(*command, "--out", str(bad))
        assert result.exit_code == 1, result.output
        assert result.stderr.strip() == f"edge: {bad}: cannot write: No such file or directory"
        as_json = invoke(*command, "--out", str(bad), "--json")
        assert as_json.exit_code == 1
        assert json.loads(as_json.stdout) == {
            "ok": False,
            "error": f"{bad}: cannot write: No such file or directory",
        }


@pytest.mark.integration
def test_running_node_refuses_writes_and_its_store_replays(tmp_path: Path) -> None:
    """The demo node (a real `edge run` process) on firmware-sim: while it runs, `edge write`
    is refused through the config and through the port; after it stops, its stored readings
    exported and replayed raise the same alarm it raised live."""
    for name in ("node.toml", "tunnel.yaml"):
        with resources.as_file(resources.files("edge.demo") / name) as src:
            shutil.copyfile(src, tmp_path / name)
    config = tmp_path / "node.toml"
    db = tmp_path / "data" / "ledger.db"
    with SimulatorThread(load_scenario("demo"), tmp_path, seed=3):
        node = subprocess.Popen([*EDGE, "run", "-c", str(config)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        try:
            alarm = _wait_for_alarm(db)
            by_config = invoke("write", "-c", str(config), "--device", "tunnel",
                               "--register", "3", "--yes", "0")  # fmt: skip
            assert by_config.exit_code == 1
            assert by_config.stderr.startswith("edge: refused: node demo-gw1 is running with")
            tty = str(tmp_path / "tunnel-bus.tty")
            by_port = invoke("write", "--port", tty, "--register", "3", "--yes", "0")
            assert by_port.exit_code == 1
            assert f"port {tty} is in use by another program" in by_port.stderr
            # The live node fires an on-delay on its clock tick; a replay only moves time with
            # readings. Keep polling (once a second) until readings past the due time are stored,
            # or a node stopped right after its activation leaves the replay short of it.
            time.sleep(3.0)
        finally:
            node.send_signal(signal.SIGTERM)
            _, err = node.communicate(timeout=15)
        assert node.returncode == 0, err.decode()
    out = tmp_path / "rec.csv"
    result = invoke("readings", "export", "-c", str(config), "--point", "tunnel_temp",
                    "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    replayed = [e for e in events(tmp_path / "tunnel.yaml", out) if e["rule"] == "tunnel-temp-high"]
    assert replayed[0]["event"] == "activated"
    assert replayed[0]["ts"] == pytest.approx(alarm["ts"], abs=0.3)


def _wait_for_alarm(db: Path) -> dict[str, object]:
    """The node's own first alarm activation (the demo's cooling fails from 4 s to 12 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if db.exists():
            sync_db(db)  # the alarm may wait in the commit journal: ask the node to move it
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                rows = conn.execute("SELECT raw FROM entries WHERE type = 'alarm'").fetchall()
            except sqlite3.OperationalError:
                rows = []
            finally:
                conn.close()
            for (raw,) in rows:
                entry = json.loads(raw)
                if entry["body"]["event"] == "activated":
                    return dict(entry["body"], ts=_epoch(entry["ts"]))
        time.sleep(0.2)
    raise AssertionError("the demo node raised no alarm in 30 s")


def _epoch(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_record_to_a_closed_pipe_ends_quietly(
    tmp_path: Path, tcp_slave: str, catalog: Catalog
) -> None:
    config = write_node(
        tmp_path,
        {"kind": "tcp", "address": tcp_slave},
        {"plc": {"unit": 1, "poll": "20ms"}},
        {"temp": {"device": "plc", **catalog.points["temp"]}},
    )
    t0 = time.monotonic()
    edge = subprocess.Popen([*EDGE, "record", "-c", str(config), "--seconds", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    head = subprocess.run(["head", "-2"], stdin=edge.stdout, capture_output=True, timeout=30)
    assert edge.stdout is not None
    edge.stdout.close()
    _, err = edge.communicate(timeout=30)
    assert time.monotonic() - t0 < 15  # it ended at the closed pipe, not after 20 s
    assert head.stdout.decode().splitlines()[0] == "ts,point,value,quality"
    assert err == b""
    assert edge.returncode == 1


def test_export_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    import os

    db = tmp_path / "ledger.db"
    _store(db, NodeKey.generate(), [Reading("x", 1_795_428_000.0 + i, float(i)) for i in range(8)])
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([*EDGE, "readings", "export", "--db", str(db)],
                                stdout=write_end, stderr=subprocess.PIPE, timeout=60)  # fmt: skip
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (1, b"")
