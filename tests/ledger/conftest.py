"""Shared helpers for the ledger tests: a real ledger file with a known shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.ledger.keys import NodeKey
from edge.ledger.store import Ledger, connect
from edge.ledger.verify import verify_db
from edge.ledger.writer import LedgerWriter
from edge.readings import Quality, Reading

T0 = 1_795_000_000.0  # 2026-11-19


def build_ledger(path: Path, key: NodeKey, *, batches: tuple[int, ...] = (5, 4, 6)) -> Ledger:
    """A ledger with the given batch sizes; lot LOT-7 on every third entry; one readings block.

    Returns the (still open) ledger. Seqs: batch 1 is 0..4, checkpoint at 5; batch 2 is 6..9,
    checkpoint at 10; batch 3 is 11..16 (one of them the readings digest), checkpoint at 17.
    """
    ledger = Ledger.open(path, key)
    n = 0
    for i, size in enumerate(batches):
        for j in range(size):
            if i == 2 and j == 0:
                readings = [
                    Reading("temp", T0 + n + k / 10, 4.0 + k / 8, unit="degC") for k in range(8)
                ]
                readings.append(Reading("door", T0 + n + 0.9, None, Quality.COMM_FAIL))
                ledger.append_readings(readings)
            else:
                ledger.append(
                    "alarm",
                    {
                        "rule": "cold-chain",
                        "point": "temp",
                        "value": f"{8 + n / 4}",
                        "limit": "8.0",
                        "unit": "degC",
                    },
                    ts=T0 + n,
                    lots=["LOT-7"] if n % 3 == 0 else (),
                    actor="" if n % 2 else "alice",
                )
            n += 1
        ledger.commit(now=T0 + n)
    return ledger


def assert_verifies(path: Path) -> None:
    """``edge ledger verify`` on the file says nothing is wrong (the problems shown if not)."""
    conn = connect(path, readonly=True)
    try:
        report = verify_db(conn)
    finally:
        conn.close()
    assert report.ok, report.problems


async def first_commit_pid(writer: LedgerWriter, body: dict[str, object]) -> int:
    """Append one entry through a running writer, wait until durable: its commit process's pid."""
    entry = await writer.append("alarm", body, ts=T0)
    await writer.durable(entry.seq)
    pid = writer.commit_pid
    assert pid is not None
    return pid


@pytest.fixture
def key() -> NodeKey:
    return NodeKey.generate()


@pytest.fixture
def db(tmp_path: Path, key: NodeKey) -> Path:
    path = tmp_path / "ledger.db"
    build_ledger(path, key).close()
    return path
