"""A sync test rig: Mosquitto brokers and real ``edge run`` node processes that trust each other.

Gateways poll the demo cooling tunnel (firmware-sim on a PTY of their own) and write their feed;
a hub has no devices. Every node trusts every other node's key (``trust.toml``), so each
replicates the three feeds. Feeds are compared straight from the nodes' databases (read-only),
a node's own feed with what its commit journal holds signed: a syncing node keeps the journal
on, so its database lags its feed by up to two minutes while peers get the entries live.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from edge.errors import StorageError
from edge.firmware_sim import SimulatorThread, load_scenario
from edge.ledger.journal import journal_entries, journal_path
from edge.ledger.keys import create_key_file
from edge.ledger.trust import TRUST_FILE, add_trusted

EDGE = [sys.executable, "-m", "edge"]
#: nodes run with faulthandler: a node that does not stop is sent SIGABRT, its stacks go to its log
NODE = [sys.executable, "-X", "faulthandler", "-m", "edge"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto() -> str:
    exe = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    assert exe is not None, "mosquitto is not installed"
    return exe


@dataclass
class MqttBroker:
    """A Mosquitto of the test's own; ``conf_extra`` lines go after the listener."""

    dir: Path
    port: int = field(default_factory=free_port)
    conf_extra: str = ""
    listener_extra: str = "allow_anonymous true\n"
    #: the whole config instead (``{port}`` and ``{user}`` filled in)
    conf_text: str = ""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.dir / "mosquitto.conf"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        # started as root, mosquitto drops to the user "mosquitto", who cannot read tmp_path
        user = f"user {getpass.getuser()}\n" if os.geteuid() == 0 else ""
        if self.conf_text:
            self.conf.write_text(self.conf_text.format(port=self.port, user=user))
        else:
            self.conf.write_text(
                f"per_listener_settings false\npersistence false\n{user}"
                f"listener {self.port} 127.0.0.1\n{self.listener_extra}{self.conf_extra}"
            )
        with (self.dir / "mosquitto.log").open("ab") as log:  # the child keeps its own fd
            self.proc = subprocess.Popen(
                [mosquitto(), "-c", str(self.conf)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start on port {self.port}: {self.dir}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@dataclass
class SyncNode:
    """One node directory (node.toml, key, trust list, ledger) and its ``edge run`` process."""

    name: str
    dir: Path
    gateway: bool
    sync_toml: str
    proc: subprocess.Popen[bytes] | None = None
    sim: SimulatorThread | None = None
    runs: int = 0

    @property
    def db(self) -> Path:
        return self.dir / "data" / "ledger.db"

    @property
    def key(self) -> Path:
        return self.dir / "data" / "node.key"

    @property
    def feed(self) -> str:
        return (self.dir / "data" / "node.key.pub").read_text().strip()

    @property
    def log(self) -> Path:
        return self.dir / "node.log"

    def write_config(self) -> None:
        toml = self.dir / "node.toml"
        if self.gateway:
            for name in ("node.toml", "tunnel.yaml"):
                with resources.as_file(resources.files("edge.demo") / name) as src:
                    shutil.copyfile(src, self.dir / name)
            text = toml.read_text().replace('id = "demo-gw1"', f'id = "{self.name}"')
            text = text.replace("readings_block = 200", "readings_block = 20")
        else:
            text = f'[node]\nid = "{self.name}"\ndata_dir = "data"\n'
        toml.write_text(text + "\n[sync]\n" + self.sync_toml)

    def start(self) -> None:
        if self.gateway and self.sim is None:
            self.sim = SimulatorThread(load_scenario("demo"), self.dir, seed=len(self.name))
            self.sim.__enter__()
        self.runs += 1
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*NODE, "run", "-c", str(self.dir / "node.toml")], stdout=log, stderr=log
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> int:
        """SIGTERM and wait; the exit status."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)  # stacks to the log, for the failure message
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def close(self) -> None:
        self.stop()
        if self.sim is not None:
            self.sim.__exit__(None, None, None)
            self.sim = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def journaled(self, *, unsigned: bool = False) -> list[tuple[int, str, bytes]]:
        """(seq, id, raw) of our feed's entries in the commit journal, up to its last checkpoint.

        What peers can hold of it beyond the database (they verify by checkpoints); with
        ``unsigned``, every entry durable there. Read-only; a record being appended right now
        is not there yet.
        """
        try:
            raws = journal_entries(journal_path(self.db))
        except (StorageError, OSError):
            return []
        out: list[tuple[int, str, bytes]] = []
        signed = 0
        feed = self.feed
        for raw in raws:
            entry = json.loads(raw)
            if entry["feed"] != feed:
                continue
            out.append((int(entry["seq"]), hashlib.sha256(raw).hexdigest(), raw))
            if entry["type"] == "checkpoint":
                signed = len(out)
        return out if unsigned else out[:signed]

    def recorded(self) -> int:
        """Entries of our own feed durable here: the database and the whole journal."""
        ids = self.entries().get(self.feed, [])
        return max([len(ids)] + [q + 1 for q, _, _ in self.journaled(unsigned=True)])

    def rows(self, feed: str | None = None) -> list[tuple[str, int, str, bytes]]:
        """(feed, seq, id, raw) held here in feed and seq order: the database, and for our own
        feed what the journal holds signed beyond it."""
        if not self.db.exists():
            return []
        own = self.feed if self.key.with_suffix(".key.pub").exists() else None
        journal = self.journaled() if own is not None and feed in (None, own) else []
        try:
            conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
            try:
                rows = conn.execute(
                    "SELECT feed, seq, id, raw FROM entries WHERE ? IS NULL OR feed = ? "
                    "ORDER BY feed, seq",
                    (feed, feed),
                ).fetchall()
            finally:
                conn.close()
        except sqlite3.Error:
            return []
        out = [(f, int(q), str(i), bytes(r)) for f, q, i, r in rows]
        if journal and own is not None:
            end = max((q + 1 for f, q, _, _ in out if f == own), default=0)
            extra = [(own, q, i, r) for q, i, r in journal if q >= end]
            if extra and extra[0][1] == end:
                out = sorted(out + extra, key=lambda row: (row[0], row[1]))
        return out

    def entries(self) -> dict[str, list[str]]:
        """feed -> ids in seq order (contiguous from 0 or not: as stored)."""
        out: dict[str, list[str]] = {}
        for feed, seq, id_, _ in self.rows():
            ids = out.setdefault(feed, [])
            if seq != len(ids):
                continue  # a gap: what follows it is not contiguous
            ids.append(id_)
        return out

    def types(self, feed: str) -> list[str]:
        """The entry types of ``feed`` held here, in seq order."""
        return [json.loads(raw)["type"] for _, _, _, raw in self.rows(feed)]

    def bodies(self, feed: str, type_: str) -> list[dict[str, Any]]:
        """The bodies of ``feed``'s entries of type ``type_`` held here, in seq order."""
        bodies = [json.loads(raw) for _, _, _, raw in self.rows(feed)]
        return [b["body"] for b in bodies if b["type"] == type_]

    def cosigners(self, feed: str) -> set[str]:
        """The witnesses (their feed ids) of the cosignatures of ``feed`` held here."""
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            rows = conn.execute("SELECT witness FROM cosignatures WHERE feed = ?", (feed,))
            return {r[0] for r in rows}
        finally:
            conn.close()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def make_nodes(
    root: Path, specs: Iterable[tuple[str, bool]], sync_toml: Callable[[str], str]
) -> list[SyncNode]:
    """Node directories with keys, configs and trust lists that name each other."""
    nodes = []
    for name, gateway in specs:
        d = root / name
        (d / "data").mkdir(parents=True)
        node = SyncNode(name, d, gateway, sync_toml(name))
        node.write_config()
        create_key_file(node.key)
        nodes.append(node)
    for node in nodes:
        for other in nodes:
            if other is not node:
                add_trusted(node.dir / "data" / TRUST_FILE, str(other.key) + ".pub", other.name)
    return nodes


def converged(nodes: list[SyncNode], writers: list[SyncNode]) -> str | None:
    """None when every node holds every writer's feed as far as the writer had it at the call.

    Also checks that whatever two nodes hold of a feed is the same (same ids). Otherwise a
    one-line description of the first difference (for the timeout message).
    """
    want = {w.feed: w.entries().get(w.feed, []) for w in writers}
    for node in nodes:
        held = node.entries()
        for feed, ids in want.items():
            have = held.get(feed, [])
            if len(have) < len(ids):
                return f"{node.name} holds {len(have)} of {len(ids)} entries of {feed[:8]}"
            n = min(len(have), len(ids))
            if have[:n] != ids[:n]:
                return f"{node.name} holds other entries of {feed[:8]}"
    return None


def wait_converged(
    nodes: list[SyncNode], writers: list[SyncNode] | None = None, within: float = 60.0
) -> None:
    deadline = time.monotonic() + within
    why: str | None = "not checked"
    while time.monotonic() < deadline:
        why = converged(nodes, writers if writers is not None else nodes)
        if why is None:
            return
        time.sleep(0.3)
    logs = "\n".join(f"--- {n.name}\n" + n.log_text()[-3000:] for n in nodes)
    raise AssertionError(f"not converged within {within:g} s: {why}\n{logs}")


def wait_for(predicate: Callable[[], object], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
