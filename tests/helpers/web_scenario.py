"""A two-gateway ledger with readings, for the ``edge serve`` tests (tests/web/).

Written through the real Ledger (signed checkpoints, real readings blocks), the packer's feed
copied in as sync delivers it (:func:`ledger_scenario.copy_feed`). Story (seconds after T0):

* filler gateway (feed A, owns the file; node ``filler-gw``): lot ``L-2611-A`` (product
  ``Tomato sauce 500 g``) at station ``filler-1`` from 100 to 300, one ``fill_weight`` reading a
  second (200): around 500 g, one outlier (index 60: Nelson rule 1) and a run of ten high
  readings (indexes 120..129: rule 2, nine on one side); alarm ``fill_weight_low`` activated at
  150, acknowledged by alice at 155, cleared at 158; the node stops at 170 and restarts at 175
  (a restart inside the lot); the rule set changes at 180; lot end at 300 with a passing mean
  check and a failing Cpk check. Lot ``L-OTHER`` (product ``Ketchup``, GTIN :data:`GTIN`) from 400 to 420, passed.
  ``BULK-000`` .. ``BULK-059`` after it (pagination). Alarm ``tank_level_low`` activated at 460
  and never acknowledged; ``door_open`` activated at 470 and shelved by bob until T0 + 1 day.
* packer gateway (feed B, ``packer-gw``): the same lot at ``packer-1`` from 350 to 380, its
  lot-end check (min case weight) failing; dave's correction of that lot end at 390.

The filler's public key is written beside the database and the packer is on its trust list,
as in a node's data directory; both public keys are also written as ``filler.pub`` and
``packer.pub`` (for the proof verifier's ``--trust``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ledger_scenario import copy_feed

from edge.ledger.keys import NodeKey
from edge.ledger.store import Ledger
from edge.ledger.trust import TRUST_FILE, add_trusted
from edge.readings import Reading

T0 = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC).timestamp()
LOT = "L-2611-A"
OUTLIER = 60
RUN = range(120, 130)
BULK = 60
GTIN = "09506000134352"  # L-OTHER's product (a valid GTIN-14)


@dataclass
class WebScenario:
    db: Path
    filler: str
    packer: str
    weights: list[float] = field(default_factory=list)


def _weights() -> list[float]:
    rnd = random.Random(15)
    values = [round(500 + rnd.gauss(0, 0.4), 2) for _ in range(200)]
    values[OUTLIER] = 506.0
    for i in RUN:
        values[i] = round(501.2 + rnd.uniform(0, 0.2), 2)
    return values


def _alarm(
    rule: str, point: str, event: str, before: str, after: str, value: str
) -> dict[str, object]:
    return {
        "rule": rule,
        "kind": "limit",
        "point": point,
        "event": event,
        "from": before,
        "to": after,
        "value": value,
        "limit": "499.0",
        "unit": "g",
        "severity": "high",
        "message": f"{rule} {event}",
    }


def build(db: Path) -> WebScenario:
    """Write the scenario into ``db`` (a new file in an empty directory)."""
    filler, packer = NodeKey.generate(), NodeKey.generate()
    weights = _weights()
    start_body = {
        "node_id": "filler-gw",
        "site": "plant-1",
        "version": "0.1.0",
        "config_hash": "c" * 64,
    }
    with Ledger.open(db, filler) as led:
        led.append("node.start", start_body, ts=T0)
        led.append(
            "rules.change",
            {"hash": "1" * 64, "files": ["fill.yaml"], "rules": ["fill_weight_low"]},
            ts=T0 + 1,
        )
        led.append(
            "lot.start",
            {"lot": LOT, "station": "filler-1", "product": "Tomato sauce 500 g"},
            ts=T0 + 100,
            lots=[LOT],
        )
        for first in range(0, 200, 50):
            readings = [
                Reading("fill_weight", T0 + 100 + i, weights[i], unit="g")
                for i in range(first, first + 50)
            ]
            led.append_readings(readings, ts=T0 + 100 + first + 49.5)
            if first == 50:
                led.append(
                    "alarm",
                    _alarm(
                        "fill_weight_low",
                        "fill_weight",
                        "activated",
                        "normal",
                        "active_unack",
                        "498.2",
                    ),
                    ts=T0 + 150,
                    lots=[LOT],
                )
                led.append(
                    "alarm.ack",
                    {
                        **_alarm(
                            "fill_weight_low",
                            "fill_weight",
                            "acknowledged",
                            "active_unack",
                            "active_ack",
                            "498.2",
                        ),
                        "comment": "nozzle 3 cleaned",
                    },
                    ts=T0 + 155,
                    lots=[LOT],
                    actor="alice",
                )
                led.append(
                    "alarm",
                    _alarm(
                        "fill_weight_low", "fill_weight", "cleared", "active_ack", "normal", "500.1"
                    ),
                    ts=T0 + 158,
                    lots=[LOT],
                )
                led.append("node.stop", {"reason": "operator"}, ts=T0 + 170)
                led.commit(now=T0 + 170)
                led.append(
                    "node.start",
                    {
                        **start_body,
                        "previous_run": {"clean": True, "last_entry": None, "last_reading": None},
                    },
                    ts=T0 + 175,
                )
                led.append(
                    "rules.change",
                    {
                        "hash": "2" * 64,
                        "files": ["fill.yaml"],
                        "rules": ["fill_weight_low", "cpk_weight"],
                    },
                    ts=T0 + 180,
                )
            led.commit(now=T0 + 100 + first + 50)
        led.append(
            "lot.end",
            {
                "lot": LOT,
                "station": "filler-1",
                "aggregates": {
                    "fill_weight": {
                        "count": 200,
                        "mean": "500.2",
                        "min": "499.0",
                        "max": "506",
                        "std": "0.71",
                        "unit": "g",
                    }
                },
                "checks": [
                    {
                        "rule": "mean_weight",
                        "point": "fill_weight",
                        "statistic": "mean",
                        "check": "mean >= 499.5",
                        "value": "500.2",
                        "limit": "499.5",
                        "passed": True,
                    },
                    {
                        "rule": "cpk_weight",
                        "point": "fill_weight",
                        "statistic": "cpk",
                        "check": "cpk >= 1.33",
                        "value": "0.91",
                        "limit": "1.33",
                        "passed": False,
                    },
                ],
            },
            ts=T0 + 300,
            lots=[LOT],
        )
        led.append(
            "lot.start",
            {"lot": "L-OTHER", "station": "filler-1", "product": "Ketchup", "gtin": GTIN},
            ts=T0 + 400,
            lots=["L-OTHER"],
        )
        led.append(
            "lot.end",
            {"lot": "L-OTHER", "station": "filler-1", "aggregates": {}, "checks": []},
            ts=T0 + 420,
            lots=["L-OTHER"],
        )
        led.append(
            "alarm",
            _alarm("tank_level_low", "tank_level", "activated", "normal", "active_unack", "12"),
            ts=T0 + 460,
        )
        led.append(
            "alarm",
            _alarm("door_open", "door", "activated", "normal", "active_unack", "1"),
            ts=T0 + 470,
        )
        led.append(
            "alarm.shelve",
            {
                **_alarm("door_open", "door", "shelved", "active_unack", "active_unack", "1"),
                "comment": "maintenance",
                "until": datetime.fromtimestamp(T0 + 86400, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            },
            ts=T0 + 475,
            actor="bob",
        )
        for n in range(BULK):
            code = f"BULK-{n:03d}"
            led.append(
                "lot.start", {"lot": code, "station": "filler-1"}, ts=T0 + 500 + 2 * n, lots=[code]
            )
            led.append(
                "lot.end",
                {"lot": code, "station": "filler-1", "aggregates": {}, "checks": []},
                ts=T0 + 501 + 2 * n,
                lots=[code],
            )
        led.commit(now=T0 + 700)
    packer_db = db.with_name(db.stem + "-packer.db")
    with Ledger.open(packer_db, packer) as led:
        led.append(
            "node.start",
            {
                "node_id": "packer-gw",
                "site": "plant-1",
                "version": "0.1.0",
                "config_hash": "d" * 64,
            },
            ts=T0 + 5,
        )
        led.append(
            "rules.change",
            {"hash": "3" * 64, "files": ["pack.yaml"], "rules": ["case_weight"]},
            ts=T0 + 6,
        )
        led.append("lot.start", {"lot": LOT, "station": "packer-1"}, ts=T0 + 350, lots=[LOT])
        end = led.append(
            "lot.end",
            {
                "lot": LOT,
                "station": "packer-1",
                "aggregates": {
                    "case_weight": {
                        "count": 20,
                        "mean": "6.02",
                        "min": "5.91",
                        "max": "6.10",
                        "std": "0.05",
                        "unit": "kg",
                    }
                },
                "checks": [
                    {
                        "rule": "case_weight",
                        "point": "case_weight",
                        "statistic": "min",
                        "check": "min >= 5.95",
                        "value": "5.91",
                        "limit": "5.95",
                        "passed": False,
                    }
                ],
            },
            ts=T0 + 380,
            lots=[LOT],
        )
        led.commit(now=T0 + 381)
        led.append(
            "correction",
            {"reason": "case scale was not tared", "corrects": end.id},
            ts=T0 + 390,
            refs=[end.id],
            actor="dave",
        )
        led.commit(now=T0 + 391)
    copy_feed(packer_db, db)
    for leftover in (
        packer_db,
        *(Path(f"{packer_db}{s}") for s in ("-wal", "-shm", ".lock", ".eqj")),
    ):
        leftover.unlink(missing_ok=True)
    (db.parent / "node.key.pub").write_text(filler.feed + "\n")
    add_trusted(db.parent / TRUST_FILE, packer.feed, "packer-gw")
    (db.parent / "filler.pub").write_text(filler.feed + "\n")
    (db.parent / "packer.pub").write_text(packer.feed + "\n")
    return WebScenario(db, filler.feed, packer.feed, weights)
