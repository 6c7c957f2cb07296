"""Sync benchmark: catch-up and live replication over a loopback Mosquitto, beside local append.

All figures are measured in this run, on this machine (2 cores shared by the node processes,
the broker and the benchmark):

- the **local durable append rate**: LedgerWriter appending 100,000 alarm entries in batches of
  2,000 (WAL, synchronous=FULL, one Ed25519 checkpoint per batch), as the ledger bench does;
- **catch-up**: node B (this process, an empty database) fetches those 100,000 entries from node A
  (a separate process serving the database) through the broker: entries/s from B's first request
  to the last entry durable on B, against 0.6 x the local rate and the issue's 40,000/s;
- **bytes on the wire**: the payloads of the entries messages B received, against the entries'
  canonical size (limit 0.5);
- **live replication**: A appends 1,000 entries/s for 10 s while B replicates; per entry, the
  time from durable on A (the writer's durable callback) to durable on B (B stored the batch that
  holds it): p50, p99, max (limit p99 < 100 ms). A and B are separate processes on one clock.
  A runs as a node with ``[sync]`` does: the commit journal on, its sync service following the
  writer (entries pushed from its durable batches, signed every few entries).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from edge.config import SyncConfig
from edge.ledger.keys import create_key_file
from edge.ledger.store import connect
from edge.ledger.trust import TRUST_FILE, add_trusted, trust_for
from edge.ledger.writer import LedgerWriter
from edge.sync.service import SyncService

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "helpers"))
from sync_rig import MqttBroker

N = 100_000
BATCH = 2_000
T0 = 1_795_000_000.0
RATE = 1_000  # live entries per second
LIVE_SECONDS = 10


def body(i: int) -> dict[str, object]:
    """A realistic alarm transition (the ledger bench's)."""
    return {
        "rule": "cold-chain-temp", "kind": "limit", "point": "tunnel.temp", "event": "raise",
        "from": "normal", "to": "active", "value": f"{8 + (i % 50) / 100}", "limit": "8.0",
        "unit": "degC", "severity": "high", "message": "temperature above 8.0 degC",
    }  # fmt: skip


async def local_append(db: Path, key_path: Path) -> float:
    from edge.ledger.keys import load_key

    writer = LedgerWriter.open(db, load_key(key_path), flush_interval=0.05, batch_max=BATCH,
                               queue_size=4 * BATCH)  # fmt: skip
    wall = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        for i in range(N):
            await writer.append("alarm", body(i), ts=T0 + i * 1e-4,
                                lots=[f"LOT-{i // 500}"] if i % 2 else [])  # fmt: skip
            if i % 256 == 0:
                await asyncio.sleep(0)
        await writer.aclose()
    return N / (time.perf_counter() - wall)


SERVE = """
import asyncio, sys
from pathlib import Path
from edge.config import SyncConfig
from edge.ledger.keys import load_key
from edge.ledger.trust import trust_for
from edge.sync.service import SyncService
data = Path(sys.argv[1])
svc = SyncService(SyncConfig(port=int(sys.argv[2]), announce_interval=1.0), "a",
                  load_key(data / "node.key"), data / "ledger.db",
                  trust_for(data, data / "node.key", "a"), take_lock=True)
asyncio.run(svc.run())
"""

LIVE = """
import asyncio, json, sys, time
from pathlib import Path
from edge.config import SyncConfig
from edge.ledger.keys import load_key
from edge.ledger.trust import trust_for
from edge.ledger.writer import LedgerWriter
from edge.sync.service import SyncService
data, port, rate, seconds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
key = load_key(data / "node.key")

async def main():
    # as `edge run` with [sync]: the commit journal on (the default), the service following the
    # writer (pushes from its durable batches; it signs every few entries while connected)
    writer = LedgerWriter.open(data / "ledger.db", key, flush_interval=0.01, batch_max=2000)
    svc = SyncService(SyncConfig(port=port, announce_interval=1.0), "a", key, data / "ledger.db",
                      trust_for(data, data / "node.key", "a"), writer=writer)
    durable = {}
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run())
        sync = tg.create_task(svc.run())
        await svc.ready.wait()
        await asyncio.sleep(1.0)
        print("ready", flush=True)
        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < seconds:
            due = int((time.monotonic() - t0) * rate)
            while i < due:
                e = await writer.append("alarm", {"i": str(i), "rule": "r", "value": "8.1"},
                                        ts=time.time())
                writer.on_durable(e.seq, lambda s=e.seq: durable.__setitem__(s, time.time()))
                i += 1
            await asyncio.sleep(0.005)
        await asyncio.sleep(2.0)
        sync.cancel()
        await writer.aclose()
    (data / "durable.json").write_text(json.dumps(durable))

asyncio.run(main())
"""


def node_dirs(tmp: Path) -> tuple[Path, Path]:
    a, b = tmp / "a", tmp / "b"
    for d in (a, b):
        d.mkdir()
        create_key_file(d / "node.key")
    add_trusted(b / TRUST_FILE, str(a / "node.key.pub"), "a")
    return a, b


def canonical_size(db: Path, feed: str) -> tuple[int, int]:
    conn = connect(db, readonly=True)
    n, size = conn.execute(
        "SELECT count(*), sum(length(raw)) FROM entries WHERE feed = ?", (feed,)
    ).fetchone()
    conn.close()
    return int(n), int(size)


async def receive(
    b: Path, port: int, feed: str, done: Callable[[int], bool], within: float
) -> dict[str, float]:
    """Run node B until ``done(entries of feed stored)``; when things happened."""
    from edge.ledger.keys import load_key

    key = load_key(b / "node.key")
    svc = SyncService(SyncConfig(port=port, announce_interval=1.0), "b", key, b / "ledger.db",
                      trust_for(b, b / "node.key", "b"), take_lock=True)  # fmt: skip
    stored: dict[int, float] = {}
    first: list[float] = []

    def on_stored(f: str, end: int) -> None:
        if f == feed:
            stored[end] = time.time()

    svc.on_stored = on_stored
    task = asyncio.create_task(svc.run())
    try:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if not first and svc.stats.counters["requests_sent"]:
                first.append(time.time())
            if done(max(stored, default=0)):
                break
            await asyncio.sleep(0.002)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return {
        "first_request": first[0] if first else float("nan"),
        "done": max(stored.values()) if stored else float("nan"),
        "end": float(max(stored) if stored else 0),
        "entries_bytes_in": float(svc.stats.counters["entries_bytes_in"]),
        **{f"end:{k}": v for k, v in stored.items()},
    }


def test_bench_sync(tmp_path: Path) -> None:
    broker = MqttBroker(tmp_path / "broker")
    broker.start()
    try:
        a, b = node_dirs(tmp_path)
        feed = (a / "node.key.pub").read_text().strip()
        local = asyncio.run(local_append(a / "ledger.db", a / "node.key"))
        n, canonical = canonical_size(a / "ledger.db", feed)
        assert n > N  # the entries and their checkpoints
        server = subprocess.Popen([sys.executable, "-c", SERVE, str(a), str(broker.port)])
        try:
            got = asyncio.run(receive(b, broker.port, feed, lambda end: end >= n, within=120))
        finally:
            server.terminate()
            server.wait(timeout=10)
        assert got["end"] == n, got["end"]
        held, _ = canonical_size(b / "ledger.db", feed)
        assert held == n
        seconds = got["done"] - got["first_request"]
        catchup = n / seconds
        wire = got["entries_bytes_in"] / canonical
        live = live_latencies(tmp_path / "live", broker.port)
    finally:
        broker.stop()
    p50, p99, worst = live
    print()
    print(f"local durable append (LedgerWriter, batches of {BATCH}): {local:,.0f} entries/s")
    print(
        f"catch-up of {n:,} entries (with checkpoints) A -> broker -> B: {catchup:,.0f} entries/s "
        f"in {seconds:.2f} s; / (0.6 x local = {0.6 * local:,.0f}) = {catchup / (0.6 * local):.2f}; "
        f"/ 40,000 = {catchup / 40_000:.2f}"
    )
    print(
        f"bytes on the wire: {got['entries_bytes_in']:,.0f} of {canonical:,} canonical bytes = "
        f"{wire:.3f} / limit 0.5 = {wire / 0.5:.2f}"
    )
    print(
        f"live replication at {RATE:,} entries/s for {LIVE_SECONDS} s, durable on A -> durable on B: "
        f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms / limit 100 ms = {p99 / 0.1:.2f}, "
        f"max {worst * 1000:.1f} ms"
    )
    assert wire <= 0.5


def live_latencies(root: Path, port: int) -> tuple[float, float, float]:
    root.mkdir()
    a, b = node_dirs(root)
    feed = (a / "node.key.pub").read_text().strip()
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(LIVE), str(a), str(port), str(RATE),
         str(LIVE_SECONDS)],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    got = asyncio.run(
        receive(b, port, feed, lambda _: proc.poll() is not None, within=LIVE_SECONDS + 30)
    )
    proc.wait(timeout=60)
    proc.stdout.close()
    durable = {int(k): v for k, v in json.loads((a / "durable.json").read_text()).items()}
    ends = sorted((int(k[4:]), v) for k, v in got.items() if k.startswith("end:"))
    lat = []
    j = 0
    for seq in sorted(durable):
        while j < len(ends) and ends[j][0] <= seq:
            j += 1
        if j == len(ends):
            break
        lat.append(ends[j][1] - durable[seq])
    assert len(lat) >= len(durable) * 0.99, (len(lat), len(durable))
    assert len(durable) >= RATE * LIVE_SECONDS * 0.9  # A kept the rate
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.99)], lat[-1]
