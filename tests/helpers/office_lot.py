"""A lot with raw readings (``import office_lot``; tests/office/conftest.py has the fixture), alarms and lot-end checks computed by the real rule code.

The lot's readings go through the real ledger (blocks + digests); its aggregates are computed
from them and its checks by :func:`edge.rules.lots.check_lot` on lot rules loaded from YAML, so
the report shows what a node would have recorded.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edge.ledger.canonical import decimal
from edge.ledger.keys import create_key_file
from edge.ledger.store import Ledger
from edge.readings import Quality, Reading
from edge.rules.loader import load_rules
from edge.rules.lots import aggregate_of, check_lot
from edge.rules.model import LotRule

T0 = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC).timestamp()
LOT = "L-2611-R"
SPIKE = 150  #: index of the fill-weight reading far above the limits (Nelson rule 1)
SHIFT = range(300, 320)  #: a run above the centre line (Nelson rule 2 from its 9th point)

RULES = """\
version: 1
lot: lot_code
rules:
  - id: fill-weight-high
    kind: limit
    point: fill_weight
    high: 505 g
  - id: fill-weight-spc
    kind: spc
    point: fill_weight
    baseline: 100
    nelson: [1, 2]
  - id: fill-weight-lot
    kind: lot
    point: fill_weight
    low: 495 g
    high: 505 g
    checks: ["count >= 10", "cpk >= 2.0"]
  - id: torque-lot
    kind: lot
    point: cap_torque
    low: 1.9 N·m
    high: 2.5 N·m
    checks: ["mean >= 2.0 N·m"]
"""

NODE_TOML = """\
[node]
id = "filler-gw"
site = "plant-1"
data_dir = "{data}"
timezone = "Asia/Tokyo"

[buses.plc]
kind = "tcp"
address = "127.0.0.1:5020"

[devices.filler]
bus = "plc"
unit = 1

[points.fill_weight]
device = "filler"
register = 0
type = "uint16"
scale = 0.1
unit = "g"

[points.cap_torque]
device = "filler"
register = 2
type = "float32"
unit = "N·m"
resolution = 0.001

[points.lot_code]
device = "filler"
register = 10
type = "string"
length = 4

[rules]
files = ["rules.yaml"]
"""


@dataclass
class LotLedger:
    db: Path
    config: Path
    feed: str
    fill: list[float]
    torque: list[float]
    stale: int  #: stale readings stored (must not be charted)


def fill_values() -> list[float]:
    rng = random.Random(7)
    values = [round(500 + rng.gauss(0, 0.8), 1) for _ in range(600)]
    values[SPIKE] = 509.0
    for i in SHIFT:
        values[i] = round(501.5 + abs(rng.gauss(0, 0.3)), 1)
    return values


def build_lot_ledger(root: Path) -> LotLedger:
    root.mkdir(parents=True, exist_ok=True)
    (root / "rules.yaml").write_text(RULES, encoding="utf-8")
    config = root / "node.toml"
    config.write_text(NODE_TOML.format(data=root), encoding="utf-8")
    key = create_key_file(root / "node.key")
    ruleset = load_rules([root / "rules.yaml"])
    db = root / "ledger.db"
    fill = fill_values()
    torque = [round(2.2 + 0.05 * math.sin(i / 7), 4) for i in range(len(fill))]
    start = T0 + 10
    with Ledger.open(db, key) as led:
        led.append(
            "node.start",
            {
                "node_id": "filler-gw",
                "site": "plant-1",
                "version": "0.1.0",
                "config_hash": "c" * 64,
            },
            ts=T0,
        )
        led.append(
            "rules.change",
            {"hash": ruleset.hash, "files": ["rules.yaml"], "rules": [r.id for r in ruleset.rules]},
            ts=T0 + 1,
        )
        led.append("lot.start", {"lot": LOT, "station": "filler-1"}, ts=start, lots=[LOT])
        readings: list[Reading] = []
        for i, (w, t) in enumerate(zip(fill, torque, strict=True)):
            ts = start + 0.1 * i
            readings.append(Reading("fill_weight", ts, w, Quality.GOOD, "g"))
            readings.append(Reading("cap_torque", ts, t, Quality.GOOD, "N·m"))
        stale = [
            Reading("fill_weight", start + 0.1 * i + 0.05, 400.0, Quality.STALE, "g")
            for i in range(5)
        ]
        readings += stale
        readings.sort(key=lambda r: r.ts)
        for k in range(0, len(readings), 400):
            led.append_readings(readings[k : k + 400])
        spike_ts = start + 0.1 * SPIKE
        alarm = {"rule": "fill-weight-high", "kind": "limit", "point": "fill_weight",
                 "limit": "505.0", "unit": "g", "severity": "high", "message": "fill weight high"}  # fmt: skip
        led.append("alarm", {**alarm, "event": "activated", "from": "normal", "to": "active_unack",
                             "value": "509.0"}, ts=spike_ts, lots=[LOT])  # fmt: skip
        led.append("alarm", {**alarm, "event": "cleared", "from": "active_unack", "to": "rtn_unack",
                             "value": "500.1"}, ts=spike_ts + 0.3, lots=[LOT])  # fmt: skip
        end = start + 0.1 * len(fill)
        aggregates = {}
        results = []
        for point, values, unit in (("cap_torque", torque, "N·m"), ("fill_weight", fill, "g")):
            first = values[0]
            s = sum(v - first for v in values)
            ss = sum((v - first) ** 2 for v in values)
            agg = aggregate_of(len(values), first, s, ss, min(values), max(values), unit)
            aggregates[point] = {
                "count": agg.count, "mean": decimal(agg.mean), "min": decimal(agg.min),
                "max": decimal(agg.max), "std": decimal(agg.std), "unit": unit,
            }  # fmt: skip
            for rule in ruleset.rules:
                if isinstance(rule, LotRule) and rule.point == point:
                    results.extend(check_lot(rule, agg))
        checks = [
            {"rule": c.rule, "point": c.point, "statistic": c.stat, "check": c.text,
             "value": None if c.value is None else decimal(c.value), "limit": decimal(c.limit),
             "passed": c.passed}
            for c in results
        ]  # fmt: skip
        led.append(
            "lot.end",
            {"lot": LOT, "station": "filler-1", "aggregates": aggregates, "checks": checks},
            ts=end,
            lots=[LOT],
        )
        led.commit(now=end + 1)
    return LotLedger(db, config, key.feed, fill, torque, len(stale))
