"""Property: whatever is done to the readings store behind the node's back, verify names exactly
the blocks touched, each at its digest entry, and nothing else.

Each block of a real ledger gets one of the tamperings of issue 12 (or none), drawn by
hypothesis; the file is a fresh copy per example.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import orjson
import pytest
import stored_readings as sr
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.ledger.keys import NodeKey
from edge.ledger.store import Ledger, connect
from edge.ledger.verify import Kind, verify_db
from edge.readings import Reading

T0 = 1_795_000_000.0
BLOCKS = 6
READINGS_KINDS = {
    Kind.CHANGED_READINGS,
    Kind.BLOCK_ROW,
    Kind.MISSING_READINGS,
    Kind.UNCOVERED_READINGS,
}


def _change(conn: sqlite3.Connection, block: int) -> None:
    sr.rewrite_block(conn, block, lambda items: sr.set_value(items, 0, 99.5))


TAMPER = {
    "change": _change,
    "change+mark": lambda c, b: (
        _change(c, b),
        c.execute("UPDATE reading_blocks SET pruned = 1 WHERE block = ?", (b,)),
    ),
    "flip a byte": lambda c, b: sr.flip_byte(c, b, offset=-3),
    "flip the format byte": lambda c, b: sr.flip_byte(c, b, offset=0),
    "mark": lambda c, b: c.execute("UPDATE reading_blocks SET pruned = 1 WHERE block = ?", (b,)),
    "null link": lambda c, b: c.execute(
        "UPDATE reading_blocks SET entry = NULL WHERE block = ?", (b,)
    ),
    "delete row": lambda c, b: c.execute("DELETE FROM reading_blocks WHERE block = ?", (b,)),
    "delete+mark": lambda c, b: (
        c.execute("DELETE FROM reading_data WHERE block = ?", (b,)),
        c.execute("UPDATE reading_blocks SET pruned = 1 WHERE block = ?", (b,)),
    ),
    "delete all": lambda c, b: (
        c.execute("DELETE FROM reading_data WHERE block = ?", (b,)),
        c.execute("DELETE FROM reading_blocks WHERE block = ?", (b,)),
    ),
    "drop one reading": lambda c, b: sr.rewrite_block(c, b, lambda items: items[:-1]),
    "swap two readings": lambda c, b: sr.rewrite_block(
        c, b, lambda items: [items[1], items[0], *items[2:]]
    ),
}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, int]]:
    """A ledger with BLOCKS readings blocks, each with its own digest: block -> digest seq."""
    path = tmp_path_factory.mktemp("readings") / "ledger.db"
    with Ledger.open(path, NodeKey.generate()) as ledger:
        for b in range(BLOCKS):
            ledger.append("alarm", {"rule": "r", "n": b}, ts=T0 + b * 100)
            ledger.append_readings(
                [Reading("temp", T0 + b * 100 + i, 4.0 + i / 4, unit="degC") for i in range(5)]
            )
            ledger.commit(now=T0 + b * 100 + 50)
        seqs = {
            orjson.loads(raw)["body"]["block"]: seq
            for seq, raw in ledger.conn.execute(
                "SELECT seq, raw FROM entries WHERE type = 'readings.digest'"
            )
        }
    return path, seqs


@settings(max_examples=40, deadline=None)
@given(
    plan=st.dictionaries(
        st.integers(1, BLOCKS), st.sampled_from(sorted(TAMPER)), min_size=1, max_size=BLOCKS
    ),
)
def test_every_tampered_block_is_named_at_its_digest(
    base: tuple[Path, dict[int, int]],
    tmp_path_factory: pytest.TempPathFactory,
    plan: dict[int, str],
) -> None:
    path, seqs = base
    copy = tmp_path_factory.mktemp("copy") / "ledger.db"
    shutil.copyfile(path, copy)
    conn = sqlite3.connect(copy)
    for block, action in plan.items():
        TAMPER[action](conn, block)
    conn.commit()
    conn.close()
    ro = connect(copy, readonly=True)
    try:
        report = verify_db(ro)
    finally:
        ro.close()
    named = {p.seq for p in report.problems}
    assert {p.kind for p in report.problems} <= READINGS_KINDS, report.problems
    assert named == {seqs[b] for b in plan}, (plan, report.problems)
