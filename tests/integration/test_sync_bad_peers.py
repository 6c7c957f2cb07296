"""Bad peers against real nodes: (e) a rogue node with an untrusted key, (f) a trusted feed altered
on disk, and a fuzzer publishing thousands of random, mutated, replayed and spoofed messages.

Nothing a peer sends may stop a node, grow its memory without bound, or get into its ledger
unverified: each test ends with the honest nodes converged and ``edge ledger verify`` clean.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sync_rig import EDGE, MqttBroker, SyncNode, make_nodes, wait_converged, wait_for

from edge.ledger.entry import make_entry
from edge.ledger.trust import TRUST_FILE, add_trusted
from edge.sync import wire

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MqttBroker]:
    b = MqttBroker(tmp_path / "broker")
    b.start()
    try:
        yield b
    finally:
        b.stop()


def sync_toml(broker: MqttBroker) -> str:
    return f'port = {broker.port}\nannounce_interval = "2s"\nrequest_timeout = "3s"\n'


def verify(node: SyncNode) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EDGE, "ledger", "verify", "-c", str(node.dir / "node.toml")],
        capture_output=True,
        text=True,
        timeout=120,
    )


def grows(node: SyncNode, than: int) -> bool:
    return len(node.entries().get(node.feed, [])) > than


def test_e_rogue_node_with_an_untrusted_key_is_ignored(tmp_path: Path, broker: MqttBroker) -> None:
    nodes = make_nodes(tmp_path, [("gw1", True), ("hub", False)], lambda _: sync_toml(broker))
    # the rogue trusts everyone; nobody trusts it
    (rogue,) = make_nodes(tmp_path / "rogue", [("rogue", True)], lambda _: sync_toml(broker))
    gw1, hub = nodes
    for n in nodes:
        add_trusted(rogue.dir / "data" / TRUST_FILE, str(n.key) + ".pub", n.name)
    try:
        for n in [*nodes, rogue]:
            n.start()
        wait_for(lambda: grows(rogue, 6) and grows(gw1, 6), 60, "everyone writing")
        wait_converged(nodes)
        # and it pushes its entries on the topic of a trusted feed (spoofing)
        asyncio.run(_spoof(broker, rogue, gw1))
        # gw1 ignores what comes on its own topics; the hub takes neither spoof
        wait_for(lambda: "reason=spoofed" in hub.log_text(), 30, "the hub counting a spoof")
        wait_for(lambda: 'reason="wrong feed"' in hub.log_text(), 30, "the hub rejecting a spoof")
        wait_converged(nodes)
        for n in nodes:
            assert rogue.feed not in n.entries(), f"{n.name} stored the rogue's feed"
            log = n.log_text()
            assert f"where={rogue.feed} reason=untrusted" in log, log[-2000:]
            assert n.alive()
        # the rogue replicates the trusted feeds all right: trust is one-way
        assert gw1.feed in rogue.entries()
    finally:
        for n in [*nodes, rogue]:
            n.close()
    for n in nodes:
        assert verify(n).returncode == 0, verify(n).stdout


async def _spoof(broker: MqttBroker, rogue: SyncNode, victim: SyncNode) -> None:
    # the rogue's feed as far as it signed it (its database, and its commit journal beyond)
    raws = [raw for *_, raw in rogue.rows(rogue.feed)]
    assert raws
    async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as c:
        topic = f"edge-sync/v1/{victim.name}/live/{victim.feed}"
        # rogue entries announced as the victim's feed, and as themselves on the victim's topic
        await c.publish(topic, wire.encode_entries(victim.feed, 0, raws, size=len(raws)), qos=1)
        await c.publish(topic, wire.encode_entries(rogue.feed, 0, raws, size=len(raws)), qos=1)


def _tamper(db: Path, feed: str) -> int:
    """Change the body of a readings digest of ``feed`` in ``db`` behind the ledger's back."""
    conn = sqlite3.connect(db)
    seq, raw = conn.execute(
        "SELECT seq, raw FROM entries WHERE feed = ? AND type = 'readings.digest' ORDER BY seq",
        (feed,),
    ).fetchone()
    changed = bytes(raw).replace(b'"count":', b'"count":1', 1)
    assert changed != bytes(raw)
    conn.execute("DROP TRIGGER entries_no_update")
    conn.execute("UPDATE entries SET raw = ? WHERE feed = ? AND seq = ?", (changed, feed, seq))
    conn.commit()
    conn.close()
    return int(seq)


def test_f_feed_altered_on_disk_is_rejected_with_an_alarm(
    tmp_path: Path, broker: MqttBroker
) -> None:
    nodes = make_nodes(tmp_path, [("gw1", True), ("hub", False)], lambda _: sync_toml(broker))
    gw1, hub = nodes
    # a node that joins later and must fetch gw1's feed from whoever holds it
    (late,) = make_nodes(tmp_path / "late", [("late", False)], lambda _: sync_toml(broker))
    add_trusted(late.dir / "data" / TRUST_FILE, str(gw1.key) + ".pub", "gw1")
    try:
        for n in nodes:
            n.start()
        wait_for(lambda: grows(gw1, 8), 60, "gw1 writing")
        wait_converged(nodes)
        for n in nodes:
            assert n.stop() == 0
        seq = _tamper(hub.db, gw1.feed)  # the hub's copy of gw1's feed is altered
        hub.start()
        late.start()  # gw1 stays down: the hub is the only one holding gw1's feed
        wait_for(lambda: "event=sync.rejected" in late.log_text(), 60, "the late node's alarm")
        log = late.log_text()
        assert f"feed={gw1.feed}" in log
        assert 'reason="broken chain"' in log
        # nothing from the altered batch on: what it stored of gw1 ends before the altered entry
        assert len(late.entries().get(gw1.feed, [])) <= seq
        gw1.start()
        wait_converged([gw1, late], [gw1])  # the real feed comes from its writer
    finally:
        for n in [*nodes, late]:
            n.close()
    result = verify(late)
    assert result.returncode == 0, result.stdout
    assert verify(hub).returncode == 1  # the hub's own copy is what was altered


def _mutate(rng: random.Random, payload: bytes) -> bytes:
    m = bytearray(payload)
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        if op < 0.5 and m:
            m[rng.randrange(len(m))] = rng.randrange(256)
        elif op < 0.7 and m:
            del m[rng.randrange(len(m)) :]
        elif op < 0.85:
            m[rng.randrange(len(m) + 1) : 0] = rng.randbytes(rng.randint(1, 40))
        elif len(m) > 2:
            m[1] = rng.choice(b"HCQEZ")
    return bytes(m)


async def _fuzz(broker: MqttBroker, nodes: list[SyncNode], count: int, seed: int) -> int:
    """Capture the real traffic for a while, then publish ``count`` bad messages."""
    rng = random.Random(seed)
    seen: list[tuple[str, bytes]] = []
    async with aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5) as c:
        await c.subscribe("edge-sync/#", qos=1)
        try:
            async with asyncio.timeout(4):
                async for msg in c.messages:
                    if isinstance(msg.payload, bytes) and msg.payload:
                        seen.append((str(msg.topic), msg.payload))
        except TimeoutError:
            pass
        assert seen, "no sync traffic to mutate"
        feeds = [n.feed for n in nodes]
        names = [n.name for n in nodes] + ["mallory"]
        # a huge valid-looking batch of a trusted feed's topic with made-up entries
        fake = [
            make_entry(feed=feeds[0], seq=i, prev=None, ts=0.0, type="alarm", body={}).raw
            for i in range(50)
        ]
        sent = 0
        for i in range(count):
            kind = rng.choice(["head", "cosig", "live", "req", "resp"])
            name, feed = rng.choice(names), rng.choice(feeds)
            target = rng.choice(names)
            topic = {
                "head": f"edge-sync/v1/{name}/head/{feed}",
                "cosig": f"edge-sync/v1/{name}/cosig/{feed}",
                "live": f"edge-sync/v1/{name}/live/{feed}",
                "req": f"edge-sync/v1/{name}/req/{target}",
                "resp": f"edge-sync/v1/{name}/resp/{target}",
            }[kind]
            roll = rng.random()
            if roll < 0.2:
                payload = rng.randbytes(rng.randint(0, 300))
            elif roll < 0.3:
                topic, payload = rng.choice(seen)  # a replay, verbatim
            elif roll < 0.4:
                payload = wire.encode_entries(feed, rng.randint(0, 60), fake[: rng.randint(1, 50)],
                                              size=rng.randint(0, 99))  # fmt: skip
            elif roll < 0.45:
                payload = bytes([1, 69]) + b"\x00\x00\x00\x10" + rng.randbytes(200)
            else:
                real_topic, real = rng.choice(seen)
                payload = _mutate(rng, real)
                if rng.random() < 0.5:
                    topic = real_topic
            props = None
            if kind in ("req", "resp") and rng.random() < 0.7:
                props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                props.CorrelationData = rng.randbytes(rng.choice([0, 4, 16, 100]) or 1)
                props.ResponseTopic = f"edge-sync/v1/{target}/resp/{name}"
            await c.publish(topic, payload, qos=rng.choice([0, 1]), properties=props,
                            retain=rng.random() < 0.05)  # fmt: skip
            sent += 1
            if i % 200 == 0:
                await asyncio.sleep(0.05)  # let the nodes breathe; a flood is another test
    return sent


def _rss_kb(node: SyncNode) -> int:
    assert node.proc is not None
    for line in Path(f"/proc/{node.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_fuzzed_messages_never_stop_a_node(tmp_path: Path, broker: MqttBroker) -> None:
    nodes = make_nodes(tmp_path, [("gw1", True), ("hub", False)], lambda _: sync_toml(broker))
    gw1, hub = nodes
    try:
        for n in nodes:
            n.start()
        wait_for(lambda: grows(gw1, 6), 60, "gw1 writing")
        wait_converged(nodes)
        rss = {n.name: _rss_kb(n) for n in nodes}
        sent = asyncio.run(_fuzz(broker, nodes, count=4000, seed=13))
        assert sent == 4000
        for n in nodes:
            assert n.alive(), n.log_text()[-3000:]
            # bounded: queues and buffers are capped; 64 MB is far above what they may hold
            assert _rss_kb(n) < rss[n.name] + 64_000, (n.name, rss[n.name], _rss_kb(n))
        kept = len(gw1.entries()[gw1.feed])
        wait_for(lambda: grows(gw1, kept + 2), 60, "gw1 still writing")
        wait_converged(nodes)  # and still replicating
        assert "event=sync.ignored" in hub.log_text()
    finally:
        for n in nodes:
            n.close()
    for n in nodes:
        result = verify(n)
        assert result.returncode == 0, result.stdout + result.stderr
    # none of the made-up entries got in
    for n in nodes:
        assert set(n.entries()) == {gw1.feed, hub.feed}
