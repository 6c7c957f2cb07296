"""The disk budget: a real node on the demo line fills a tiny budget; the oldest raw blocks go,
each prune on the ledger, the ``storage:readings`` alarm raised; entries and acquisition go on.
And a full file system (a real size-limited tmpfs) leaves a ledger that verifies."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import orjson
import pytest
from stored_readings import stored

from edge.config import load_config
from edge.firmware_sim import Simulator, load_scenario
from edge.ledger import connect, verify_db
from edge.runtime import Node

pytestmark = pytest.mark.integration


def _demo(folder: Path, ledger: str) -> Path:
    for name in ("node.toml", "tunnel.yaml"):
        with resources.as_file(resources.files("edge.demo") / name) as src:
            shutil.copyfile(src, folder / name)
    toml = folder / "node.toml"
    toml.write_text(toml.read_text().replace("readings_block = 200", ledger))
    return toml


async def _run(toml: Path, sim_dir: Path, seconds: float) -> None:
    async with Simulator(load_scenario("demo"), sim_dir, seed=1):
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        await Node(load_config(toml)).run(stop)


def _entries(db: Path) -> list[dict[str, object]]:
    conn = sqlite3.connect(db)
    try:
        return [
            orjson.loads(raw) for (raw,) in conn.execute("SELECT raw FROM entries ORDER BY seq")
        ]
    finally:
        conn.close()


def test_a_full_budget_prunes_the_oldest_blocks_on_record_and_raises_the_alarm(
    tmp_path: Path,
) -> None:
    toml = _demo(tmp_path, "readings_block = 12\nreadings_max_bytes = 600")
    asyncio.run(_run(toml, tmp_path, seconds=9.0))
    db = tmp_path / "data" / "ledger.db"
    entries = _entries(db)
    digests = [e["body"]["block"] for e in entries if e["type"] == "readings.digest"]  # type: ignore[index]
    prunes = [e["body"] for e in entries if e["type"] == "readings.prune"]
    alarms = [
        e["body"]
        for e in entries
        if e["type"] == "alarm" and e["body"]["rule"] == "storage:readings"  # type: ignore[index]
    ]
    assert prunes, "a 600-byte budget over 9 s pruned nothing"
    assert {(p["reason"], p["max_bytes"]) for p in prunes} == {("budget", 600)}  # type: ignore[index]
    pruned = {b for p in prunes for lo, hi in p["blocks"] for b in range(lo, hi + 1)}  # type: ignore[index]
    # the oldest go first: every pruned block is older than every kept one
    kept = sorted(set(digests) - pruned)
    assert kept, "the newest readings must still be there"
    assert max(pruned) < min(kept)
    assert {r.block for r in stored(db)} - {max(digests) + 1} == set(kept)
    # what is kept fits the budget, give or take the block closed since the last check
    conn = sqlite3.connect(db)
    (kept_bytes,) = conn.execute(
        "SELECT sum(bytes) FROM reading_blocks WHERE pruned = 0"
    ).fetchone()
    conn.close()
    assert kept_bytes <= 600 + 2 * 200
    # the alarm: raised once, with what was pruned; acquisition went on after the first prune
    assert [a["event"] for a in alarms][:1] == ["activated"], alarms  # type: ignore[index]
    assert alarms[0]["severity"] == "medium"  # type: ignore[index]
    assert "disk budget reached" in alarms[0]["message"]  # type: ignore[index,operator]
    first_prune = next(i for i, e in enumerate(entries) if e["type"] == "readings.prune")
    later = [e for e in entries[first_prune:] if e["type"] == "readings.digest"]
    assert len(later) >= 3, "acquisition stopped after the budget prune"
    assert entries[-1]["type"] == "checkpoint" or entries[-2]["type"] == "node.stop"
    ro = connect(db, readonly=True)
    try:
        report = verify_db(ro)
        assert report.ok, report.problems
        assert report.feeds[0].pruned == {"budget": len(pruned)}
    finally:
        ro.close()


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs mounted for the test (root only), unmounted after."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.fail("the full-disk test mounts a size-limited tmpfs: run it as root")
    mnt = tmp_path / f"fs-{uuid.uuid4().hex[:8]}"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path: Path) -> None:
    """Fill the file system holding ``path`` to the last byte (unbuffered writes)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 8, 1):
            try:
                while os.write(fd, b"\0" * size) == size:
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)
    assert shutil.disk_usage(path.parent).free < 4096


def test_a_full_disk_keeps_the_ledger_whole_and_says_so(
    tmp_path: Path, small_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The ledger's file system fills up while the node runs: commits fail loudly and are
    retried, nothing committed is damaged; once space is back the node catches up, and
    the ledger verifies."""
    toml = _demo(tmp_path, "readings_block = 12")
    text = toml.read_text().replace('data_dir = "data"', f'data_dir = "{small_fs}"')
    assert text != toml.read_text()
    toml.write_text(text)
    filler = small_fs / "filler"

    async def scenario() -> None:
        async with Simulator(load_scenario("demo"), tmp_path, seed=1):
            stop = asyncio.Event()
            node = asyncio.create_task(Node(load_config(toml)).run(stop))
            await asyncio.sleep(2.0)
            _fill(filler)
            await asyncio.sleep(4.0)  # commits fail meanwhile
            assert not node.done(), "the node stopped on a full disk"
            filler.unlink()
            await asyncio.sleep(3.0)  # space is back: it catches up
            stop.set()
            await node

    caplog.set_level(logging.ERROR)
    asyncio.run(scenario())
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("full" in m.lower() for m in errors), errors  # said, not silent
    db = small_fs / "ledger.db"
    entries = _entries(db)
    assert entries[-2]["type"] == "node.stop" or entries[-1]["type"] == "node.stop"
    ro = connect(db, readonly=True)
    try:
        report = verify_db(ro)
        assert report.ok, report.problems
    finally:
        ro.close()
    # readings kept flowing across the full spell: they were held and committed after it
    stamps = sorted(r.epoch for r in stored(db))
    assert stamps
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert max(gaps) < 2.0, max(gaps)
