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
import socket
import time
import urllib.request
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
from prometheus_client.parser import text_string_to_metric_families

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


def test_sigkill_with_the_broker_up_resends_after_the_stored_cursor_and_dedup_restores_order(  # type: ignore[no-untyped-def]
    rig,
) -> None:
    # Cursors are stored lazily (every 5 s): a kill shortly after deliveries leaves the stored
    # cursor behind what the broker acknowledged, and the next run sends those again.
    node_dir, broker = rig
    db = node_dir / "data" / "ledger.db"
    with Subscriber(broker.port, "edge/gw1/alarms/#", client_id="qa-2") as sub:
        proc = start_node(node_dir)
        try:
            wait_for(lambda: len(sub.payloads("alarms")) >= 20, 60, "alarms")
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=10)
            seen = len(sub.payloads("alarms"))
            proc = start_node(node_dir)
            wait_for(lambda: len(sub.payloads("alarms")) >= seen + 12, 60, "alarms after restart")
        finally:
            err = stop_node(proc)
        assert "Traceback" not in err, err
        expected = len(ledger_messages(db, "alarms"))
        wait_for(lambda: len(dedup(sub.payloads("alarms"))) >= expected, 30, "the last alarms")
        time.sleep(0.5)
    count, dups = _assert_matches_ledger(sub, db)
    print(f"\n{count} alarm transitions, {dups} sent again after the kill")


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


def _scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def _scraped(port: int, name: str, **labels: str) -> float | None:
    try:
        return _scrape(port)[name][tuple(sorted(labels.items()))]
    except (OSError, KeyError):
        return None


def test_telemetry_batches_arrive_and_drops_under_an_outage_show_on_metrics(rig) -> None:  # type: ignore[no-untyped-def]
    node_dir, broker = rig
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        mport = s.getsockname()[1]
    toml = (node_dir / "node.toml").read_text()
    toml = toml.replace(
        "[mqtt]\n",
        '[mqtt]\ntelemetry = ["p0", "p3"]\ntelemetry_interval = "200ms"\ntelemetry_max_queued = 50\n',
    )
    (node_dir / "node.toml").write_text(f'{toml}\n[metrics]\nlisten = "127.0.0.1:{mport}"\n')
    with Subscriber(broker.port, "edge/gw1/telemetry/#", persistent=False) as sub:
        proc = start_node(node_dir)
        try:
            wait_for(lambda: len(sub.payloads("telemetry")) >= 5, 60, "telemetry batches")
            batches = sub.payloads("telemetry")
            points = {r["point"] for b in batches for r in b["readings"]}
            assert points == {"p0", "p3"}  # chosen points only (p1, p2 are not)
            assert all(b["v"] == 1 and b["device"] == "plc" for b in batches)
            assert all(r["quality"] == "good" for b in batches for r in b["readings"])
            assert _scraped(mport, "edge_telemetry_dropped_total") == 0.0
            broker.stop()  # 2 points x 20 polls/s wait; more than 50 drop the oldest
            wait_for(lambda: (_scraped(mport, "edge_telemetry_dropped_total") or 0) > 20, 30,
                     "telemetry drops counted on /metrics")  # fmt: skip
            assert _scraped(mport, "edge_telemetry_queued") == 50.0
            depth = _scraped(mport, "edge_outbox_depth", stream="alarms")
            assert depth is not None
            assert depth > 0  # the alarms wait meanwhile (not dropped)
            delivered = _scraped(mport, "edge_outbox_delivered_total", stream="alarms") or 0
            broker.start()
            wait_for(lambda: _scraped(mport, "edge_outbox_depth", stream="alarms") == 0.0, 60,
                     "the alarms delivered after the outage")  # fmt: skip
            after = _scraped(mport, "edge_outbox_delivered_total", stream="alarms") or 0
            assert after >= delivered + depth
        finally:
            err = stop_node(proc)
    assert "Traceback" not in err, err
