"""Corrections: finding the entry a user names, and what a correction records."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.errors import LedgerError, UnknownEntry
from edge.ledger.correction import plan_correction
from edge.ledger.keys import NodeKey
from edge.ledger.query import find_entry
from edge.ledger.store import Ledger
from edge.ledger.trace import trace_lot

from .conftest import T0, assert_verifies


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    store = Ledger.open(tmp_path / "ledger.db", NodeKey.generate())
    store.append("lot.start", {"lot": "L7", "station": "filler"}, ts=T0, lots=["L7"])
    store.append("alarm", {"rule": "fill-low", "value": "498.2"}, ts=T0 + 1, lots=["L7"])
    store.commit()
    yield store
    store.close()


def _ids(ledger: Ledger) -> dict[str, str]:
    return {t: i for t, i in ledger.conn.execute("SELECT type, id FROM entries")}


def test_a_correction_names_the_entry_carries_its_lots_and_verifies(ledger: Ledger) -> None:
    alarm = _ids(ledger)["alarm"]
    plan = plan_correction(ledger.conn, alarm[:10].upper(), "scale was not calibrated")
    assert plan.target.id == alarm
    assert plan.body == {"reason": "scale was not calibrated", "corrects": alarm}
    assert (plan.lots, plan.refs) == (("L7",), (alarm,))
    ledger.append(
        "correction", plan.body, ts=T0 + 2, lots=plan.lots, actor="qa.jane", refs=plan.refs
    )
    ledger.commit()
    trace = trace_lot(ledger.conn, "L7")
    corrected = next(e for e in trace.events if e.entry.id == alarm)
    assert len(corrected.corrected_by) == 1  # the original stays, marked as corrected
    path = ledger.path
    ledger.close()
    assert_verifies(path)


def test_unknown_short_and_non_hex_references_are_one_line_errors(ledger: Ledger) -> None:
    with pytest.raises(UnknownEntry, match="no entry in the ledger has this id"):
        find_entry(ledger.conn, "00000000")
    with pytest.raises(UnknownEntry, match="at least its first 8 hex digits"):
        find_entry(ledger.conn, "abc")
    with pytest.raises(UnknownEntry, match="at least its first 8 hex digits"):
        find_entry(ledger.conn, "zzzzzzzzzz")


def test_checkpoints_and_empty_reasons_are_refused(ledger: Ledger) -> None:
    checkpoint = _ids(ledger)["checkpoint"]
    with pytest.raises(LedgerError, match="is a checkpoint"):
        plan_correction(ledger.conn, checkpoint, "wrong")
    with pytest.raises(LedgerError, match="needs a reason"):
        plan_correction(ledger.conn, _ids(ledger)["alarm"], "  ")


def test_an_ambiguous_prefix_asks_for_more_digits_and_the_index_is_used() -> None:
    # Two ids sharing 9 digits cannot be made with SHA-256 here: a table of the same shape can.
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE entries (feed TEXT, seq INTEGER, id TEXT, raw BLOB)")
    conn.execute("CREATE INDEX entries_id ON entries(substr(id, 1, 8))")
    for seq, entry_id in enumerate(["abcdef0123" + "0" * 54, "abcdef0124" + "0" * 54]):
        conn.execute(
            "INSERT INTO entries VALUES ('f', ?, ?, ?)", (seq, entry_id, b'{"type":"alarm"}')
        )
    with pytest.raises(UnknownEntry, match="more than one entry starts with it"):
        find_entry(conn, "abcdef012")
    assert find_entry(conn, "abcdef0124").seq == 1
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM entries e WHERE substr(e.id, 1, 8) = ? AND e.id LIKE ?",
        ("abcdef01", "abcdef0124%"),
    ).fetchall()
    assert "entries_id" in str(plan)
