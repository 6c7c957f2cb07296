"""MQTT commands act as the broker user: a real Mosquitto with a password file and an ACL.

The broker binds the command topic's last level to the publisher's username (``pattern write
edge/+/cmd/%u``); the node (a real ``edge run`` against firmware-sim) records ``mqtt:<user>``
as the actor and refuses users its ``[operators]`` table does not list.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from node_db import sync_db

from edge.firmware_sim import SimulatorThread, load_scenario

pytestmark = pytest.mark.integration

EDGE = [sys.executable, "-m", "edge"]
USERS = {"gw": "gw-secret", "alice": "alice-secret", "mallory": "mallory-secret"}
CMD = "edge/demo-gw1/cmd"

# The ACL docs/reference/mqtt.md documents, for the node's broker user "gw".
ACL = """\
user gw
topic readwrite edge/demo-gw1/#

pattern write edge/+/cmd/%u
pattern read edge/+/cmd/%u/result
"""


@pytest.fixture
def secured_broker(broker, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The conftest broker restarted with a password file, an ACL and no anonymous access."""
    passwd = tmp_path / "passwd"
    passwd.touch(mode=0o600)
    for user, password in USERS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    broker.stop()
    broker.conf.write_text(
        f"listener {broker.port} 127.0.0.1\nallow_anonymous false\npersistence false\n"
        f"password_file {passwd}\nacl_file {acl}\n"
        # started as root, mosquitto drops to the user "mosquitto", who cannot read tmp_path
        + (f"user {getpass.getuser()}\n" if os.geteuid() == 0 else "")
    )
    broker.start()
    return broker


@pytest.fixture
def node_dir(tmp_path: Path, secured_broker) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    for name in ("node.toml", "tunnel.yaml"):
        with resources.as_file(resources.files("edge.demo") / name) as src:
            shutil.copyfile(src, tmp_path / name)
    toml = tmp_path / "node.toml"
    toml.write_text(
        toml.read_text() + f'\n[mqtt]\nhost = "127.0.0.1"\nport = {secured_broker.port}\n'
        'username = "gw"\npassword = "gw-secret"\n'
        '[operators]\nact = ["mqtt:alice"]\n'
    )
    with SimulatorThread(load_scenario("demo"), tmp_path, seed=3):
        yield tmp_path


def _entries(db: Path, type_: str) -> list[dict[str, Any]]:
    if not db.exists():
        return []
    sync_db(db)  # a running node's journal first, as edge ledger readers do
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT raw FROM entries WHERE type = ?", (type_,)).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()
    return [json.loads(r[0]) for r in rows]


async def _wait_for(predicate, within: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def _command(port: int, user: str, topic_user: str, command: dict[str, Any]) -> None:
    """Publish one command as ``user`` on ``cmd/<topic_user>`` (QoS 1: the broker took it)."""
    async with aiomqtt.Client("127.0.0.1", port, username=user, password=USERS[user]) as c:
        await c.publish(f"{CMD}/{topic_user}", json.dumps(command), qos=1)


async def test_commands_act_as_the_broker_user_and_strangers_are_refused(
    node_dir: Path, secured_broker
) -> None:  # type: ignore[no-untyped-def]
    port = secured_broker.port
    db = node_dir / "data" / "ledger.db"
    proc = subprocess.Popen(  # noqa: ASYNC220 - Popen returns at once; the node runs apart
        [*EDGE, "run", "-c", str(node_dir / "node.toml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    results: dict[str, list[dict[str, Any]]] = {"alice": [], "mallory": []}
    try:
        await _wait_for(
            lambda: any(e["body"]["event"] == "activated" for e in _entries(db, "alarm")),
            30,
            "the limit alarm",
        )
        async with asyncio.TaskGroup() as tg:
            listeners = []
            ready = [asyncio.Event(), asyncio.Event()]
            for user, ev in zip(results, ready, strict=True):

                async def listen(user: str = user, ev: asyncio.Event = ev) -> None:
                    async with aiomqtt.Client(
                        "127.0.0.1", port, username=user, password=USERS[user]
                    ) as c:
                        await c.subscribe(f"{CMD}/{user}/result", qos=1)
                        ev.set()
                        async for m in c.messages:
                            results[user].append(json.loads(m.payload))  # type: ignore[arg-type]

                listeners.append(tg.create_task(listen()))
            for ev in ready:
                await ev.wait()
            await asyncio.sleep(1.0)  # the node's subscription is up (it connected long ago)

            # 1. an unauthenticated client, or a wrong password, cannot even connect
            for creds in ({}, {"username": "alice", "password": "wrong"}):
                with pytest.raises(aiomqtt.MqttError):
                    async with aiomqtt.Client("127.0.0.1", port, **creds):
                        pass

            # 2. mallory, a broker user the node does not list, is refused by the node
            ack = {"action": "ack", "rule": "tunnel-temp-high", "actor": "alice"}
            await _command(port, "mallory", "mallory", {**ack, "comment": "not mine"})
            await _wait_for(lambda: results["mallory"], 15, "mallory's refusal")

            # 3. mallory on alice's topic: the broker drops it, the node never sees it
            await _command(port, "mallory", "alice", {**ack, "comment": "forged"})

            # 4. alice acknowledges, claiming to be someone else: she is recorded
            await _command(port, "alice", "alice", {**ack, "actor": "root", "comment": "seen"})
            await _wait_for(lambda: results["alice"], 15, "alice's result")
            await asyncio.sleep(0.5)  # room for any late (wrong) second result
            for t in listeners:
                t.cancel()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    log = err.decode()
    assert proc.returncode == 0, log

    assert results["mallory"] == [
        {"ok": False, "error": "mqtt:mallory may not ack: not in [operators] act"}
    ]
    assert results["alice"] == [{"ok": True, "events": ["acknowledged"]}]
    acks = _entries(db, "alarm.ack")
    assert [(a["actor"], a["body"]["comment"]) for a in acks] == [
        ("mqtt:alice", "seen [claimed actor: root]")
    ]
    # the refusal is logged; neither refused command left a trace on the ledger
    assert "event=mqtt.refused" in log
    assert "actor=mqtt:mallory" in log
    assert "forged" not in log
    sync_db(db)  # a running node's journal first, as edge ledger readers do
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        raw = b" ".join(bytes(r[0], "utf-8") if isinstance(r[0], str) else r[0]
                        for r in conn.execute("SELECT raw FROM entries"))  # fmt: skip
    finally:
        conn.close()
    assert b"not mine" not in raw
    assert b"forged" not in raw
    assert b"mallory" not in raw
