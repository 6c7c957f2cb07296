"""The commit process: a real child process writing batches, killed and refused for real (the
refusals with the commit thread too)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edge.errors import StorageError
from edge.ledger.commit import batch_params
from edge.ledger.commit_client import CommitProcess
from edge.ledger.commit_thread import CommitThread
from edge.ledger.keys import NodeKey, create_key_file, load_key
from edge.ledger.store import Ledger, connect
from edge.ledger.writer import LedgerWriter
from edge.ledger.writer_commits import CommitWorker

from .conftest import T0, assert_verifies, first_commit_pid


def _gone(pid: int) -> bool:
    """True when the process no longer runs (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


async def test_killed_commit_process_is_restarted_and_nothing_is_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "l.db"
    writer = LedgerWriter.open(
        path, NodeKey.generate(), flush_interval=0.005, batch_max=50, commit_worker="process"
    )
    caplog.set_level(logging.ERROR)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        pid = await first_commit_pid(writer, {"n": 0})
        os.kill(pid, signal.SIGKILL)
        last = None
        for n in range(1, 2000):
            last = await writer.append("alarm", {"n": n}, ts=T0 + n)
            if n % 100 == 0:
                await asyncio.sleep(0)
        assert last is not None
        async with asyncio.timeout(20):
            await writer.durable(last.seq)
        assert writer.commit_pid not in (None, pid)
        await writer.aclose()
    assert writer.committed == 2000
    assert any("commit process exited" in r.getMessage() for r in caplog.records)
    assert_verifies(path)
    conn = connect(path, readonly=True)
    assert conn.execute("SELECT count(*) FROM entries WHERE type = 'alarm'").fetchone()[0] == 2000
    conn.close()


WORKERS = pytest.mark.parametrize(
    "worker", [CommitProcess, CommitThread], ids=["process", "thread"]
)


@WORKERS
async def test_commit_worker_refuses_a_file_that_is_not_a_database(
    tmp_path: Path, worker: type[CommitWorker]
) -> None:
    path = tmp_path / "l.db"
    path.write_bytes(b"this is not a database file, it is a shopping list\n" * 100)
    with pytest.raises(StorageError, match="not a database"):
        await worker.start(path, lock_fd=None, where=f"ledger {path}", timeout=30)


@WORKERS
async def test_batch_that_is_not_next_is_refused_and_nothing_lands(
    tmp_path: Path, worker: type[CommitWorker]
) -> None:
    path = tmp_path / "l.db"
    key = NodeKey.generate()
    with Ledger.open(path, key) as ledger:
        for n in range(3):
            ledger.append("alarm", {"n": n}, ts=T0 + n)
        ledger.cut()
        ledger.append("alarm", {"n": 3}, ts=T0 + 3)
        second = ledger.cut()  # starts at seq 4: the first batch (0..3) is not written
        assert second is not None
        commits = await worker.start(path, lock_fd=None, where="test", timeout=30)
        with pytest.raises(StorageError, match="is not next"):
            await commits.request("write", batch_params(second), [])
        assert await commits.request("prune", [99]) == 0  # no such block
        assert await commits.close() == 0
        assert not commits.alive
        with pytest.raises(StorageError, match="not running"):
            await commits.request("move")
    conn = connect(path, readonly=True)
    assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == 0
    conn.close()


@WORKERS
async def test_a_request_the_committer_fails_on_fails_its_caller(
    tmp_path: Path, worker: type[CommitWorker]
) -> None:
    """A bug in the committer (here: a malformed request, TypeError) fails the request it met.

    With the thread, the request being written was neither answered nor failed: the thread
    ended on the error and its caller (the writer) waited for ever.
    """
    path = tmp_path / "l.db"
    Ledger.open(path, NodeKey.generate()).close()
    commits = await worker.start(path, lock_fd=None, where="test", timeout=30)
    try:
        async with asyncio.timeout(20):
            with pytest.raises(StorageError):
                await commits.request("write", 5)
            await commits.wait()
        assert not commits.alive
    finally:
        commits.kill()


def test_commit_process_dies_with_its_node_and_frees_the_lock(tmp_path: Path) -> None:
    """SIGKILL the node: its commit process must not outlive it (it would write behind the back
    of the node's next start) and the single-writer lock is free again."""
    db, keyfile = tmp_path / "l.db", tmp_path / "node.key"
    create_key_file(keyfile)
    script = textwrap.dedent(
        f"""
        import asyncio
        from pathlib import Path
        from edge.ledger.keys import load_key
        from edge.ledger.writer import LedgerWriter

        async def main():
            writer = LedgerWriter.open(
                {str(db)!r}, load_key(Path({str(keyfile)!r})), commit_worker="process"
            )
            async with asyncio.TaskGroup() as tg:
                tg.create_task(writer.run(), name="ledger-writer")
                entry = await writer.append("alarm", {{"n": 0}}, ts={T0})
                await writer.durable(entry.seq)
                print(writer.commit_pid, flush=True)
                await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    node = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert node.stdout is not None
        commit_pid = int(node.stdout.readline())
        assert not _gone(commit_pid)
    finally:
        node.kill()
        node.wait()
        if node.stdout is not None:
            node.stdout.close()
    deadline = time.monotonic() + 5
    while not _gone(commit_pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _gone(commit_pid), "the commit process outlived its node"
    with Ledger.open(db, load_key(keyfile)) as ledger:  # the lock is free: this is a writer
        assert ledger.size == 2  # the entry and its checkpoint


async def test_commit_process_that_cannot_start_is_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interpreter to start the commit process is missing (a real failed exec): the writer
    logs it, keeps the entries and retries; once it can start, everything lands."""
    path = tmp_path / "l.db"
    writer = LedgerWriter.open(
        path, NodeKey.generate(), flush_interval=0.005, retry_max=0.05, commit_worker="process"
    )
    caplog.set_level(logging.ERROR)
    python = sys.executable
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        entries = [await writer.append("alarm", {"n": n}, ts=T0 + n) for n in range(10)]
        async with asyncio.timeout(10):
            while not any(
                "cannot start the commit process" in r.getMessage() for r in caplog.records
            ):
                await asyncio.sleep(0.01)
        assert writer.committed == 0
        monkeypatch.setattr(sys, "executable", python)
        async with asyncio.timeout(20):
            await writer.durable(entries[-1].seq)
        await writer.aclose()
    assert writer.committed == 10
    assert_verifies(path)


async def test_a_stuck_commit_is_reported_and_lands_once_unstuck(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The commit process is frozen for real (SIGSTOP), as by a disk that never answers: the
    writer warns once, producers are held by back-pressure, and after SIGCONT all lands."""
    path = tmp_path / "l.db"
    writer = LedgerWriter.open(
        path,
        NodeKey.generate(),
        flush_interval=0.005,
        queue_size=100,
        stall_warning=0.2,
        commit_worker="process",
    )
    caplog.set_level(logging.WARNING)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        pid = await first_commit_pid(writer, {"n": 0})
        os.kill(pid, signal.SIGSTOP)
        try:
            for n in range(1, 101):  # 100 entries waiting: the queue is full
                await writer.append("alarm", {"n": n}, ts=T0 + n)
            blocked = tg.create_task(
                writer.append("alarm", {"n": 101}, ts=T0 + 101), name="blocked-producer"
            )
            await asyncio.sleep(0.5)
            assert not blocked.done(), "the producer must wait while nothing commits"
            warnings = [r for r in caplog.records if "not committed yet" in r.getMessage()]
            assert len(warnings) == 1
        finally:
            os.kill(pid, signal.SIGCONT)
        last = await blocked
        async with asyncio.timeout(20):
            await writer.durable(last.seq)
        await writer.aclose()
    assert writer.committed == 102
    assert_verifies(path)


def test_a_request_cut_short_is_dropped_quietly(tmp_path: Path) -> None:
    """The node dies in the middle of sending a batch: the child writes nothing of it and exits
    without a traceback."""
    path = tmp_path / "l.db"
    Ledger.open(path, NodeKey.generate()).close()
    child = subprocess.run(
        [sys.executable, "-m", "edge.ledger.commit_process", str(path), str(os.getpid())],
        input=(1000).to_bytes(4, "big") + b"\x80\x05 only a part",
        capture_output=True,
        timeout=30,
    )
    assert child.returncode == 0
    assert child.stderr == b""
    assert b"ready" in child.stdout  # it started, then found the request incomplete
    conn = connect(path, readonly=True)
    assert conn.execute("SELECT count(*) FROM entries").fetchone()[0] == 0
    conn.close()
