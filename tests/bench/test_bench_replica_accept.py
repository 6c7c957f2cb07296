"""Sync, ledger side: how fast a node accepts a peer's feed (catch-up), beside local append.

Catch-up over MQTT (issue 13) must reach >= 40,000 entries/s and >= 0.6x the local durable
append rate; the network side's bench (sync-net) measures it end to end over a broker. This one
measures the ledger's share, in this run, on the same machine:

* local durable append: ``Ledger.append`` + ``commit`` in batches of 2,000 (build, chain, hash,
  sign, one transaction per batch: the rate the figure is compared with);
* ``Replica.accept`` of the same feed from another node's file, in the ranges ``read_range``
  serves (2,000 entries): every id recomputed, the chain, the Merkle root at every checkpoint
  over all entries held, one Ed25519 verification per checkpoint, one transaction per batch,
  WAL synchronous=FULL;
* read_range + accept together (what a node answering a range request and the one catching up
  spend, minus the network);
* accept of a feed checkpointed every 20 entries (a gateway committing alarms one by one): the
  signature checks then weigh.

Medians of three runs; wall and CPU seconds (the machine is shared).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from ledger_job import T0, N, body, lots, ts

from edge.ledger.keys import NodeKey
from edge.ledger.replica import Replica
from edge.ledger.store import Ledger, connect
from edge.ledger.trust import Trusted, TrustList
from edge.ledger.verify import verify_db

BATCH = 2_000
TARGET = 40_000
TARGET_RATIO = 0.6
RUNS = 3


def append_feed(path: Path, key: NodeKey, batch: int) -> tuple[float, float]:
    """Entries/s (wall, CPU) appending N entries durably, committing every ``batch``."""
    with Ledger.open(path, key) as ledger:
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(N):
            ledger.append("alarm", body(i), ts=ts(i), lots=lots(i))
            if (i + 1) % batch == 0:
                ledger.commit(now=ts(i))
        ledger.commit(now=ts(N))
        return N / (time.perf_counter() - wall), N / (time.process_time() - cpu)


def ranges(source: Replica, feed: str, size: int = BATCH) -> list[tuple[int, list[bytes]]]:
    out = []
    start = 0
    while raws := source.read_range(feed, start, max_entries=size, max_bytes=16 << 20):
        out.append((start, raws))
        start += len(raws)
    return out


def node_start(path: Path, key: NodeKey) -> None:
    """The receiving node's file as the runtime leaves it: its own feed started."""
    with Ledger.open(path, key) as ledger:
        ledger.append("node.start", {"node_id": "hub"}, ts=T0)
        ledger.commit(now=T0)


def accept_all(
    dst: Path, key: NodeKey, trusted: TrustList, feed: str, batches: list[tuple[int, list[bytes]]]
) -> tuple[float, float, int]:
    node_start(dst, key)
    replica = Replica.open(dst, key, trusted, take_lock=True)
    total = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for start, raws in batches:
        result = replica.accept(feed, start, raws, now=T0)
        assert result.stored == len(raws), result
        total += result.stored
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    replica.close()
    return total / wall, total / cpu, total


def read_and_accept(
    src: Replica, dst: Path, key: NodeKey, trusted: TrustList, feed: str
) -> tuple[float, float]:
    node_start(dst, key)
    replica = Replica.open(dst, key, trusted, take_lock=True)
    total = 0
    wall, cpu = time.perf_counter(), time.process_time()
    while raws := src.read_range(feed, total, max_entries=BATCH, max_bytes=4 << 20):
        total += replica.accept(feed, total, raws, now=T0).stored
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    replica.close()
    return total / wall, total / cpu


def test_bench_replica_accept(tmp_path: Path) -> None:
    gateway, hub = NodeKey.generate(), NodeKey.generate()
    trusted = TrustList((Trusted("gateway", gateway.feed),), Trusted("hub", hub.feed))
    appends, accepts, both = [], [], []
    held = 0
    for run in range(RUNS):
        src = tmp_path / f"gw{run}.db"
        appends.append(append_feed(src, gateway, BATCH))
        with Replica.open(src, gateway, TrustList(), take_lock=True) as source:
            batches = ranges(source, gateway.feed)
            wall, cpu, held = accept_all(
                tmp_path / f"hub{run}.db", hub, trusted, gateway.feed, batches
            )
            accepts.append((wall, cpu))
            both.append(
                read_and_accept(source, tmp_path / f"hub2-{run}.db", hub, trusted, gateway.feed)
            )
    conn = connect(tmp_path / "hub0.db", readonly=True)
    report = verify_db(conn, trusted=trusted.names)
    conn.close()
    assert report.ok, report.problems[:3]
    # consecutive batches stored together (as sync's apply queue groups them): fewer fsyncs
    with Replica.open(tmp_path / "gw0.db", gateway, TrustList(), take_lock=True) as source:
        grouped = accept_all(
            tmp_path / "hub-grouped.db",
            hub,
            trusted,
            gateway.feed,
            ranges(source, gateway.feed, 8_000),
        )
    # a feed checkpointed every 20 entries: one signature check per 21 entries
    small = tmp_path / "small.db"
    append_feed(small, gateway, 20)
    with Replica.open(small, gateway, TrustList(), take_lock=True) as source:
        small_rate = accept_all(
            tmp_path / "hub-small.db", hub, trusted, gateway.feed, ranges(source, gateway.feed)
        )
    append_wall, append_cpu = statistics.median(appends)
    accept_wall, accept_cpu = statistics.median(accepts)
    both_wall, both_cpu = statistics.median(both)
    print()
    print(
        f"local durable append: {append_wall:,.0f} entries/s wall ({append_cpu:,.0f}/s per "
        f"CPU-second), {N:,} entries, batches of {BATCH}, medians of {RUNS} runs"
    )
    print(
        f"replica accept: {accept_wall:,.0f} entries/s wall ({accept_cpu:,.0f}/s per CPU-second) "
        f"over {held:,} entries in ranges of {BATCH} "
        f"(runs {', '.join(f'{w:,.0f}' for w, _ in accepts)})"
    )
    print(
        f"  accept / target {TARGET:,} = {accept_wall / TARGET:.2f}; "
        f"accept / local append = {accept_wall / append_wall:.2f} (limit {TARGET_RATIO}); "
        f"per CPU-second {accept_cpu / append_cpu:.2f} (wall time swings with the machine's load)"
    )
    print(
        f"read_range + accept: {both_wall:,.0f} entries/s wall ({both_cpu:,.0f}/s per CPU-second); "
        f"/ target {TARGET:,} = {both_wall / TARGET:.2f}"
    )
    print(
        f"accept of groups of ~8,000 entries (4 writer batches, one transaction): "
        f"{grouped[0]:,.0f} entries/s wall ({grouped[1]:,.0f}/s per CPU-second); "
        f"/ target {TARGET:,} = {grouped[0] / TARGET:.2f}"
    )
    print(
        f"accept, checkpoint every 20 entries: {small_rate[0]:,.0f} entries/s wall "
        f"({small_rate[1]:,.0f}/s per CPU-second): one Ed25519 check per 21 entries"
    )
    assert held > N  # every entry, and its checkpoints
