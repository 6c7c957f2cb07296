"""Crash test: a real process appending under load, killed with SIGKILL at random moments."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge.ledger.keys import create_key_file
from edge.ledger.store import Ledger, connect
from edge.ledger.verify import verify_db

CHILD = Path(__file__).with_name("crash_child.py")


def run_and_kill(db: Path, keyfile: Path, after: float) -> list[tuple[int, str]]:
    """Start the child, let it run ``after`` seconds past its first report, SIGKILL it."""
    errfile = db.with_name("child.err")
    with errfile.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(db), str(keyfile)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    lines: list[str] = []
    first = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert first.wait(30), f"child reported nothing: {errfile.read_text()[-2000:]}"
        time.sleep(after)
    finally:
        commit_processes = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        # The commit process dies with it (PDEATHSIG), but not in the same instant: one in the
        # middle of a COMMIT finishes it first. Wait, or a read below races its last batch.
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in commit_processes):
            assert time.monotonic() < deadline, "the commit process outlived its node"
            time.sleep(0.01)
        reader.join(10)
        assert proc.stdout is not None
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    # Everything read, including lines still in the pipe at the kill: each was printed only
    # after its entry was committed.
    return [
        (int(seq), entry_id)
        for seq, entry_id in (line.split() for line in lines if line.endswith("\n"))
    ]


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out.extend(int(t) for t in (task / "children").read_text().split())
    except OSError:
        pass
    return out


@pytest.mark.integration
def test_sigkill_ten_times_loses_nothing_reported(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    keyfile = tmp_path / "node.key"
    key = create_key_file(keyfile)
    rng = random.Random(os.environ.get("CRASH_SEED", "20261123"))
    promised: dict[int, str] = {}
    for _ in range(10):
        reported = run_and_kill(db, keyfile, rng.uniform(0.0, 0.6))
        assert reported, "the child committed nothing before the kill"
        for seq, entry_id in reported:
            assert promised.setdefault(seq, entry_id) == entry_id  # a seq is never reused
        conn = connect(db, readonly=True)
        try:
            report = verify_db(conn)
            assert report.ok, report.problems[:5]
            stored = dict(
                conn.execute("SELECT seq, id FROM entries WHERE feed = ?", (key.feed,)).fetchall()
            )
        finally:
            conn.close()
        missing = {seq for seq, entry_id in promised.items() if stored.get(seq) != entry_id}
        assert not missing, f"{len(missing)} reported entries lost, e.g. seq {min(missing)}"
    assert len(promised) > 1000
    with Ledger.open(db, key) as ledger:  # the writer can still go on: no rollback, no gap
        assert ledger.size == len(stored)
