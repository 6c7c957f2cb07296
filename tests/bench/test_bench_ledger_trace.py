"""Benchmark: ``trace`` of one lot in a 1,000,000-entry ledger (goal < 100 ms).

The database is built once, in a temp dir, with fast direct inserts (one transaction,
``synchronous=OFF``) of canonical, hash-chained entries through the real schema
(:func:`edge.ledger.schema.migrate`): four gateways, 250,000 entries each, one entry a second
(a readings digest per block, the usual case), lots of ~200 entries that a filler gateway
starts and a packing gateway finishes, alarms acknowledged during or after the lot, a checkpoint
every 100 entries. Checkpoint signatures are placeholders: trace reads, it does not verify.

Printed: the median over 30 traces of the typical lot (its ack comes after the lot), and the
worst case trace pays: an alarm never acknowledged, so the ack search walks the full 24 h window.
"""

from __future__ import annotations

import hashlib
import sqlite3
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from edge.ledger.query import open_ledger_db
from edge.ledger.schema import migrate
from edge.ledger.trace import trace_lot

TOTAL = 1_000_000
FEEDS = 4
PER_FEED = TOTAL // FEEDS
LOT_LEN = 200
LIMIT_MS = 100.0
T0 = 1_795_000_000  # 2026-11-18


def _ts(seconds: float) -> str:
    whole = int(seconds)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        + f".{round((seconds - whole) * 1e6):06d}Z"
    )


def _feed_entries(index: int) -> Iterator[tuple[str, str, list[str], dict[str, Any], str]]:
    """(ts, type, lots, body, actor) of one feed; fillers (even) start lots, packers end them."""
    filler = index % 2 == 0
    pair = index // 2
    offset = 0 if filler else 300  # the packer sees each lot 5 minutes after the filler
    station = f"{'filler' if filler else 'packer'}-{pair}"
    yield (
        _ts(T0 + offset),
        "node.start",
        [],
        {
            "node_id": f"gw-{station}",
            "site": "plant-1",
            "version": "0.1.0",
            "config_hash": "c" * 64,
        },
        "",
    )
    yield (
        _ts(T0 + offset + 0.5),
        "rules.change",
        [],
        {"hash": f"{index:064x}", "files": ["q.yaml"], "rules": ["weight_low"]},
        "",
    )
    n = 2
    lot_no = 0
    while n < PER_FEED:
        lot = f"L{pair}-{lot_no:06d}"
        base = T0 + offset + n
        agg = {
            "count": 180,
            "mean": "500.1",
            "min": "498.0",
            "max": "502.2",
            "std": "0.8",
            "unit": "g",
        }
        alarm = {
            "rule": "weight_low",
            "kind": "limit",
            "point": "weight",
            "from": "normal",
            "to": "active_unack",
            "value": "498.0",
            "limit": "499.0",
            "unit": "g",
            "severity": "high",
            "message": "low",
        }
        for k in range(LOT_LEN):
            if n >= PER_FEED:
                break
            ts = _ts(base + k)
            if k == 0:
                yield ts, "lot.start", [lot], {"lot": lot, "station": station}, ""
            elif k == 50 and filler:
                yield ts, "alarm", [lot], {**alarm, "event": "activated"}, ""
            elif k == 60 and filler and lot_no == 500:
                # a rule that fires once and is never acknowledged: the ack search's worst case
                yield ts, "alarm", [lot], {**alarm, "rule": "door_open", "event": "activated"}, ""
            elif k == 80 and filler:
                yield ts, "alarm", [lot], {**alarm, "event": "cleared", "to": "returned_unack"}, ""
            elif k == 20 and filler and lot_no % 2 == 1:
                # the ack of the previous lot's alarm, after that lot ended
                yield ts, "alarm.ack", [], {"rule": "weight_low", "comment": "checked"}, "alice"
            elif k == LOT_LEN - 1:
                checks = [
                    {
                        "rule": "mean",
                        "statistic": "mean",
                        "value": "500.1",
                        "limit": "499",
                        "passed": True,
                    }
                ]
                yield (
                    ts,
                    "lot.end",
                    [lot],
                    {
                        "lot": lot,
                        "station": station,
                        "aggregates": {"weight": agg},
                        "checks": checks,
                    },
                    "",
                )
            elif k % 100 == 99:
                yield (
                    ts,
                    "checkpoint",
                    [],
                    {"size": n, "head": "0" * 64, "root": "0" * 64, "sig": "0" * 128},
                    "",
                )
            else:
                yield (
                    ts,
                    "readings.digest",
                    [],
                    {
                        "block": n,
                        "count": 1000,
                        "first_ts": ts,
                        "last_ts": ts,
                        "points": 8,
                        "sha256": "0" * 64,
                    },
                    "",
                )
            n += 1
        lot_no += 1


def build(db: Path) -> int:
    conn = sqlite3.connect(db, isolation_level=None)
    migrate(conn)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA journal_mode=WAL")
    total = 0
    conn.execute("BEGIN")
    for index in range(FEEDS):
        feed = hashlib.sha256(f"node-{index}".encode()).hexdigest()
        prev: str | None = None
        rows: list[tuple[Any, ...]] = []
        lot_rows: list[tuple[str, int, str]] = []
        for seq, (ts, kind, lots, body, actor) in enumerate(_feed_entries(index)):
            raw = orjson.dumps(
                {
                    "actor": actor,
                    "body": body,
                    "feed": feed,
                    "lots": lots,
                    "prev": prev,
                    "refs": [],
                    "seq": seq,
                    "ts": ts,
                    "type": kind,
                },
                option=orjson.OPT_SORT_KEYS,
            )
            entry_id = hashlib.sha256(raw).hexdigest()
            rows.append((feed, seq, entry_id, prev, ts, kind, actor, raw))
            lot_rows.extend((feed, seq, lot) for lot in lots)
            prev = entry_id
            if len(rows) >= 50_000:
                conn.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                total += len(rows)
                rows = []
        conn.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.executemany("INSERT INTO entry_lots VALUES (?, ?, ?)", lot_rows)
        total += len(rows)
    conn.execute("COMMIT")
    conn.close()
    return total


@pytest.fixture(scope="module")
def ledger_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("bench-trace") / "ledger.db"
    started = time.perf_counter()
    total = build(db)
    print(
        f"\nbuilt {total:,} entries in {time.perf_counter() - started:.1f} s "
        f"({db.stat().st_size / 1e6:.0f} MB)"
    )
    assert total == TOTAL
    return db


def _time_trace(db: Path, lot: str, runs: int) -> tuple[list[float], Any]:
    times = []
    trace = None
    for _ in range(runs):
        started = time.perf_counter()
        conn = open_ledger_db(db)
        trace = trace_lot(conn, lot)
        conn.close()
        times.append((time.perf_counter() - started) * 1000)
    return times, trace


def test_bench_trace_one_lot(ledger_db: Path) -> None:
    lot = "L1-000600"  # middle of the ledger; its alarm is acknowledged after the lot ended
    times, trace = _time_trace(ledger_db, lot, 30)
    types = [e.entry.type for e in trace.events]
    assert types.count("lot.start") == 2
    assert types.count("lot.end") == 2
    assert "alarm.ack" in types
    assert len({e.entry.feed for e in trace.events}) == 2
    median = statistics.median(times)
    print(
        f"trace of one lot in a {TOTAL:,}-entry ledger: median {median:.1f} ms "
        f"(first {times[0]:.1f}, max {max(times):.1f}) | limit {LIMIT_MS:.0f} ms | "
        f"ratio {median / LIMIT_MS:.2f}"
    )


def test_bench_trace_unacknowledged_alarm(ledger_db: Path) -> None:
    lot = "L1-000500"  # its door_open alarm is never acknowledged, and never fires again
    times, trace = _time_trace(ledger_db, lot, 10)
    acks = [e.entry for e in trace.events if e.entry.type == "alarm.ack"]
    assert all(a.body["rule"] == "weight_low" for a in acks)
    median = statistics.median(times)
    print(
        f"trace, worst case (alarm never acknowledged: 24 h ack window walked): median "
        f"{median:.1f} ms | limit {LIMIT_MS:.0f} ms | ratio {median / LIMIT_MS:.2f}"
    )


def test_bench_query(ledger_db: Path) -> None:
    """Interactive queries on the same ledger, against the same 100 ms goal as trace."""
    from edge.ledger.query import EntryFilter, load_stations, query_entries

    cases = {
        "newest 50 alarms": EntryFilter(type="alarm", limit=50, newest_first=True),
        "one lot": EntryFilter(lot="L1-000600"),
        "one hour of one node": EntryFilter(
            feeds=frozenset({hashlib.sha256(b"node-2").hexdigest()}),
            since=_ts(T0 + 100_000),
            until=_ts(T0 + 103_600),
        ),
    }
    for name, flt in cases.items():
        times = []
        for _ in range(10):
            started = time.perf_counter()
            conn = open_ledger_db(ledger_db)
            got = query_entries(conn, flt)
            conn.close()
            times.append((time.perf_counter() - started) * 1000)
        assert got
        median = statistics.median(times)
        print(
            f"query {name} ({len(got)} entries): median {median:.1f} ms | "
            f"limit {LIMIT_MS:.0f} ms | ratio {median / LIMIT_MS:.2f}"
        )
    started = time.perf_counter()
    conn = open_ledger_db(ledger_db)
    stations = load_stations(conn, every_feed=True)
    conn.close()
    elapsed = (time.perf_counter() - started) * 1000
    assert len(stations.feeds_matching("plant-1")) == FEEDS
    print(
        f"--node lookup (every feed's stations): {elapsed:.1f} ms | limit {LIMIT_MS:.0f} ms | "
        f"ratio {elapsed / LIMIT_MS:.2f}"
    )
