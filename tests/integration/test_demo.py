"""`edge demo` (what `make demo` runs): raise -> acknowledge -> clear explained, cleaned up, short.

Real processes end to end: the demo runs firmware-sim on a PTY, the node, the ledger. Checked:
the walk-through order and its plain-word states, that a default run leaves nothing in the temp
directory (TMPDIR points at an empty folder of the test), that ``--dir`` keeps a ledger that
the quality manager's ``edge ledger verify`` accepts with the acknowledgement recorded by the
demo operator, and that ``make demo SECONDS=10`` passes the length through.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _demo(*args: str, tmpdir: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "edge", "demo", "--seconds", "10", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin", "TMPDIR": str(tmpdir)},
    )
    return result, time.monotonic() - t0


@pytest.fixture
def tmpdir_short() -> Iterator[Path]:
    """An empty TMPDIR with a short path (the demo's control socket must fit AF_UNIX's 108)."""
    path = Path(tempfile.mkdtemp(prefix="edt", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_demo_walks_through_raise_ack_clear_and_cleans_up(tmpdir_short: Path) -> None:
    tmpdir = tmpdir_short
    result, took = _demo(tmpdir=tmpdir)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Traceback" not in result.stderr
    # the walk-through, in this order, each state said in plain words as it is entered
    raised = out.index("ACTIVATED tunnel-temp-high")
    acked = out.index("ACKNOWLEDGED by demo-operator tunnel-temp-high")
    cleared = out.index("CLEARED tunnel-temp-high")
    assert raised < acked < cleared
    assert "normal -> active_unack" in out[raised:acked]
    assert (
        "now ACTIVE unacked: the condition is present and nobody has acknowledged"
        in (out[raised:acked])
    )
    assert "active_unack -> active_ack" in out[acked:cleared]
    assert "now active acked: someone acknowledged it" in out[acked:cleared]
    assert "active_ack -> normal" in out[cleared:]
    assert "now normal: no condition" in out[cleared:]
    legend = out[out.index("The four ISA-18.2 alarm states") :]
    for words in ("ACTIVE unacked:", "active acked:", "returned unacked:", "normal:"):
        assert words in legend
    summary = out.split("demo summary")[1]
    assert re.search(r"acknowledged\s*│\s*1\b", summary)
    assert "OK" in summary.split("ledger verify")[1].splitlines()[0]
    # cleaned up: the run directory it named is gone, nothing is left in the temp directory
    run_dir = re.search(r"run directory: (\S+)", out)
    assert run_dir is not None
    assert run_dir.group(1).startswith(str(tmpdir))
    assert not Path(run_dir.group(1)).exists()
    assert list(tmpdir.iterdir()) == []
    assert "demo --keep" in out
    assert took < 40


def test_demo_with_dir_keeps_a_ledger_that_verifies(tmp_path: Path, tmpdir_short: Path) -> None:
    result, _ = _demo("--dir", str(tmp_path / "run"), tmpdir=tmpdir_short)
    assert result.returncode == 0, result.stdout + result.stderr
    db = tmp_path / "run" / "data" / "ledger.db"
    assert f"ledger verify --db {db}" in result.stdout
    verify = subprocess.run(
        [sys.executable, "-m", "edge", "ledger", "verify", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    conn = sqlite3.connect(db)
    acks = [
        (json.loads(raw)["actor"], json.loads(raw)["body"]["rule"])
        for (raw,) in conn.execute("SELECT raw FROM entries WHERE type = 'alarm.ack'")
    ]
    conn.close()
    assert acks == [("demo-operator", "tunnel-temp-high")]


def test_demo_refuses_a_run_too_short_for_the_story(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge", "demo", "--seconds", "5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "--seconds" in result.stderr


@pytest.mark.parametrize("seconds", ["nan", "inf", "1e9"])
def test_demo_refuses_a_length_that_is_not_a_number_of_seconds(seconds: str) -> None:
    # nan used to run a demo of no readings and exit 0; inf and 1e9 ran for ever
    result = subprocess.run(
        [sys.executable, "-m", "edge", "demo", "--seconds", seconds],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout
    assert result.stderr.count("\n") == 1
    assert "--seconds" in result.stderr
    assert "ACTIVATED" not in result.stdout


def test_demo_stopped_by_sigterm_still_cleans_up(tmpdir_short: Path) -> None:
    """A service manager's or `timeout`'s SIGTERM mid-run: the run directory is removed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "demo", "--seconds", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin", "TMPDIR": str(tmpdir_short)},
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the node is polling once the first reading is printed
            if "tunnel_temp=" in line:
                break
        assert list(tmpdir_short.iterdir()) != []
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    assert "Traceback" not in err
    assert err.strip().splitlines() == ["edge: aborted"]
    assert list(tmpdir_short.iterdir()) == []


def test_make_demo_passes_seconds_through() -> None:
    dry = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "demo", "SECONDS=10"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dry.returncode == 0, dry.stderr
    assert re.search(r"/edge demo --seconds 10$", dry.stdout, re.MULTILINE)
    plain = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "demo"], capture_output=True, text=True, timeout=60
    )
    assert re.search(r"/edge demo\s*$", plain.stdout, re.MULTILINE)


def test_an_os_error_inside_the_node_is_one_line(tmp_path: Path) -> None:
    """A --dir whose control socket path is too long for AF_UNIX: one line, no traceback."""
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    result = subprocess.run(
        [sys.executable, "-m", "edge", "demo", "--seconds", "10", "--dir", str(deep)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == ["edge: AF_UNIX path too long"]
