"""A two-gateway ledger used by the query/trace/export tests, written through the real Ledger.

Test modules import it as ``import ledger_scenario as sc`` (``tests/helpers`` is on pytest's
``pythonpath``); ``tests/ledger/test_query_scenario.py`` checks the scenario itself, so a broken
fixture fails loudly.

Story (times are seconds after T0 = 2026-11-23T08:00:00Z):

* filler gateway (feed A, node ``filler-gw`` at ``plant-1``) fills lot ``L-2611-A`` at station
  ``filler-1``: a fill-weight alarm is activated, acknowledged by alice, cleared; the rule set
  changes while the lot runs; lot end with passing checks. Lot ``L-OTHER`` runs after it.
* packing gateway (feed B, node ``packer-gw`` at ``plant-1``) packs the same lot at ``packer-1``;
  its lot-end check fails; a later correction refers to that lot end (without naming the lot).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from edge.ledger.entry import Entry
from edge.ledger.keys import NodeKey
from edge.ledger.store import Ledger
from edge.ledger.trust import TRUST_FILE, add_trusted

T0 = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC).timestamp()
LOT = "L-2611-A"


@dataclass
class Scenario:
    db: Path
    filler: str
    packer: str
    entries: dict[str, Entry]
    #: the nodes' keys by role ("filler", "packer"): a test adds readings as the file's owner
    keys: dict[str, NodeKey] = field(default_factory=dict)


def _agg(count: int, mean: str, lo: str, hi: str, std: str, unit: str) -> dict[str, object]:
    return {"count": count, "mean": mean, "min": lo, "max": hi, "std": std, "unit": unit}


def build(db: Path) -> Scenario:
    """Write the two feeds into ``db`` (one writer after the other, as sync would deliver them)."""
    filler, packer = NodeKey.generate(), NodeKey.generate()
    got: dict[str, Entry] = {}
    with Ledger.open(db, filler) as led:
        got["a_start"] = led.append(
            "node.start",
            {
                "node_id": "filler-gw",
                "site": "plant-1",
                "version": "0.1.0",
                "config_hash": "c" * 64,
            },
            ts=T0,
        )
        got["a_rules1"] = led.append(
            "rules.change",
            {"hash": "1" * 64, "files": ["fill.yaml"], "rules": ["fill_weight_low"]},
            ts=T0 + 1,
        )
        led.commit(now=T0 + 2)
        got["a_lot_start"] = led.append(
            "lot.start",
            {"lot": LOT, "station": "filler-1", "product": "Tomato sauce 500 g"},
            ts=T0 + 100,
            lots=[LOT],
        )
        got["a_alarm_on"] = led.append(
            "alarm",
            {
                "rule": "fill_weight_low",
                "kind": "limit",
                "point": "fill_weight",
                "event": "activated",
                "from": "normal",
                "to": "active_unack",
                "value": "498.2",
                "limit": "499.0",
                "unit": "g",
                "severity": "high",
                "message": "fill weight below 499 g",
            },
            ts=T0 + 150,
            lots=[LOT],
        )
        got["a_ack"] = led.append(
            "alarm.ack",
            {"rule": "fill_weight_low", "comment": '=HYPERLINK("x") nozzle 3 cleaned'},
            ts=T0 + 160,
            actor="alice",
        )
        got["a_ack_other_rule"] = led.append(
            "alarm.ack",
            {"rule": "tank_level_low", "comment": "not this lot"},
            ts=T0 + 161,
            actor="bob",
        )
        got["a_alarm_off"] = led.append(
            "alarm",
            {
                "rule": "fill_weight_low",
                "kind": "limit",
                "point": "fill_weight",
                "event": "cleared",
                "from": "active_ack",
                "to": "normal",
                "value": "500.1",
                "limit": "499.0",
                "unit": "g",
                "severity": "high",
                "message": "fill weight back in limits",
            },
            ts=T0 + 170,
            lots=[LOT],
        )
        got["a_rules2"] = led.append(
            "rules.change",
            {"hash": "2" * 64, "files": ["fill.yaml"], "rules": ["fill_weight_low", "mean_weight"]},
            ts=T0 + 180,
        )
        got["a_lot_end"] = led.append(
            "lot.end",
            {
                "lot": LOT,
                "station": "filler-1",
                "aggregates": {
                    "fill_weight": _agg(120, "500.12", "498.2", "502.0", "0.81", "g"),
                    "product_temp": _agg(120, "61.5", "60.1", "63.0", "0.7", "°C"),
                },
                "checks": [
                    {
                        "rule": "mean_weight",
                        "statistic": "mean",
                        "value": "500.12",
                        "limit": "499.5",
                        "passed": True,
                    }
                ],
            },
            ts=T0 + 200,
            lots=[LOT],
        )
        got["a_other_start"] = led.append(
            "lot.start", {"lot": "L-OTHER", "station": "filler-1"}, ts=T0 + 300, lots=["L-OTHER"]
        )
        led.commit(now=T0 + 301)
        got["a_late_ack"] = led.append(
            "alarm.ack",
            {"rule": "fill_weight_low", "comment": "two days later"},
            ts=T0 + 200 + 2 * 86400,
            actor="carol",
        )
        led.commit(now=T0 + 200 + 2 * 86400 + 1)
    # A node writes only its own file (the owner check), so the packer's feed is written in a
    # file of its own and copied in, entries and checkpoint rows as they are, as sync delivers.
    packer_db = db.with_name(db.stem + "-packer.db")
    with Ledger.open(packer_db, packer) as led:
        got["b_start"] = led.append(
            "node.start",
            {
                "node_id": "packer-gw",
                "site": "plant-1",
                "version": "0.1.0",
                "config_hash": "d" * 64,
            },
            ts=T0 + 5,
        )
        got["b_rules1"] = led.append(
            "rules.change",
            {"hash": "3" * 64, "files": ["pack.yaml"], "rules": ["case_weight"]},
            ts=T0 + 6,
        )
        got["b_lot_start"] = led.append(
            "lot.start", {"lot": LOT, "station": "packer-1"}, ts=T0 + 250, lots=[LOT]
        )
        got["b_lot_end"] = led.append(
            "lot.end",
            {
                "lot": LOT,
                "station": "packer-1",
                "aggregates": {"case_weight": _agg(20, "6.02", "5.91", "6.10", "0.05", "kg")},
                "checks": [
                    {
                        "rule": "case_weight",
                        "statistic": "min",
                        "value": "5.91",
                        "limit": "5.95",
                        "passed": False,
                    }
                ],
            },
            ts=T0 + 400,
            lots=[LOT],
        )
        led.commit(now=T0 + 401)
        got["b_correction"] = led.append(
            "correction",
            {"reason": "case scale was not tared", "corrects": got["b_lot_end"].id},
            ts=T0 + 410,
            refs=[got["b_lot_end"].id],
            actor="dave",
        )
        led.commit(now=T0 + 411)
    copy_feed(packer_db, db)
    for leftover in (packer_db, *(Path(f"{packer_db}{s}") for s in ("-wal", "-shm", ".lock"))):
        leftover.unlink(missing_ok=True)
    # The filler owns the file; the packer is a trusted peer (trace and the exports show trusted
    # feeds only). As in a node's data directory: its public key beside the database, trust.toml.
    (db.parent / "node.key.pub").write_text(filler.feed + "\n")
    add_trusted(db.parent / TRUST_FILE, packer.feed, "packer-gw")
    return Scenario(db, filler.feed, packer.feed, got, {"filler": filler, "packer": packer})


def copy_feed(source: Path, target: Path) -> None:
    """Copy every feed of ``source`` (entries, their lots, checkpoint rows) into ``target``."""
    conn = sqlite3.connect(target)
    try:
        conn.execute("ATTACH DATABASE ? AS src", (str(source),))
        with conn:
            for table in ("entries", "entry_lots", "checkpoints"):
                conn.execute(f"INSERT INTO main.{table} SELECT * FROM src.{table}")
        conn.execute("DETACH DATABASE src")
    finally:
        conn.close()
