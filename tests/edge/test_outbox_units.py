"""Pure parts of the outbox: payloads from entries, the stream bookkeeping, telemetry, config."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import parse_config
from edge.errors import ConfigError
from edge.ledger import NodeKey
from edge.ledger.entry import make_entry
from edge.outbox import OutboxStats, Stream
from edge.outbox_payloads import alarm_state_payload, message_of
from edge.readings import Quality, Reading
from edge.telemetry import Telemetry

KEY = NodeKey.generate()


def _entry(
    seq: int, type_: str, body: dict[str, object], lots: tuple[str, ...] = (), actor: str = ""
):  # type: ignore[no-untyped-def]
    return make_entry(
        feed=KEY.feed, seq=seq, prev=None if seq == 0 else "0" * 64, ts=1_764_000_000.0 + seq,
        type=type_, body=body, lots=list(lots), actor=actor,
    )  # fmt: skip


def test_lot_end_payload_says_pass_fail_per_check_and_carries_aggregates() -> None:
    body = {
        "lot": "L7", "station": "s",
        "aggregates": {"w": {"count": 3, "mean": "500.5", "min": "499", "max": "502", "std": "1.5", "unit": "g"}},
        "checks": [
            {"rule": "w-mean", "point": "w", "statistic": "mean", "check": "mean >= 500", "value": "500.5", "limit": "500", "passed": True},
            {"rule": "w-cpk", "point": "w", "statistic": "cpk", "check": "cpk >= 1.33", "value": "0.9", "limit": "1.33", "passed": False},
        ],
    }  # fmt: skip
    e = _entry(4, "lot.end", body, ("L7",))
    topic, p = message_of(e, "edge/gw1")
    assert topic == "edge/gw1/lots/lot_end"
    assert p["passed"] is False
    assert p["failed"] == ["w-cpk"]
    assert p["aggregates"]["w"]["mean"] == "500.5"
    assert (p["v"], p["id"], p["feed"], p["seq"], p["node"]) == (1, e.id, KEY.feed, 4, "gw1")


def test_operator_ack_payload_has_authenticated_actor_and_comment() -> None:
    body = {"rule": "r", "kind": "rate", "point": "t", "event": "acknowledged", "from": "active_unack",
            "to": "active_ack", "value": "2", "limit": "1", "unit": "degC per 1m",
            "severity": "high", "message": "m", "comment": "door [claimed actor: j.doe]"}  # fmt: skip
    topic, p = message_of(_entry(2, "alarm.ack", body, ("L1",), "mqtt:panel"), "plant/gw1")
    assert topic == "plant/gw1/alarms/r"
    assert p["actor"] == "mqtt:panel"
    assert p["comment"] == "door [claimed actor: j.doe]"
    assert p["statistic"] == "rate"  # an entry without the field: the kind's default
    assert p["lot"] == "L1"
    assert alarm_state_payload(p) == p
    assert alarm_state_payload({**p, "to": "normal"}) is None  # deleted when back to normal


def test_correction_goes_to_actions() -> None:
    e = _entry(9, "correction", {"corrects": "ab" * 32, "reason": "why"}, ("L1",), "unix:qa")
    topic, p = message_of(e, "edge/gw1")
    assert topic == "edge/gw1/actions/correction"
    assert p["actor"] == "unix:qa"
    assert p["body"]["reason"] == "why"


def test_stream_overflow_goes_to_the_ledger_without_a_gap() -> None:
    s = Stream("alarms", memory=3)
    s.start(cursor=-1, durable_end=0)
    entries = [_entry(i, "alarm", {"rule": "r"}) for i in range(5)]
    for e in entries[:3]:
        s.offer(e)
    assert s.take_live() is entries[0]
    s.offer(entries[3])
    s.offer(entries[4])  # memory full (1, 2, 3): emptied, the stream reads the ledger
    assert s.stats.overflows == 1
    assert s.needs_ledger()
    assert s.take_live() is None
    assert (s.fetched, s.complete_after) == (0, 4)  # entries 1..4 come from the ledger
    s.fetched = 4  # (read back)
    assert s.take_live() is None
    assert s.stats.depth == 5


def test_stream_rewind_resends_unacknowledged_in_order() -> None:
    s = Stream("lots")
    s.start(cursor=-1, durable_end=0)
    es = [_entry(i, "lot.start", {"lot": f"L{i}"}) for i in range(3)]
    for e in es:
        s.offer(e)
    for _ in range(3):
        got = s.take_live()
        assert got is not None
        s.covered = got.seq
    s.acked(es[0], replayed=False, next_oldest=es[1].ts)
    s.rewind()  # connection lost with 1 and 2 in flight
    assert s.needs_ledger()
    assert (s.fetched, s.complete_after) == (0, 2)
    assert s.stats.cursor == 0
    assert s.stats.depth == 2
    assert s.stats.oldest == es[1].ts


def test_telemetry_drops_oldest_and_counts() -> None:
    stats = OutboxStats()
    t = Telemetry({"a", "b"}, {"a": "dev1", "b": "dev2"}, stats, max_queued=3)
    t.offer([Reading(p, float(i), float(i), Quality.GOOD, "g") for i, p in enumerate("aabbc")])
    assert stats.telemetry_dropped == 1  # five offered, "c" not chosen, one "a" over the limit
    msgs = dict(t.take("gw1"))
    assert [r["value"] for r in msgs["dev1"]["readings"]] == [1.0]
    assert [r["value"] for r in msgs["dev2"]["readings"]] == [2.0, 3.0]
    assert msgs["dev2"]["v"] == 1
    assert stats.telemetry_queued == 0


CFG = """
[node]
id = "gw1"
[buses.b]
kind = "tcp"
address = "127.0.0.1:5020"
[devices.d]
bus = "b"
[points.p]
device = "d"
register = 0
[mqtt]
telemetry = {names}
"""


def test_telemetry_names_must_be_points_or_devices(tmp_path: Path) -> None:
    cfg = parse_config(CFG.format(names='["p", "d"]'), tmp_path / "node.toml")
    assert cfg.mqtt is not None
    assert cfg.mqtt.telemetry == ("p", "d")
    with pytest.raises(ConfigError, match="'nope' is neither a point nor a device"):
        parse_config(CFG.format(names='["nope"]'), tmp_path / "node.toml")
