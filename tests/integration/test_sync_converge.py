"""Three real nodes (two gateways on firmware-sim, one hub) converge through a real Mosquitto.

Issue 13's scenarios (a) normal operation, (b) a node SIGKILLed and restarted, (c) the broker
stopped for 30 s, (d) a node's database deleted and restored from peers, (g) a node's database
replaced by an older backup. "Converged" means every node holds every feed as far as its writer
had it when checked, with the same ids (:func:`sync_rig.converged`).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sync_rig import EDGE, MqttBroker, SyncNode, make_nodes, wait_converged, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[MqttBroker, list[SyncNode]]]:
    broker = MqttBroker(tmp_path / "broker")
    broker.start()
    nodes = make_nodes(
        tmp_path,
        [("gw1", True), ("gw2", True), ("hub", False)],
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


def grows(node: SyncNode, than: int) -> bool:
    return len(node.entries().get(node.feed, [])) > than


def test_a_normal_operation_converges(rig: tuple[MqttBroker, list[SyncNode]]) -> None:
    _, nodes = rig
    gw1, gw2, hub = nodes
    wait_for(lambda: grows(gw1, 8) and grows(gw2, 8), 60, "gateways writing")
    wait_converged(nodes)
    held = hub.entries()
    assert set(held) == {gw1.feed, gw2.feed, hub.feed}  # the hub replicates every trusted feed
    # a gateway's entries reach the others live: readings digests every few seconds
    before = len(held[gw1.feed])
    wait_for(lambda: len(hub.entries()[gw1.feed]) > before, 30, "live entries on the hub")
    wait_converged(nodes)
    for n in nodes:
        assert n.alive(), n.log_text()
    # witnessing: each node cosigns the others' checkpoints it stored, and they learn of it
    wait_for(lambda: {gw2.feed, hub.feed} <= gw1.cosigners(gw1.feed), 30, "gw1 witnessed")
    assert {gw1.feed, gw2.feed} <= hub.cosigners(hub.feed)
    # edge ledger status on the hub: per feed, the heads its peers announced
    out = subprocess.run([*EDGE, "ledger", "status", "-c", str(hub.dir / "node.toml"), "--json"],
                         capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    feeds = {f["feed"]: f for f in json.loads(out.stdout)["feeds"]}
    assert {p["peer"] for p in feeds[gw1.feed]["peers"]} >= {"gw1", "gw2"}
    assert not feeds[gw1.feed]["forked"]
    # a clean stop pushes its last entries (node.stop) before the sync task ends
    assert gw1.stop() == 0
    wait_converged([gw2, hub], [gw1])


def test_b_a_node_killed_and_restarted_converges(rig: tuple[MqttBroker, list[SyncNode]]) -> None:
    _, nodes = rig
    gw1, gw2, _hub = nodes
    wait_for(lambda: grows(gw1, 4) and grows(gw2, 4), 60, "gateways writing")
    wait_converged(nodes)
    gw1.kill()
    kept = len(gw2.entries()[gw2.feed])
    wait_for(lambda: grows(gw2, kept + 2), 60, "gw2 writing while gw1 is down")
    gw1.start()
    wait_converged(nodes)
    assert gw1.alive()


def test_c_broker_stopped_30s_converges(rig: tuple[MqttBroker, list[SyncNode]]) -> None:
    broker, nodes = rig
    gw1, gw2, _ = nodes
    wait_for(lambda: grows(gw1, 4) and grows(gw2, 4), 60, "gateways writing")
    wait_converged(nodes)
    broker.stop()
    before = {n.name: n.recorded() for n in (gw1, gw2)}
    time.sleep(30)
    # the gateways kept recording while the broker was away (signed at the journal's pace
    # again without peers: what counts is what is durable, in the database or the journal)
    assert all(n.recorded() > before[n.name] for n in (gw1, gw2))
    broker.start()
    wait_converged(nodes, within=90)
    assert all(n.alive() for n in nodes)
    assert "sync.disconnected" in gw1.log_text()


def _delete_db(node: SyncNode) -> None:
    for path in node.db.parent.glob("ledger.db*"):
        path.unlink()


def test_d_deleted_database_is_restored_from_peers(rig: tuple[MqttBroker, list[SyncNode]]) -> None:
    _, nodes = rig
    gw1, gw2, hub = nodes
    wait_for(lambda: grows(gw1, 8), 60, "gw1 writing")
    wait_converged(nodes)
    assert gw1.stop() == 0
    wait_converged([gw2, hub], [gw1])
    history = gw2.entries()[gw1.feed]
    _delete_db(gw1)
    gw1.start()
    # its feed comes back from its peers before it appends: the old ids, then new entries
    wait_for(lambda: grows(gw1, len(history)), 60, "gw1 appending again")
    assert gw1.entries()[gw1.feed][: len(history)] == history
    assert "sync.restored" in gw1.log_text()
    # the restore is on its own feed, and so is what it could not bring back: the raw readings
    # of the restored digests (sync does not replicate them), named by a `lost` prune after it
    wait_for(lambda: "readings.prune" in gw1.types(gw1.feed), 60, "the lost prune on gw1")
    types = gw1.types(gw1.feed)
    assert types.index("ledger.rollback") < types.index("readings.prune")
    bodies = gw1.bodies(gw1.feed, "readings.prune")
    assert [b["reason"] for b in bodies] == ["lost"]
    # the blocks of the restored digests (gw1 may have closed new ones since: not these)
    restored = gw2.types(gw1.feed)[: len(history)].count("readings.digest")
    restored_blocks = {b["block"] for b in gw2.bodies(gw1.feed, "readings.digest")[:restored]}
    lost = set(range(bodies[0]["blocks"][0][0], bodies[0]["blocks"][-1][1] + 1))
    assert restored_blocks
    assert restored_blocks <= lost
    # new blocks continue after the restored ones; the restored node's ledger verifies
    wait_for(lambda: max(b["block"] for b in gw1.bodies(gw1.feed, "readings.digest"))
             > max(restored_blocks), 60, "a new readings block on gw1")  # fmt: skip
    out = subprocess.run([*EDGE, "ledger", "verify", "-c", str(gw1.dir / "node.toml")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    wait_converged(nodes)


def test_g_older_backup_is_detected_and_not_appended_over(
    rig: tuple[MqttBroker, list[SyncNode]], tmp_path: Path
) -> None:
    _, nodes = rig
    gw1, gw2, hub = nodes
    wait_for(lambda: grows(gw1, 6), 60, "gw1 writing")
    backup = tmp_path / "backup.db"
    src = sqlite3.connect(f"file:{gw1.db}?mode=ro", uri=True)
    dst = sqlite3.connect(backup)
    src.backup(dst)
    src.close()
    # closed before the file moves: SQLite shares one WAL index per inode within a process
    old = dst.execute("SELECT count(*) FROM entries WHERE feed = ?", (gw1.feed,)).fetchone()[0]
    dst.close()
    wait_for(lambda: grows(gw1, old + 4), 60, "gw1 writing past the backup")
    assert gw1.stop() == 0
    wait_converged([gw2, hub], [gw1])
    history = hub.entries()[gw1.feed]
    assert len(history) > old
    _delete_db(gw1)
    backup.rename(gw1.db)
    gw1.start()
    wait_for(lambda: grows(gw1, len(history)), 60, "gw1 appending again")
    # the entries written after the backup came back from peers; nothing was appended over them
    assert gw1.entries()[gw1.feed][: len(history)] == history
    log = gw1.log_text()
    assert "sync.restored" in log
    assert "sync.own_behind" in log  # the alarm
    # and the node records on its own feed that it was found behind, for every holder to see
    wait_for(lambda: "ledger.rollback" in hub.types(gw1.feed), 30, "ledger.rollback on the hub")
    wait_converged(nodes)
    # the readings of the blocks written after the backup are recorded as lost; it verifies
    wait_for(lambda: "readings.prune" in gw1.types(gw1.feed), 60, "the lost prune on gw1")
    assert [b["reason"] for b in gw1.bodies(gw1.feed, "readings.prune")] == ["lost"]
    out = subprocess.run([*EDGE, "ledger", "verify", "-c", str(gw1.dir / "node.toml")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    # the hub and gw2 never saw a second history of gw1's feed
    assert "sync.fork" not in hub.log_text() + gw2.log_text()
