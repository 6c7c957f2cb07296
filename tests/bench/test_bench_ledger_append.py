"""Ledger benchmark: durable append with group commit, beside the SQLite batch-insert limit.

Both figures are measured in this run, on the same schema (entries + entry_lots with every
contract index), the same batch size and the same durability (WAL, synchronous=FULL, one COMMIT
per batch): the limit inserts pre-built rows; the figure goes through LedgerWriter, the way the
runtime appends (canonical JSON, SHA-256, chain, Merkle frontier, one Ed25519 checkpoint per
batch, the batches written by the commit worker: the default thread, and the child process
``[ledger] commit_worker = "process"`` chooses). Wall time and CPU time (this process and the
commit process) are both printed, medians of three runs: the machine is shared, and one run can
be a third off.
"""

from __future__ import annotations

import asyncio
import hashlib
import resource
import statistics
import time
from pathlib import Path

import pytest
from ledger_job import N, body, lots, ts

from edge.ledger.keys import NodeKey
from edge.ledger.store import connect
from edge.ledger.verify import verify_db
from edge.ledger.writer import LedgerWriter

BATCH = 2_000
TARGET = 40_000
STATED_LIMIT = 75_000  # issue 6: "SQLite batch-insert limit here ~75,000 rows/s"
RUNS = 3


def sqlite_limit(path: Path, feed: str) -> tuple[float, float]:
    """Rows/s inserting pre-built entries (+ their lot rows) in batches, durably."""
    import orjson

    rows = []
    lot_rows = []
    for i in range(N):
        raw = orjson.dumps({"body": body(i), "i": i, "feed": feed})
        rows.append(
            (
                feed,
                i,
                hashlib.sha256(raw).hexdigest(),
                None,
                f"2026-11-18T11:06:40.{i:06d}Z",
                "alarm",
                "",
                raw,
            )
        )
        lot_rows.extend((feed, i, lot) for lot in lots(i))
    conn = connect(path)
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, N, BATCH):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO entries(feed, seq, id, prev, ts, type, actor, raw) VALUES (?,?,?,?,?,?,?,?)",
            rows[start : start + BATCH],
        )
        conn.executemany(
            "INSERT INTO entry_lots(feed, seq, lot) VALUES (?,?,?)",
            [r for r in lot_rows if start <= r[1] < start + BATCH],
        )
        conn.execute("COMMIT")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    conn.close()
    return N / wall, N / cpu


async def durable_append(
    path: Path, key: NodeKey, worker: str = "thread"
) -> tuple[float, float, int]:
    writer = LedgerWriter.open(
        path, key, flush_interval=0.05, batch_max=BATCH, queue_size=4 * BATCH, commit_worker=worker
    )
    wall, cpu = time.perf_counter(), _cpu()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(writer.run(), name="ledger-writer")
        for i in range(N):
            await writer.append("alarm", body(i), ts=ts(i), lots=lots(i))
            if i % 256 == 0:
                await asyncio.sleep(0)  # producers in the runtime yield between events
        await writer.aclose()
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    return N / wall, N / cpu, writer.committed


def _cpu() -> float:
    """CPU seconds of this process and of its children that have exited (the commit process)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_bench_durable_append(tmp_path: Path, worker: str) -> None:
    key = NodeKey.generate()
    limits: list[tuple[float, float]] = []
    rates: list[tuple[float, float]] = []
    for run in range(RUNS):  # this machine is shared: the median of a few runs, spread shown
        limits.append(sqlite_limit(tmp_path / f"limit{run}.db", key.feed))
        rate_wall, rate_cpu, committed = asyncio.run(
            durable_append(tmp_path / f"ledger{run}.db", key, worker)
        )
        assert committed == N
        rates.append((rate_wall, rate_cpu))
        conn = connect(tmp_path / f"ledger{run}.db", readonly=True)
        assert verify_db(conn).ok
        conn.close()
    limit_wall, limit_cpu = statistics.median(limits)
    rate_wall, rate_cpu = statistics.median(rates)
    print()
    print(
        f"ledger durable append, commit {worker}: {rate_wall:,.0f} entries/s wall ({rate_cpu:,.0f}/s per CPU-second), "
        f"median of {RUNS} runs ({', '.join(f'{w:,.0f}' for w, _ in rates)}), "
        f"{N:,} entries, batches of {BATCH}, WAL synchronous=FULL"
    )
    print(
        f"  limit measured here: SQLite batch insert of pre-built rows, same schema: {limit_wall:,.0f} rows/s wall "
        f"({limit_cpu:,.0f}/s per CPU-second); stated limit {STATED_LIMIT:,}/s"
    )
    print(
        f"  ratio to measured limit {rate_wall / limit_wall:.2f}; target {TARGET:,}/s: "
        f"ratio {rate_wall / TARGET:.2f} ({'met' if rate_wall >= TARGET else 'NOT met'})"
    )
