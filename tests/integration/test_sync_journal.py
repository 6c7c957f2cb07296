"""Sync nodes keep the commit journal on (the default): an alarm reaches a peer within seconds,
verified, while it still waits in its writer's journal; a node SIGKILLed right after loses
nothing and does not take its peers' copy for a rollback.

Two real ``edge run`` nodes (a gateway on firmware-sim's demo line, whose cooling fails 4 s in,
and a hub) and a real Mosquitto (:mod:`sync_rig`).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sync_rig import EDGE, MqttBroker, SyncNode, make_nodes, wait_converged, wait_for

from edge.ledger.signing import LIVE_SIGN_AGE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: From an alarm's timestamp to the hub holding it: the writer signs within LIVE_SIGN_AGE,
#: then a push and a verified store (seconds of slack for a loaded 2-core machine).
BOUND = LIVE_SIGN_AGE + 4.0


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[MqttBroker, list[SyncNode]]]:
    broker = MqttBroker(tmp_path / "broker")
    broker.start()
    nodes = make_nodes(
        tmp_path,
        [("gw1", True), ("hub", False)],
        lambda name: f'port = {broker.port}\nannounce_interval = "2s"\nrequest_timeout = "3s"\n',
    )
    try:
        for n in nodes:
            n.start()
        yield broker, nodes
    finally:
        for n in nodes:
            n.close()
        broker.stop()


def alarms(node: SyncNode, feed: str) -> list[tuple[str, float]]:
    """(id, ts as epoch seconds) of ``feed``'s alarm entries in ``node``'s database file."""
    try:
        conn = sqlite3.connect(f"file:{node.db}?mode=ro", uri=True, timeout=5)
        try:
            rows = conn.execute(
                "SELECT id, raw FROM entries WHERE feed = ? AND type = 'alarm' ORDER BY seq",
                (feed,),
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []
    return [(i, datetime.fromisoformat(json.loads(r)["ts"]).timestamp()) for i, r in rows]


def stored(node: SyncNode, feed: str) -> list[str]:
    """The ids of ``feed``'s entries in ``node``'s database file alone (no journal)."""
    conn = sqlite3.connect(f"file:{node.db}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT id FROM entries WHERE feed = ? ORDER BY seq", (feed,))
        return [r[0] for r in rows]
    finally:
        conn.close()


def test_an_alarm_replicates_from_the_journal_and_a_kill_loses_nothing(
    rig: tuple[MqttBroker, list[SyncNode]],
) -> None:
    _, nodes = rig
    gw1, hub = nodes
    # the demo line's cooling failure raises tunnel-temp-high ~9 s after the start
    wait_for(lambda: alarms(hub, gw1.feed), 90, "gw1's alarm on the hub")
    seen = time.time()
    alarm_id, alarm_ts = alarms(hub, gw1.feed)[0]
    latency = seen - alarm_ts
    print(f"\nalarm on the hub {latency:.2f} s after its timestamp (bound {BOUND:g} s)")
    assert latency < BOUND, latency
    # it came from gw1's commit journal: gw1's database does not hold it yet (moved every 120 s)
    assert alarm_id not in [i for i, _ in alarms(gw1, gw1.feed)]
    # SIGKILL gw1 right after, its alarm still only in the journal
    gw1.kill()
    held_by_hub = hub.entries()[gw1.feed]
    assert alarm_id in held_by_hub
    # the hub verified and stored it: edge ledger verify on the hub says the file is whole
    out = subprocess.run([*EDGE, "ledger", "verify", "-c", str(hub.dir / "node.toml")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    gw1.start()
    # the restart moves the journal first: gw1 holds everything the hub got of it, same ids,
    # and takes nothing back from the hub (no restore, no rollback on its feed)
    wait_for(lambda: gw1.log_text().count("event=node.started") == 2, 60, "gw1 running again")
    assert len(stored(gw1, gw1.feed)) >= len(held_by_hub)
    assert stored(gw1, gw1.feed)[: len(held_by_hub)] == held_by_hub
    # and it goes on: its new entries (still in its journal) reach the hub, verified
    in_db = len(stored(gw1, gw1.feed))
    wait_for(lambda: len(hub.entries()[gw1.feed]) > max(in_db, len(held_by_hub)) + 2, 60,
             "gw1's new entries on the hub")  # fmt: skip
    assert hub.entries()[gw1.feed][: len(held_by_hub)] == held_by_hub
    wait_converged(nodes)
    log = gw1.log_text()
    assert "sync.restored" not in log
    assert "sync.own_behind" not in log
    assert "ledger.rollback" not in gw1.types(gw1.feed)
    assert gw1.alive(), log[-3000:]
