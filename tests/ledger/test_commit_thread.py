"""The commit thread, the writer's default worker: no process of its own, a kill that loses
nothing, and a full disk (a real file-size limit) delays without losing. Its refusals are
tested with the process's (tests/ledger/test_commit_process.py, both workers)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from stored_readings import stored

from edge.ledger.commit_thread import CommitThread
from edge.ledger.keys import NodeKey
from edge.ledger.store import connect
from edge.ledger.writer import LedgerWriter
from edge.readings import Reading

from .conftest import T0, assert_verifies


def _journal_bytes(db: Path) -> int:
    journal = Path(f"{db}.eqj")
    return journal.stat().st_size if journal.exists() else 0


def _commit_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "edge-commit"]


async def _first_commit(writer: LedgerWriter) -> CommitThread:
    """Commit entry 0 through a running writer; the commit thread that wrote it."""
    first = await writer.append("alarm", {"n": 0}, ts=T0)
    await writer.durable(first.seq)
    worker = writer._commits
    assert isinstance(worker, CommitThread)
    return worker


async def test_the_default_worker_is_a_thread_that_ends_with_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    before = len(_commit_threads())
    writer = LedgerWriter.open(path, NodeKey.generate(), flush_interval=0.005)
    assert writer.commit_worker == "thread"
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        entries = [await writer.append("alarm", {"n": n}, ts=T0 + n) for n in range(50)]
        await writer.durable(entries[-1].seq)
        assert len(_commit_threads()) == before + 1
        assert writer.commit_pid is None  # no process of its own
        await writer.aclose()
    assert len(_commit_threads()) == before
    assert writer.committed == 50
    assert _journal_bytes(path) == 0  # moved into the database at the thread's end
    assert_verifies(path)


async def test_kill_fails_what_is_queued_and_the_writer_lands_it_again(tmp_path: Path) -> None:
    """kill() stops the thread after its current write; the writer starts a new one and
    writes what was refused, nothing lost or doubled."""
    path = tmp_path / "l.db"
    writer = LedgerWriter.open(path, NodeKey.generate(), flush_interval=0.002, batch_max=5)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        worker = await _first_commit(writer)
        entries = []
        for n in range(1, 200):
            entries.append(await writer.append("alarm", {"n": n}, ts=T0 + n))
            if n == 50:
                worker.kill()
        async with asyncio.timeout(20):
            await writer.durable(entries[-1].seq)
        assert writer._commits is not worker  # a new thread took over
        await writer.aclose()
    assert writer.committed == 200
    assert_verifies(path)
    conn = connect(path, readonly=True)
    ns = [
        int(raw.split(b'"n":')[1].split(b"}")[0])
        for (raw,) in conn.execute("SELECT raw FROM entries WHERE type = 'alarm' ORDER BY seq")
    ]
    conn.close()
    assert ns == list(range(200))


async def test_a_batch_nobody_waits_for_is_answered_without_waking_the_loop(
    tmp_path: Path,
) -> None:
    """Readings staged alone make a batch without entries: the thread writes it (durable in
    the journal) but holds the answer instead of waking the event loop through its self-pipe;
    the writer takes it the next time it runs. A batch with an entry wakes the loop at once,
    and carries the held answer with it, in order; nothing is lost and the commit count and
    times still cover the held batch."""
    path = tmp_path / "l.db"
    writer = LedgerWriter.open(path, NodeKey.generate(), flush_interval=0.05)
    loop = asyncio.get_running_loop()
    wakes = 0
    process = loop._process_self_data  # type: ignore[attr-defined]  # the self-pipe's reader

    def counting(data: bytes) -> None:
        nonlocal wakes
        wakes += 1
        process(data)

    loop._process_self_data = counting  # type: ignore[attr-defined]
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        worker = await _first_commit(writer)
        commits, wakes = writer.commits, 0
        journal = _journal_bytes(path)
        writer.stage_readings([Reading("t", T0 + i, float(i)) for i in range(100)])
        async with asyncio.timeout(10):
            while _journal_bytes(path) == journal:
                await asyncio.sleep(0.01)  # the thread wrote it (durable)
        await asyncio.sleep(0.1)
        assert wakes == 0, "a batch nobody waits for woke the loop"
        assert worker._held  # its answer waits for the writer
        assert writer.commits == commits  # not taken yet
        entry = await writer.append("alarm", {"n": 1}, ts=T0 + 1)
        writer.commit_now()
        await writer.durable(entry.seq)
        assert wakes >= 1  # a batch with an entry: answered at once
        assert not worker._held
        assert writer.commits == commits + 2
        assert writer.commit_seconds_max < 5.0  # the held batch's time is the thread's answer
        await writer.aclose()
    loop._process_self_data = process  # type: ignore[attr-defined]
    conn = connect(path, readonly=True)
    assert [r.value for r in stored(conn)] == [float(i) for i in range(100)]
    conn.close()
    assert_verifies(path)


_DISK_FULL = """
import asyncio, logging, os, resource, sys
from edge.ledger.keys import NodeKey
from edge.ledger.writer import LedgerWriter
from edge.readings import Reading

path, n = sys.argv[1], int(sys.argv[2])
errors = []
class Catch(logging.Handler):
    def emit(self, record):
        errors.append(record.getMessage())
logging.getLogger("edge.ledger").addHandler(Catch(level=logging.ERROR))

async def main():
    writer = LedgerWriter.open(path, NodeKey.generate(), flush_interval=0.01, batch_max=25)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger")
        e = await writer.append("alarm", {"rule": "r", "note": "x" * 300, "i": 0}, ts=1.8e9)
        await writer.durable(e.seq)
        assert writer.commit_pid is None
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        wal = os.stat(path + "-wal").st_size
        resource.setrlimit(resource.RLIMIT_FSIZE, (wal, hard))  # the disk is full
        for i in range(1, n):
            await writer.append("alarm", {"rule": "r", "note": "x" * 300, "i": i}, ts=1.8e9 + i)
        async with asyncio.timeout(10):
            while not any("full" in m or "I/O error" in m for m in errors):
                await asyncio.sleep(0.02)
        stalled = writer.committed
        assert stalled < n, "the limit never bit"
        await asyncio.sleep(0.3)
        assert writer.committed == stalled, "commits went on while the disk was full"
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space freed
        async with asyncio.timeout(20):
            while writer.committed < n:
                await asyncio.sleep(0.02)
        await writer.aclose()
    print("stalled", stalled, "committed", writer.committed)

asyncio.run(main())
"""


def test_full_disk_stalls_the_commit_thread_then_everything_lands(tmp_path: Path) -> None:
    """A real file-size limit on the writing process (the node itself, with a thread): SIGXFSZ
    must not kill it; commits stall, then all land once the limit is lifted."""
    path = tmp_path / "ledger.db"
    n = 400
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_DISK_FULL), str(path), str(n)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"committed {n}" in done.stdout
    assert_verifies(path)
    conn = connect(path, readonly=True)
    bodies = [
        r[0] for r in conn.execute("SELECT raw FROM entries WHERE type = 'alarm' ORDER BY seq")
    ]
    conn.close()
    assert len(bodies) == n
    assert all(f'"i":{i},'.encode() in raw for i, raw in enumerate(bodies))
