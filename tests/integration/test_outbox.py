"""The ledger is the outbox (issue 14 points 1-3), with real processes and a real Mosquitto.

The judged test: under a steady load of alarms (square waves crossing a limit) the broker is
stopped for 60 s (``EDGE_TEST_OUTAGE`` seconds, to try it shorter by hand) and the node is
killed with SIGKILL once during the outage and started again; after broker and node return, a
subscriber has every alarm transition exactly once after de-duplication by entry id, in ledger
order, each payload equal to the one derived from its ledger entry.

Node status: a late subscriber sees ``online`` and the active alarm (retained); after a SIGKILL
it sees ``offline`` (the last will).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from outbox_rig import (
    Subscriber,
    dedup,
    ledger_messages,
    node_toml,
    persistent_broker_conf,
    rules_yaml,
    scenario_yaml,
    start_node,
    stop_node,
    wait_for,
)

from edge.firmware_sim import SimulatorThread, load_scenario

pytestmark = pytest.mark.integration

OUTAGE = float(os.environ.get("EDGE_TEST_OUTAGE", "60"))
WAVES = 3  # rules toggling every 0.5 s: 6 alarm transitions a second


@pytest.fixture
def rig(tmp_path: Path, broker) -> Iterator[tuple[Path, object]]:  # type: ignore[no-untyped-def]
    """A node directory served by firmware-sim over Modbus TCP; the broker made persistent."""
    broker.stop()
    persistent_broker_conf(broker.conf, broker.port, tmp_path / "mosquitto")
    broker.start()
    sc = tmp_path / "rig.yaml"
    sc.write_text(scenario_yaml(WAVES + 1, 1.0, waves=WAVES))
    with SimulatorThread(load_scenario(sc), tmp_path) as sim:
        _, port = sim.tcp_endpoints["plc"]
        (tmp_path / "node.toml").write_text(node_toml(port, broker.port, WAVES + 1, "50ms"))
        (tmp_path / "rules.yaml").write_text(rules_yaml(WAVES, steady=True))
        yield tmp_path, broker


def _assert_matches_ledger(sub: Subscriber, db: Path) -> tuple[int, int]:
    """Every alarm transition once, in order, equal to its entry's payload; (count, dups)."""
    got = sub.payloads("alarms")
    kept = dedup(got)
    expected = ledger_messages(db, "alarms")
    assert len(kept) == len(expected), (
        f"{len(kept)} distinct alarms received, ledger has {len(expected)}"
    )
    for i, (a, b) in enumerate(zip(kept, expected, strict=True)):
        assert a == b, f"alarm {i} (seq {b['seq']}) differs from its ledger entry"
    return len(expected), len(got) - len(kept)


@pytest.mark.slow
@pytest.mark.timeout(OUTAGE * 3 + 120)
def test_broker_outage_and_sigkill_lose_nothing_and_duplicate_nothing_after_dedup(rig) -> None:  # type: ignore[no-untyped-def]
    node_dir, broker = rig
    db = node_dir / "data" / "ledger.db"
    with Subscriber(broker.port, "edge/gw1/alarms/#", client_id="qa-dashboard") as sub:
        proc = start_node(node_dir)
        try:
            wait_for(lambda: len(sub.payloads("alarms")) >= 12, 60, "alarms before the outage")
            broker.stop()
            t0 = time.monotonic()
            time.sleep(OUTAGE / 2)
            before_kill = len(ledger_messages(db, "alarms"))
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=10)
            proc = start_node(node_dir)  # the node keeps recording while the broker is away
            time.sleep(max(0.0, OUTAGE - (time.monotonic() - t0)))
            during = len(ledger_messages(db, "alarms"))
            assert during > before_kill + OUTAGE, "the alarm load did not go on during the outage"
            broker.start()
            # the backlog arrives, then live alarms keep coming
            wait_for(lambda: len(dedup(sub.payloads("alarms"))) >= during, 60, "the backlog")
            time.sleep(2.0)
        finally:
            err = stop_node(proc)
        assert "Traceback" not in err, err
        # the clean stop delivers what it recorded (grace 1 s); give the subscriber the rest
        expected = len(ledger_messages(db, "alarms"))
        wait_for(lambda: len(dedup(sub.payloads("alarms"))) >= expected, 30, "the last alarms")
        time.sleep(0.5)
    count, dups = _assert_matches_ledger(sub, db)
    print(f"\n{count} alarm transitions delivered exactly once after de-dup ({dups} duplicates)")
    assert count >= 6 * OUTAGE  # a steady load: 6 a second
    events = {p["event"] for p in sub.payloads("alarms")}
    assert events >= {"activated", "cleared"}


def test_late_subscriber_sees_online_and_active_alarms_then_offline_after_sigkill(rig) -> None:  # type: ignore[no-untyped-def]
    node_dir, broker = rig
    db = node_dir / "data" / "ledger.db"
    proc = start_node(node_dir)
    try:
        wait_for(
            lambda: any(p["rule"] == "steady-high" for p in ledger_messages(db, "alarms")),
            60,
            "the steady alarm",
        )
        time.sleep(1.0)  # published by now (a few ms after its commit)
        with Subscriber(broker.port, "edge/gw1/#", persistent=False) as late:
            wait_for(lambda: late.payloads("status") and late.payloads("alarm_states"), 10,
                     "retained status and alarm states")  # fmt: skip
            retained = [g for g in late.got if g.retain]
            status = [orjson.loads(g.payload) for g in retained if g.topic == "edge/gw1/status"]
            assert status[-1]["state"] == "online"
            states = {
                g.topic.rpartition("/")[2]: orjson.loads(g.payload)
                for g in retained
                if "/alarm_states/" in g.topic and g.payload
            }
            assert states["steady-high"]["to"] == "active_unack"
            assert states["steady-high"]["event"] == "activated"
            latest = [p for p in ledger_messages(db, "alarms") if p["rule"] == "steady-high"]
            assert states["steady-high"] == latest[-1]  # the retained state is its entry's
            for rule, st in states.items():  # only alarms that are not normal are retained
                assert st["to"] != "normal", rule
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    with Subscriber(broker.port, "edge/gw1/status", persistent=False) as after:
        wait_for(
            lambda: any(p["state"] == "offline" for p in after.payloads("status")), 15, "the will"
        )
        last = after.payloads("status")[-1]
    assert last == {"v": 1, "node": "gw1", "state": "offline", "reason": "connection lost"}


def test_clean_stop_says_offline_stopped(rig) -> None:  # type: ignore[no-untyped-def]
    node_dir, broker = rig
    proc = start_node(node_dir)
    try:
        with Subscriber(broker.port, "edge/gw1/status", persistent=False) as sub:
            wait_for(lambda: any(p["state"] == "online" for p in sub.payloads("status")), 60,
                     "online")  # fmt: skip
            err = stop_node(proc)
            wait_for(lambda: sub.payloads("status")[-1]["state"] == "offline", 10, "offline")
            last = sub.payloads("status")[-1]
    finally:
        if proc.poll() is None:
            stop_node(proc)
    assert last["reason"] == "stopped", last
    assert "Traceback" not in err
