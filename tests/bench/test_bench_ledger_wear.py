"""Ledger benchmark: SD-card wear, bytes written to the storage device per committed entry.

The bottling line at its real pace: a few entries a second (alarm transitions, acknowledgements,
lot starts and ends), each in a commit of its own (an alarm is committed at once, not held for
the group-commit timer), written the way the node writes them: :class:`LedgerWriter` building
and signing batches in this process, its commit thread appending each to the commit journal
(``fdatasync``) and moving the journal into SQLite (WAL, ``synchronous=FULL``) in bulk, into a ledger that already holds history (a month-old gateway, not an
empty file whose B-trees are one page deep).

Two measures, printed beside the entries' own size and the limit:

* ``write_bytes`` from ``/proc/<pid>/io`` of the process that writes (this one: the default
  commit worker is a thread of it; a commit process's too, if one is running): what the kernel sent, or will send, to the block device on their behalf. The
  kernel counts it when a page-cache page is dirtied, in 4 KiB pages, so a 1 KiB WAL frame
  that dirties a page counts 4 KiB: the device writes whole pages too.
* the growth of the database and its WAL over the run (the checkpoint threshold is above what
  the run writes, so the WAL only grows): the bytes SQLite itself wrote, a cross-check.

With the commit journal (the node's default) entries wait unsigned in the journal and move into
SQLite under one checkpoint ``journal_age`` (120 s) after the first of them: that variant runs
one such cycle, from a journal just moved to the writer's own next move, and divides by the
entries that move put into the database (``_line``). A node with ``[sync]`` keeps the journal
too, but while peers listen its writer signs every few entries (pushed entries need a
checkpoint), and the journal moves by age alone: the ``sync`` variant runs that, from a journal
just moved to the commit process's next move. A second bench measures what raw readings
staged every ``flush_interval`` write at the line's pace (no limit of their own).

The limit (issue 12): at most 8 KiB per committed entry.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge.ledger.journal import journal_path
from edge.ledger.keys import NodeKey
from edge.ledger.store import Ledger, connect
from edge.ledger.verify import verify_db
from edge.ledger.writer import LedgerWriter

LIMIT = 8 * 1024  # bytes per committed entry
HISTORY = 50_000  # entries already in the ledger
ENTRIES = 150  # committed one by one at the line's pace (SQLite commits)
PACE = 0.2  # seconds between entries: five a second, the busy end of the bottling line
T0 = 1_795_000_000.0


def _alarm(i: int, event: str) -> dict[str, object]:
    return {
        "rule": f"fill_weight_low_{i % 3}",
        "kind": "limit",
        "point": "fill_weight",
        "event": event,
        "from": "normal" if event == "activated" else "active_unack",
        "to": "active_unack" if event == "activated" else "rtn_unack",
        "value": f"{498 + (i % 50) / 100}",
        "limit": "499.0",
        "unit": "g",
        "severity": "high",
        "message": "fill weight below 499 g",
    }


def _entry(i: int) -> tuple[str, dict[str, object], list[str], str]:
    """The line's mix: mostly alarm transitions, an acknowledgement, a lot change now and then."""
    lot = f"L-{i // 30:04d}"
    match i % 30:
        case 0:
            return "lot.start", {"lot": lot, "station": "filler-1"}, [lot], ""
        case 29:
            end = {"lot": lot, "station": "filler-1", "aggregates": {}, "checks": []}
            return "lot.end", end, [lot], ""
        case n if n % 5 == 4:
            ack = {**_alarm(i, "acknowledged"), "comment": "nozzle cleaned"}
            return "alarm.ack", ack, [lot], "alice"
        case n:
            return "alarm", _alarm(i, "activated" if n % 2 else "cleared"), [lot], ""


def _write_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/io") as io:
        for line in io:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/io has no write_bytes")


def _commit_processes(path: Path) -> list[int]:
    """This process's children running the commit process on ``path``."""
    pids: list[int] = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as f:
            for pid in f.read().split():
                with open(f"/proc/{pid}/cmdline", "rb") as cmd:
                    args = cmd.read().split(b"\0")
                if b"edge.ledger.commit_process" in args and os.fsencode(path) in args:
                    pids.append(int(pid))
    return pids


def _history(path: Path, key: NodeKey) -> None:
    """A ledger with HISTORY entries, written in big batches (how it got there does not count)."""
    with Ledger.open(path, key) as led:
        for i in range(HISTORY):
            type_, body, lots, actor = _entry(i)
            led.append(type_, body, ts=T0 + i, lots=lots, actor=actor)
            if i % 2000 == 1999:
                led.commit(now=T0 + i)
        led.commit(now=T0 + HISTORY)
        led.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _files(path: Path) -> int:
    return sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if os.path.exists(p))


async def _line(path: Path, key: NodeKey, journal: bool, peers: bool = False) -> Run:
    """Run the line: ``ENTRIES`` entries, or with the journal until its first move after them.

    With the commit journal, entries wait unsigned in the journal and move into SQLite with the
    checkpoint the writer signs ``journal_age`` after the first of them: the run is one such
    cycle, from a journal just moved (after a sync) to the writer's own next move, and counts
    the entries that move took into the database. Entries appended after the checkpoint was
    cut (still in the journal at the end) count in the bytes but not in the entries.

    With ``peers`` (a sync node connected: :meth:`LedgerWriter.sign_for_peers`) the writer signs
    every few entries and the commit process moves the journal by its age: the run ends when
    the journal file is truncated by that move.
    """
    writer = LedgerWriter.open(path, key, **({} if journal else {"journal_max": 0}))
    writer.sign_for_peers(peers)
    eqj = journal_path(path)
    entry_bytes = 0
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        # the commit process starts with the first batch: warm it up, then take the baseline
        await writer.append("node.start", {"node_id": "bench"}, ts=T0 + HISTORY + 1)
        while writer.committed < 1:
            await asyncio.sleep(0.01)
        await writer.sync()  # signed and moved: the journal is empty
        os.sync()  # nothing of the history left dirty to be counted against the run
        # this process (the default commit worker is a thread of it), and a commit process
        # if one writes
        pids = [os.getpid(), *_commit_processes(path)]
        before = sum(_write_bytes(p) for p in pids)
        size_before = _files(path)
        stored_before = _count(path, "checkpoint", negate=True)
        started = time.perf_counter()
        base = writer.committed
        commits_before = writer.entry_commits
        signed_before = writer.signed
        i = 0
        grown = 0  # the journal's largest size seen in the run (peers: its move truncates it)

        def running() -> bool:
            nonlocal grown
            if not journal:
                return i < ENTRIES
            if not peers:
                return writer.signed == signed_before
            size = os.path.getsize(eqj) if eqj.exists() else 0
            if size < grown:
                return False
            grown = size
            return True

        while running():
            type_, body, lots, actor = _entry(HISTORY + i)
            entry = await writer.append(
                type_, body, ts=T0 + HISTORY + 2 + i, lots=lots, actor=actor
            )
            entry_bytes += len(entry.raw)
            i += 1
            await asyncio.sleep(PACE)
        while writer.committed < base + i:
            await asyncio.sleep(0.01)
        seconds = time.perf_counter() - started
        commits = writer.entry_commits - commits_before
        commit_bytes = sum(_write_bytes(p) for p in pids) - before
        growth = _files(path) - size_before
        entries = _count(path, "checkpoint", negate=True) - stored_before
        # The pages the run changed are copied from the WAL into the database once per WAL
        # checkpoint: count that copy too (here, in this process, so it is counted once).
        conn = connect(path)
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        conn.close()
        written = sum(_write_bytes(p) for p in pids) - before
        await writer.aclose()
    return Run(written, commit_bytes, growth, entry_bytes // i, seconds, commits, entries, i)


@dataclass(frozen=True, slots=True)
class Run:
    """What a run measured."""

    written: int  #: write_bytes, WAL checkpoint included
    commit_bytes: int  #: write_bytes of the commits alone (journal appends and moves)
    growth: int  #: database + WAL growth
    entry_size: int  #: an entry's own bytes, on average
    seconds: float
    commits: int  #: commits carrying the run's entries
    entries: int  #: the run's entries that reached the database
    appended: int  #: the run's entries appended


@pytest.mark.timeout(600)  # one journal cycle is journal_age (120 s) after the history
@pytest.mark.parametrize(
    ("journal", "peers"),
    [(False, False), (True, False), (True, True)],
    ids=["sqlite", "commit_journal", "sync_node"],
)
def test_bench_ledger_wear(tmp_path: Path, journal: bool, peers: bool) -> None:
    key = NodeKey.generate()
    path = tmp_path / "ledger.db"
    _history(path, key)
    checkpoints_before = _count(path, "checkpoint")
    run = asyncio.run(_line(path, key, journal, peers))
    entries = run.entries
    checkpoints = _count(path, "checkpoint") - checkpoints_before
    conn = connect(path, readonly=True)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    assert verify_db(conn).ok
    conn.close()
    per_entry = run.written / entries
    print()
    what = "journal_max = 0: SQLite commits"
    if journal:
        what = (
            "commit journal, a sync node's signing (peers listening)" if peers else "commit journal"
        )
    print(
        f"ledger wear ({what}): "
        f"{per_entry:,.0f} bytes written per committed entry "
        f"(/proc/<pid>/io write_bytes of the node, its commit thread included), "
        f"entry itself {run.entry_size:,} bytes; limit {LIMIT:,}: "
        f"ratio {per_entry / LIMIT:.2f} ({'met' if per_entry <= LIMIT else 'NOT met'})"
    )
    print(
        f"  of which commits (journal appends and their moves into SQLite) "
        f"{run.commit_bytes / entries:,.0f}, the WAL checkpoint "
        f"copying the run's pages into the database {(run.written - run.commit_bytes) / entries:,.0f}"
    )
    print(
        f"  cross-check: database + WAL grew {run.growth / entries:,.0f} bytes per entry; "
        f"{entries} entries in the database ({run.appended} appended) in {run.commits} commits "
        f"over {run.seconds:.0f} s ({run.appended / run.seconds:.1f} entries/s), "
        f"{page_size}-byte pages, ledger holding {HISTORY:,} entries before; "
        f"{checkpoints} checkpoints signed them"
    )
    assert entries >= 100, "too few entries for a figure"
    assert run.commits >= run.appended * 0.9, "entries were batched: not one commit per entry"


def _count(path: Path, type_: str, *, negate: bool = False) -> int:
    conn = connect(path, readonly=True)
    try:
        op = "!=" if negate else "="
        return int(
            conn.execute(f"SELECT count(*) FROM entries WHERE type {op} ?", (type_,)).fetchone()[0]
        )
    finally:
        conn.close()


#: Raw readings at the bottling line's pace: five poll batches a second of three readings each
#: (examples/node.toml polls its devices every 0.5-2 s), and the engine state (about 1 KB)
#: stored with every batch, as the node does while readings move lot sums and SPC counters.
POLLS = 5
READINGS_PER_POLL = 3
STATE = b'{"alarms":' + b"x" * 1000 + b"}"
READINGS_SECONDS = 60.0


async def _readings_line(path: Path, key: NodeKey, flush: float) -> tuple[int, int, float]:
    """Stage readings and the state at the line's pace; (bytes written, readings, seconds)."""
    from edge.readings import Reading

    writer = LedgerWriter.open(path, key, flush_interval=flush)
    writer.ledger.track_state("rules", lambda: STATE)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        await writer.append("node.start", {"node_id": "bench"}, ts=T0 + HISTORY + 1)
        while writer.committed < 1:
            await asyncio.sleep(0.01)
        await writer.sync()
        os.sync()
        # this process (the default commit worker is a thread of it), and a commit process
        # if one writes
        pids = [os.getpid(), *_commit_processes(path)]
        before = sum(_write_bytes(p) for p in pids)
        started = time.perf_counter()
        n = 0
        while time.perf_counter() - started < READINGS_SECONDS:
            ts = T0 + HISTORY + 2 + n / (POLLS * READINGS_PER_POLL)
            batch = [Reading(f"p{i}", ts, 500.0 + i) for i in range(READINGS_PER_POLL)]
            writer.stage_readings(batch)
            writer.state_changed()
            n += len(batch)
            await asyncio.sleep(1 / POLLS)
        await writer.sync()  # what is staged reaches the database, counted
        seconds = time.perf_counter() - started
        conn = connect(path)
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        conn.close()
        written = sum(_write_bytes(p) for p in pids) - before
        await writer.aclose()
    return written, n, seconds


@pytest.mark.timeout(300)
@pytest.mark.parametrize("flush", [0.05, 1.0], ids=["flush_50ms", "flush_1s"])
def test_bench_readings_wear(tmp_path: Path, flush: float) -> None:
    """Bytes written for raw readings staged every flush interval (no limit of their own)."""
    key = NodeKey.generate()
    path = tmp_path / "ledger.db"
    _history(path, key)
    written, readings, seconds = asyncio.run(_readings_line(path, key, flush))
    per_second = written / seconds
    print()
    print(
        f"readings wear (flush_interval {flush * 1000:.0f} ms, commit journal): "
        f"{per_second:,.0f} bytes written per second, {written / readings:,.0f} per reading "
        f"({POLLS} polls/s of {READINGS_PER_POLL} readings and a {len(STATE):,}-byte engine "
        f"state; {per_second * 86400 / 1e9:.2f} GB a day); for comparison the line's five "
        f"alarms a second at the 8 KiB limit: {5 * LIMIT:,} bytes per second"
    )
    assert readings > 0
