"""A real node publishing to a real Mosquitto, for the outbox tests and benches.

- a firmware-sim scenario with Modbus TCP points that cross a limit on a square wave (the
  simulator runs in the test process, so the instant a value crosses is known on its clock);
- the node config and rules for it, with ``[mqtt]`` pointing at the test's broker;
- :class:`Subscriber`: an MQTT client in a thread of its own (persistent session, QoS 1) that
  records every message with its arrival time (``time.monotonic``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import orjson

from edge.cli.ledger_query import sync_node
from edge.ledger.entry import parse_entry
from edge.outbox_payloads import STREAMS, message_of

EDGE = [sys.executable, "-m", "edge"]


def scenario_yaml(points: int, period: float, waves: int = 1) -> str:
    """``waves`` square-wave points (0 <-> 10, ``period``) and ``points - waves`` constants."""
    lines = [
        "name: outbox-rig",
        "buses:",
        "  plc: {kind: tcp, port: 0}",
        "devices:",
        "  plc:",
        "    bus: plc",
        "    unit: 1",
        "    points:",
    ]
    for i in range(points):
        if i < waves:
            model = (
                f"model: {{kind: square, low: 0, high: 10, period: {period * 1000:g}ms, step: 1ms}}"
            )
        else:
            model = f"value: {i}"
        lines.append(f"      p{i}: {{register: {i}, type: uint16, {model}}}")
    return "\n".join(lines) + "\n"


def node_toml(port: int, broker_port: int, points: int, poll: str, *, extra_mqtt: str = "") -> str:
    out = [
        '[node]\nid = "gw1"\ndata_dir = "data"\n',
        f'[buses.plc]\nkind = "tcp"\naddress = "127.0.0.1:{port}"\ntimeout = "200ms"\n',
        f'[devices.plc]\nbus = "plc"\nunit = 1\npoll = "{poll}"\n',
    ]
    for i in range(points):
        out.append(f'[points.p{i}]\ndevice = "plc"\nregister = {i}\ntype = "uint16"\n')
    out.append('[rules]\nfiles = ["rules.yaml"]\n')
    out.append('[ledger]\nflush_interval = "50ms"\n')
    out.append(f'[mqtt]\nhost = "127.0.0.1"\nport = {broker_port}\n{extra_mqtt}')
    return "\n".join(out)


def rules_yaml(waves: int, *, steady: bool = False) -> str:
    """A limit rule (no delays) on each wave; ``steady``: one on p<waves> (always above)."""
    out = ["version: 1", "rules:"]
    for i in range(waves):
        out += [f"  - id: wave{i}-high", "    kind: limit", f"    point: p{i}", "    high: 5",
                "    severity: high"]  # fmt: skip
    if steady:
        out += ["  - id: steady-high", "    kind: limit", f"    point: p{waves}", "    high: 0",
                "    severity: medium"]  # fmt: skip
    return "\n".join(out) + "\n"


def start_node(node_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*EDGE, "run", "-c", str(node_dir / "node.toml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop_node(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> str:
    """SIGTERM, wait; the node's stderr."""
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err.decode()


def persistent_broker_conf(conf: Path, port: int, store: Path) -> None:
    """A broker that keeps sessions and queued QoS 1 messages across its restarts."""
    store.mkdir(parents=True, exist_ok=True)
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        f"persistence_location {store}/\nmax_queued_messages 1000000\n"
    )


@dataclass(frozen=True, slots=True)
class Got:
    topic: str
    payload: bytes
    retain: bool
    at: float  #: time.monotonic() at arrival


class Subscriber:
    """Subscribes to ``topic`` in a thread of its own; reconnects while the broker is away."""

    def __init__(
        self, port: int, topic: str, *, client_id: str = "", persistent: bool = True
    ) -> None:
        self.port, self.topic = port, topic
        self.client_id = client_id or f"sub-{id(self)}"
        self.persistent = persistent
        self.got: list[Got] = []
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> Subscriber:
        self._thread.start()
        if not self.ready.wait(15):
            raise RuntimeError("subscriber did not connect")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    async def _main(self) -> None:
        while not self._stop.is_set():
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.port,
                    identifier=self.client_id,
                    clean_session=not self.persistent,
                    max_queued_incoming_messages=0,
                ) as client:
                    await client.subscribe(self.topic, qos=1)
                    self.ready.set()
                    messages = client.messages
                    while not self._stop.is_set():
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(0.2):
                                m = await anext(messages)
                                payload = m.payload if isinstance(m.payload, bytes) else b""
                                self.got.append(
                                    Got(m.topic.value, payload, m.retain, time.monotonic())
                                )
                    return
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    def payloads(self, part: str) -> list[dict[str, Any]]:
        """Non-empty JSON payloads on topics containing ``/<part>/`` (or ending ``/<part>``)."""
        return [
            orjson.loads(g.payload)
            for g in list(self.got)
            if g.payload and (f"/{part}/" in g.topic or g.topic.endswith(f"/{part}"))
        ]


def dedup(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """First occurrence of each entry id, in arrival order (what a subscriber keeps)."""
    seen: set[str] = set()
    out = []
    for p in payloads:
        if p["id"] not in seen:
            seen.add(p["id"])
            out.append(p)
    return out


def ledger_messages(db: Path, stream: str, prefix: str = "edge/gw1") -> list[dict[str, Any]]:
    """The payloads the ledger's entries of ``stream`` make, in seq order (the oracle).

    A running node is asked first to move its commit journal into the database (as ``edge
    ledger query`` does), so the database holds every entry committed until now.
    """
    types = STREAMS[stream]
    if not db.exists():
        return []
    sync_node(db, db.parent / "control.sock")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            f"SELECT raw FROM entries WHERE type IN ({','.join('?' * len(types))}) ORDER BY seq",
            types,
        ).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()
    return [message_of(parse_entry(raw), prefix)[1] for (raw,) in rows]


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
