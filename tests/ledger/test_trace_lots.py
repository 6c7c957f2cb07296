"""Lots tell the truth (issue 12, point 6): what ``trace`` and both exports say a lot holds.

* a lot lasts from its ``lot.start`` to its ``lot.end``: a correction written later (it carries
  the lot) does not stretch it over what happened meanwhile;
* an operator action belongs to the alarm activation it acts on, not to the lot it was
  recorded in;
* a node's stops and starts inside a lot show, with how long the node was down;
* a missing ``lot.start``/``lot.end`` says why instead of ``-``.

Ledgers are written through the real :class:`Ledger` (hashed, chained, signed, committed to a
SQLite file); each test reads them back the way ``edge ledger trace`` does.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from edge.cli import main
from edge.ledger.correction import plan_correction
from edge.ledger.entry import Entry
from edge.ledger.epcis import epcis_document
from edge.ledger.export_csv import write_lot_csv
from edge.ledger.keys import NodeKey
from edge.ledger.query import open_ledger_db
from edge.ledger.store import Ledger
from edge.ledger.trace import LotTrace, trace_lot
from edge.ledger.verify import verify_db

T0 = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC).timestamp()
NOW = datetime(2026, 11, 24, tzinfo=UTC)
START = {"node_id": "filler-gw", "site": "plant-1", "version": "0.1.0", "config_hash": "c" * 64}


def _alarm(rule: str, event: str, frm: str, to: str) -> dict[str, Any]:
    return {
        "rule": rule,
        "kind": "limit",
        "point": "fill_weight",
        "event": event,
        "from": frm,
        "to": to,
        "value": "498.2",
        "limit": "499.0",
        "unit": "g",
        "severity": "high",
        "message": "fill weight below 499 g",
    }


def _end(lot: str) -> dict[str, Any]:
    return {"lot": lot, "station": "filler-1", "aggregates": {}, "checks": []}


def _rules(digit: str) -> dict[str, Any]:
    return {"hash": digit * 64, "files": ["fill.yaml"], "rules": ["fill_weight_low"]}


def _trace(db: Path, lot: str) -> LotTrace:
    conn = open_ledger_db(db)
    try:
        return trace_lot(conn, lot)
    finally:
        conn.close()


def _csv(trace: LotTrace) -> list[dict[str, str]]:
    out = io.StringIO(newline="")
    write_lot_csv(trace, out)
    return list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))


def _verified(db: Path) -> None:
    conn = open_ledger_db(db)
    try:
        report = verify_db(conn)
        assert report.ok, report.problems
    finally:
        conn.close()


def test_a_correction_after_the_lot_does_not_extend_it(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with Ledger.open(db, NodeKey.generate()) as led:
        led.append("node.start", START, ts=T0)
        old_rules = led.append("rules.change", _rules("1"), ts=T0 + 1)
        led.append("lot.start", {"lot": "B", "station": "filler-1"}, ts=T0 + 10, lots=["B"])
        end = led.append("lot.end", _end("B"), ts=T0 + 100, lots=["B"])
        led.commit(now=T0 + 101)
        # two minutes after lot B ended: the rule set changes, a node restart, lot C runs
        late_rules = led.append("rules.change", _rules("2"), ts=T0 + 220)
        led.append("node.stop", {"reason": "stop requested"}, ts=T0 + 230)
        led.append("node.start", START, ts=T0 + 240)
        led.append("lot.start", {"lot": "C", "station": "filler-1"}, ts=T0 + 250, lots=["C"])
        led.commit(now=T0 + 251)
        plan = plan_correction(led.conn, end.id[:12], "scale not tared")
        assert plan.lots == ("B",)  # the correction carries the lot: the case at hand
        fix = led.append(
            "correction", plan.body, ts=T0 + 400, lots=plan.lots, refs=plan.refs, actor="dave"
        )
        led.commit(now=T0 + 401)
    _verified(db)

    trace = _trace(db, "B")
    assert [e.entry.type for e in trace.events] == ["lot.start", "lot.end", "correction"]
    assert [r.entry.id for r in trace.rule_sets] == [old_rules.id]
    assert trace.span == (_ts(T0 + 10), _ts(T0 + 100))
    corrected = next(e for e in trace.events if e.entry.id == end.id)
    assert corrected.corrected_by == (fix.id,)

    rows = _csv(trace)
    assert [r["entry_type"] for r in rows] == ["lot.start", "lot.end", "correction"]
    assert {r["rule_set"] for r in rows} == {"1" * 64}
    doc = epcis_document(trace, now=NOW)
    assert late_rules.id not in doc["eqc:ledgerEntries"]
    assert {e["eqc:ruleSet"]["hash"] for e in doc["epcisBody"]["eventList"]} == {"1" * 64}
    retracted = doc["epcisBody"]["eventList"][-1]
    assert retracted["errorDeclaration"]["eqc:correctionEntryId"] == fix.id

    result = CliRunner().invoke(
        main, ["ledger", "trace", "B", "--db", str(db)], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    assert f"{_ts(T0 + 10)} .. {_ts(T0 + 100)}" in result.output
    assert "2222222222222222" not in result.output


def _ts(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _restart_ledger(db: Path, *, clean: bool) -> dict[str, Entry]:
    got: dict[str, Entry] = {}
    with Ledger.open(db, NodeKey.generate()) as led:
        led.append("node.start", START, ts=T0)
        led.append("rules.change", _rules("1"), ts=T0 + 1)
        got["start"] = led.append(
            "lot.start", {"lot": "R", "station": "filler-1"}, ts=T0 + 10, lots=["R"]
        )
        got["alarm"] = led.append(
            "alarm", _alarm("w", "activated", "normal", "active_unack"), ts=T0 + 20, lots=["R"]
        )
        led.commit(now=T0 + 21)
        if clean:
            got["stop"] = led.append("node.stop", {"reason": "stop requested"}, ts=T0 + 30)
            led.commit(now=T0 + 31)
        # killed otherwise: the last durable entry is the checkpoint at T0 + 21
        got["restart"] = led.append("node.start", START, ts=T0 + 90)
        got["same_rules"] = led.append("rules.change", _rules("1"), ts=T0 + 91)
        got["end"] = led.append("lot.end", _end("R"), ts=T0 + 120, lots=["R"])
        led.commit(now=T0 + 121)
    return got


def test_a_clean_restart_inside_a_lot_shows(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    got = _restart_ledger(db, clean=True)
    _verified(db)
    trace = _trace(db, "R")
    ids = [e.entry.id for e in trace.events]
    assert ids == [
        got["start"].id,
        got["alarm"].id,
        got["stop"].id,
        got["restart"].id,
        got["same_rules"].id,
        got["end"].id,
    ]
    restart = trace.events[3]
    assert restart.note == (
        f"node down from {_ts(T0 + 30)} to {_ts(T0 + 90)} (stopped: stop requested)"
    )
    rows = _csv(trace)
    assert [r["event"] for r in rows][2:4] == ["node stop", "node start"]
    assert rows[3]["note"] == restart.note
    events = epcis_document(trace, now=NOW)["epcisBody"]["eventList"]
    nodes = [e["eqc:node"] for e in events if "eqc:node" in e]
    assert [n["event"] for n in nodes] == ["stop", "start"]
    assert nodes[1]["note"] == restart.note
    assert all("bizStep" not in e for e in events if "eqc:node" in e)


def test_a_killed_node_inside_a_lot_shows_as_down(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    got = _restart_ledger(db, clean=False)
    trace = _trace(db, "R")
    types = [e.entry.type for e in trace.events]
    assert types == ["lot.start", "alarm", "node.start", "rules.change", "lot.end"]
    restart = next(e for e in trace.events if e.entry.id == got["restart"].id)
    # down since the last durable entry of the run: the checkpoint of the commit at T0 + 21
    assert restart.note.startswith(f"node down from {_ts(T0 + 21)} to {_ts(T0 + 90)} (no node.stop")
    result = CliRunner().invoke(
        main, ["ledger", "trace", "R", "--db", str(db)], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 0, result.output
    assert "node down from" in result.output
    doc = orjson.loads(
        CliRunner().invoke(main, ["ledger", "trace", "R", "--db", str(db), "--json"]).output
    )
    assert [e["note"] for e in doc["events"] if e["type"] == "node.start"] == [restart.note]


def test_an_ack_attaches_to_its_own_activation(tmp_path: Path) -> None:
    """Rule w is raised in lot A and acknowledged during lot B (the ack carries B, the lot
    current when the operator acted): that ack is A's. Then w clears, is raised again in B
    and acknowledged: that ack is B's, and is not A's even though no ack of A's alarm
    came in between."""
    db = tmp_path / "ledger.db"
    with Ledger.open(db, NodeKey.generate()) as led:
        led.append("node.start", START, ts=T0)
        led.append("lot.start", {"lot": "A", "station": "filler-1"}, ts=T0 + 10, lots=["A"])
        a_on = led.append(
            "alarm", _alarm("w", "activated", "normal", "active_unack"), ts=T0 + 20, lots=["A"]
        )
        led.append("lot.end", _end("A"), ts=T0 + 50, lots=["A"])
        led.append("lot.start", {"lot": "B", "station": "filler-1"}, ts=T0 + 51, lots=["B"])
        a_ack = led.append(
            "alarm.ack",
            {**_alarm("w", "acknowledged", "active_unack", "active_ack"), "comment": "for A"},
            ts=T0 + 60,
            lots=["B"],
            actor="alice",
        )
        b_clear = led.append(
            "alarm", _alarm("w", "cleared", "active_ack", "normal"), ts=T0 + 70, lots=["B"]
        )
        b_on = led.append(
            "alarm", _alarm("w", "activated", "normal", "active_unack"), ts=T0 + 80, lots=["B"]
        )
        b_ack = led.append(
            "alarm.ack",
            {**_alarm("w", "acknowledged", "active_unack", "active_ack"), "comment": "for B"},
            ts=T0 + 90,
            lots=["B"],
            actor="bob",
        )
        led.append("lot.end", _end("B"), ts=T0 + 100, lots=["B"])
        # lot C: w raised again and never acknowledged in C; an ack of it the next day is C's
        led.append("lot.start", {"lot": "C", "station": "filler-1"}, ts=T0 + 200, lots=["C"])
        c_on = led.append(
            "alarm", _alarm("w", "activated", "normal", "active_unack"), ts=T0 + 210, lots=["C"]
        )
        led.append("lot.end", _end("C"), ts=T0 + 220, lots=["C"])
        c_ack = led.append(
            "alarm.ack",
            {**_alarm("w", "acknowledged", "active_unack", "active_ack"), "comment": "late"},
            ts=T0 + 3600,
            actor="carol",
        )
        led.commit(now=T0 + 3601)
    _verified(db)

    def acks(lot: str) -> list[tuple[str, str | None]]:
        return [
            (e.entry.id, e.refers_to) for e in _trace(db, lot).events if e.entry.type == "alarm.ack"
        ]

    assert acks("A") == [(a_ack.id, a_on.id)]
    assert acks("B") == [(b_ack.id, b_on.id)]
    assert acks("C") == [(c_ack.id, c_on.id)]
    b_trace = _trace(db, "B")
    assert b_clear.id in [e.entry.id for e in b_trace.events]  # B saw w clear: that stays
    rows = _csv(_trace(db, "A"))
    ack_row = next(r for r in rows if r["entry_type"] == "alarm.ack")
    assert (ack_row["actor"], ack_row["refers_to"]) == ("alice", a_on.id)
    doc = epcis_document(_trace(db, "B"), now=NOW)
    (ack_event,) = [e for e in doc["epcisBody"]["eventList"] if "eqc:acknowledgement" in e]
    assert ack_event["eqc:acknowledgement"]["activationEntryId"] == b_on.id
    assert a_ack.id not in doc["eqc:ledgerEntries"]


def test_missing_start_and_end_are_explained(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with Ledger.open(db, NodeKey.generate()) as led:
        led.append("node.start", START, ts=T0)
        # lot K: started, then the node is killed; after the restart lot K is not resumed
        led.append("lot.start", {"lot": "K", "station": "filler-1"}, ts=T0 + 10, lots=["K"])
        led.commit(now=T0 + 11)
        led.append("node.start", START, ts=T0 + 100)
        # lot M: its start was lost (the kill); its first entry and end came after the restart
        led.append(
            "alarm", _alarm("w", "activated", "normal", "active_unack"), ts=T0 + 110, lots=["M"]
        )
        led.append("lot.end", _end("M"), ts=T0 + 150, lots=["M"])
        # lot S: started, then the node is stopped for good
        led.append("lot.start", {"lot": "S", "station": "filler-1"}, ts=T0 + 200, lots=["S"])
        led.append("node.stop", {"reason": "stop requested"}, ts=T0 + 210)
        led.commit(now=T0 + 211)
    with Ledger.open(tmp_path / "running.db", NodeKey.generate()) as led:
        led.append("node.start", START, ts=T0)
        led.append("lot.start", {"lot": "U", "station": "filler-1"}, ts=T0 + 10, lots=["U"])
        led.commit(now=T0 + 11)
    _verified(db)

    (k,) = _trace(db, "K").visits
    assert k.end is None
    assert k.end_note.startswith(f"no lot.end: node down from {_ts(T0 + 11)} to {_ts(T0 + 100)}")
    (m,) = _trace(db, "M").visits
    assert m.start is None
    assert m.start_note.startswith(
        f"no lot.start: node down from {_ts(T0 + 11)} to {_ts(T0 + 100)} (no node.stop"
    )
    (s,) = _trace(db, "S").visits
    assert s.end_note == (
        f"no lot.end: the node stopped at {_ts(T0 + 210)} (stop requested) and has not "
        "started since"
    )
    (u,) = _trace(tmp_path / "running.db", "U").visits
    assert u.end_note.startswith("no lot.end yet: the lot is still running")

    rows = _csv(_trace(db, "M"))
    assert next(r for r in rows if r["entry_type"] == "lot.end")["note"] == m.start_note
    doc = epcis_document(_trace(db, "K"), now=NOW)
    assert doc["epcisBody"]["eventList"][0]["eqc:missingEnd"] == k.end_note
    assert doc["eqc:stationVisits"][0]["missingEnd"] == k.end_note
    for lot, note in (("K", k.end_note), ("M", m.start_note), ("S", s.end_note)):
        result = CliRunner().invoke(
            main, ["ledger", "trace", lot, "--db", str(db)], env={"COLUMNS": "400"}
        )
        assert result.exit_code == 0, result.output
        assert note in " ".join(result.output.split()), (lot, result.output)
        js = orjson.loads(
            CliRunner().invoke(main, ["ledger", "trace", lot, "--db", str(db), "--json"]).output
        )
        assert note in (js["stations"][0]["start_note"], js["stations"][0]["end_note"])


def test_a_lot_seen_only_through_alarms_gets_a_visit_with_both_reasons(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with Ledger.open(db, NodeKey.generate()) as led:
        led.append("node.start", START, ts=T0)
        led.append(
            "alarm", _alarm("w", "activated", "normal", "active_unack"), ts=T0 + 5, lots=["Q"]
        )
        led.append("node.stop", {"reason": "stop requested"}, ts=T0 + 9)
        led.commit(now=T0 + 10)
    (visit,) = _trace(db, "Q").visits
    assert (visit.start, visit.end) == (None, None)
    assert visit.start_note.startswith("no lot.start: the feed begins with the node's start")
    assert visit.end_note.startswith(f"no lot.end: the node stopped at {_ts(T0 + 9)}")


def test_downtime_uses_what_the_next_start_records_of_the_run_before(tmp_path: Path) -> None:
    """A ``node.start`` that records ``previous_run`` (its last durable entry and reading)
    dates the downtime from there, not from the checkpoint before it."""
    db = tmp_path / "ledger.db"
    with Ledger.open(db, NodeKey.generate()) as led:
        led.append("node.start", START, ts=T0)
        led.append("lot.start", {"lot": "P", "station": "filler-1"}, ts=T0 + 10, lots=["P"])
        led.commit(now=T0 + 30)  # the checkpoint at T0 + 30; the lot's entry at T0 + 10
        previous = {"clean": False, "last_entry": _ts(T0 + 10), "last_reading": _ts(T0 + 29)}
        restart = led.append("node.start", {**START, "previous_run": previous}, ts=T0 + 90)
        led.append("lot.end", _end("P"), ts=T0 + 120, lots=["P"])
        led.commit(now=T0 + 121)
    event = next(e for e in _trace(db, "P").events if e.entry.id == restart.id)
    assert event.note == (
        f"node down from {_ts(T0 + 10)} to {_ts(T0 + 90)} (no node.stop: killed or lost power "
        f"after its last durable entry; last durable reading {_ts(T0 + 29)})"
    )
