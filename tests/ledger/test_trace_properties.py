"""Property: whatever a line's history, a lot's trace holds what happened between its start and
end, and each operator action sits with the activation it acted on (issue 12, point 6).

Histories are drawn by hypothesis as a stream of steps on one feed (alarm activations and
clears, acknowledgements and shelvings, rule changes, node restarts, lot changes, gaps between
lots), written through the real :class:`Ledger`, then corrections of random entries after the
fact; the oracle below is computed from the steps, not from the trace code.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from edge.ledger.entry import Entry
from edge.ledger.keys import NodeKey
from edge.ledger.query import open_ledger_db
from edge.ledger.store import Ledger
from edge.ledger.trace import trace_lot

T0 = 1_795_000_000.0
_OPERATOR = ("alarm.ack", "alarm.shelve", "alarm.unshelve")
STEPS = st.sampled_from(
    [
        "activate a",
        "activate b",
        "clear a",
        "clear b",
        "ack a",
        "ack b",
        "shelve a",
        "rules",
        "restart",
        "killed",
        "next lot",
        "end lot",
    ]
)


def _alarm(rule: str, event: str) -> dict[str, Any]:
    return {
        "rule": rule,
        "kind": "limit",
        "point": "p",
        "event": event,
        "from": "x",
        "to": "y",
        "value": "1",
        "limit": "2",
        "unit": "bar",
        "severity": "low",
        "message": "m",
    }


def _write(db: Path, steps: list[str], gaps: list[int], fixes: list[int]) -> list[Entry]:
    """Write the history; returns every entry written, in order."""
    written: list[Entry] = []
    lot: str | None = None
    lots = 0
    active: set[str] = set()  # an engine raises an alarm that is clear, clears one that is raised
    ts = T0
    start = {"node_id": "gw", "site": "s", "version": "1", "config_hash": "0" * 64}
    with Ledger.open(db, NodeKey.generate()) as led:

        def add(type_: str, body: dict[str, Any], *, actor: str = "", **kw: Any) -> Entry:
            entry = led.append(type_, body, ts=ts, actor=actor, **kw)
            written.append(entry)
            return entry

        add("node.start", start)
        for step, gap in zip(steps, gaps, strict=False):
            ts += gap
            here = [lot] if lot else []
            kind, _, rule = step.partition(" ")
            if kind in ("activate", "clear"):
                if (rule in active) == (kind == "activate"):
                    continue
                active.symmetric_difference_update({rule})
                add(
                    "alarm",
                    _alarm(rule, "activated" if kind == "activate" else "cleared"),
                    lots=here,
                )
            elif kind in ("ack", "shelve"):
                type_ = "alarm.ack" if kind == "ack" else "alarm.shelve"
                add(type_, {**_alarm(rule, kind), "comment": ""}, lots=here, actor="op")
            elif step == "rules":
                add("rules.change", {"hash": f"{len(written):064d}", "files": [], "rules": []})
            elif step == "restart":
                add("node.stop", {"reason": "stop requested"})
                ts += 1
                add("node.start", start)
            elif step == "killed":
                led.commit(now=ts)
                ts += 30
                add("node.start", start)
            else:  # next lot / end lot
                if lot is not None:
                    add(
                        "lot.end",
                        {"lot": lot, "station": "st", "aggregates": {}, "checks": []},
                        lots=[lot],
                    )
                    lot = None
                if step == "next lot":
                    lots += 1
                    lot = f"L{lots}"
                    ts += 1
                    add("lot.start", {"lot": lot, "station": "st"}, lots=[lot])
        led.commit(now=ts + 1)
        targets = [e for e in written if e.lots]
        for i in fixes:
            if not targets:
                break
            target = targets[i % len(targets)]
            ts += 7
            add(
                "correction",
                {"reason": "r", "corrects": target.id},
                lots=list(target.lots),
                refs=[target.id],
                actor="qm",
            )
        led.commit(now=ts + 1)
    return written


@settings(max_examples=60, deadline=None)
# the lot's second activation of b, acknowledged after the lot: the ack is that activation's
@example(steps=["activate b", "clear b", "activate b", "end lot", "ack b"], gaps=[1] * 40, fixes=[])
# b raised in L1 and acknowledged in L2 (the ack carries L2), corrected afterwards
@example(steps=["activate b", "next lot", "ack b", "rules"], gaps=[5] * 40, fixes=[0, 1, 2])
@given(
    steps=st.lists(STEPS, min_size=1, max_size=40),
    gaps=st.lists(st.integers(1, 200), min_size=40, max_size=40),
    fixes=st.lists(st.integers(0, 1000), max_size=3),
)
def test_lot_traces_hold_their_own_time_and_actions(
    steps: list[str], gaps: list[int], fixes: list[int]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ledger.db"
        written = _write(db, ["next lot", *steps], [1, *gaps], fixes)
        by_id = {e.id: e for e in written}
        lots = sorted({lot for e in written if e.type == "lot.start" for lot in e.lots})
        conn = open_ledger_db(db)
        try:
            traces = {lot: trace_lot(conn, lot) for lot in lots}
        finally:
            conn.close()
    seen_actions: dict[str, str] = {}
    for lot, trace in traces.items():
        starts = [e for e in written if e.type == "lot.start" and lot in e.lots]
        ends = [e for e in written if e.type == "lot.end" and lot in e.lots]
        first = starts[0].ts
        last = (
            ends[0].ts
            if ends
            else max(
                e.ts for e in written if lot in e.lots and e.type not in ("correction", *_OPERATOR)
            )
        )
        for event in trace.events:
            entry = event.entry
            if entry.type == "correction":
                assert entry.refs[0] in {e.entry.id for e in trace.events}
                continue
            if entry.type in _OPERATOR:
                # acts on the latest activation of its rule before it, which is this lot's
                activations = [
                    e
                    for e in written
                    if e.type == "alarm"
                    and e.body["event"] == "activated"
                    and e.body["rule"] == entry.body["rule"]
                    and e.ts <= entry.ts
                ]
                assert activations, entry.body
                assert event.refers_to == activations[-1].id
                assert lot in by_id[activations[-1].id].lots
                assert entry.id not in seen_actions, (lot, seen_actions[entry.id])
                seen_actions[entry.id] = lot
                continue
            assert first <= entry.ts <= last, (lot, entry.type, entry.ts, first, last)
        # complete: every entry of the lot's time on the feed that trace is meant to show
        shown = {e.entry.id for e in trace.events}
        for entry in written:
            if first < entry.ts <= last and entry.type in (
                "node.start",
                "node.stop",
                "rules.change",
            ):
                assert entry.id in shown, (lot, entry.type)
            if entry.type in ("alarm", "lot.start", "lot.end") and lot in entry.lots:
                assert entry.id in shown
            if entry.type in _OPERATOR and first <= entry.ts <= last:
                activations = [
                    e
                    for e in written
                    if e.type == "alarm"
                    and e.body["event"] == "activated"
                    and e.body["rule"] == entry.body["rule"]
                    and e.ts <= entry.ts
                ]
                if activations and lot in activations[-1].lots:
                    assert entry.id in shown, (lot, entry.type, entry.ts)
