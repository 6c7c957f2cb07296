"""`edge ledger prune-readings`: an operator's prune, recorded (who, why) before it is done.

Through a real running node (its control socket) and, with the node stopped, straight into its
ledger; `edge ledger verify` in the node's data directory (its key pinned) passes after both, and
names the prune's author.
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
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from node_db import sync_db
from stored_readings import stored

from edge.firmware_sim import SimulatorThread, load_scenario

pytestmark = pytest.mark.integration

EDGE = [sys.executable, "-m", "edge"]


@pytest.fixture
def node_dir(tmp_path: Path) -> Iterator[Path]:
    for name in ("node.toml", "tunnel.yaml"):
        with resources.as_file(resources.files("edge.demo") / name) as src:
            shutil.copyfile(src, tmp_path / name)
    toml = tmp_path / "node.toml"
    toml.write_text(toml.read_text().replace("readings_block = 200", "readings_block = 10"))
    with SimulatorThread(load_scenario("demo"), tmp_path, seed=5):
        yield tmp_path


def _edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGE, *args], capture_output=True, text=True, timeout=60)


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    if not db.exists():
        return []
    sync_db(db)  # a running node's journal first, as edge ledger readers do
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def _prunes(db: Path) -> list[dict[str, object]]:
    rows = _rows(db, "SELECT raw FROM entries WHERE type = 'readings.prune' ORDER BY seq")
    return [json.loads(r[0]) for r in rows]  # type: ignore[arg-type]


def _wait_for_blocks(db: Path, n: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if len(_rows(db, "SELECT block FROM reading_blocks")) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} readings blocks after 30 s")


def test_operator_prune_through_the_node_and_offline(node_dir: Path) -> None:
    toml = node_dir / "node.toml"
    db = node_dir / "data" / "ledger.db"
    proc = subprocess.Popen(
        [*EDGE, "run", "-c", str(toml)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_for_blocks(db, 3)
        future = _edge("ledger", "prune-readings", "-c", str(toml), "--before", "2999-01-01",
                       "--reason", "x", "--actor", "qa.jane")  # fmt: skip
        assert future.returncode == 1
        assert future.stderr.strip().endswith("is in the future")
        bad = _edge("ledger", "prune-readings", "-c", str(toml), "--before", "yesterday-ish",
                    "--reason", "x")  # fmt: skip
        assert bad.returncode == 1
        assert len(bad.stderr.strip().splitlines()) == 1
        assert "--before" in bad.stderr
        done = _edge("ledger", "prune-readings", "-c", str(toml), "--before", "0s",
                     "--reason", "disk full", "--actor", "qa.jane", "--json")  # fmt: skip
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["readings"] >= 30
        assert "offline" not in result
        assert proc.poll() is None, "the node stopped"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()
    (first,) = _prunes(db)
    # the actor is the authenticated Unix user; --actor is kept as a claim in the comment
    me = f"unix:{pwd.getpwuid(os.geteuid()).pw_name}"
    assert first["actor"] == me
    body = first["body"]
    assert isinstance(body, dict)
    assert (body["reason"], body["comment"]) == ("operator", "disk full [claimed actor: qa.jane]")
    assert body["readings"] == result["readings"]
    pruned_blocks = {b for (b,) in _rows(db, "SELECT block FROM reading_blocks WHERE pruned = 1")}
    assert pruned_blocks == {
        b for first_b, last_b in body["blocks"] for b in range(first_b, last_b + 1)
    }
    offline = _edge("ledger", "prune-readings", "-c", str(toml), "--before", "0s",
                    "--reason", "archive", "--actor", "qa.max")  # fmt: skip
    assert offline.returncode == 0, offline.stderr
    assert "directly into" in offline.stdout
    assert [(p["actor"], p["body"]["comment"]) for p in _prunes(db)] == [  # type: ignore[index]
        (me, "disk full [claimed actor: qa.jane]"),
        (me, "archive [claimed actor: qa.max]"),
    ]
    assert stored(db) == []
    verify = _edge("ledger", "verify", "--db", str(db), "--json")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    report = json.loads(verify.stdout)
    assert report["trust"]["checked"] is True  # the node's key is beside its database
    pruned = report["feeds"][0]["pruned_blocks"]
    assert set(pruned) == {f"operator:{me}"}
