"""Crash tests: a real ``edge run`` node SIGKILLed at every named point of its event path.

In the spirit of SQLite's crash testing. Each lane runs its own simulated line (a limit alarm
that activates and clears every 3 s, a new lot every 2 s with a per-lot check, a stale rule) and
its own node, which the test kills again and again: at a failpoint (``EDGE_FAILPOINTS``, the
process kills itself exactly there; in the commit process the node dies with it), or at a random
moment under load. Lanes run in parallel to keep the wall time short.

The event path includes the commit journal (small batches appended to ``ledger.db.eqj``, moved
into SQLite in bulk): kills land mid-append, after the append is durable but before its reply,
and during a move after its COMMIT and before the truncate.

After every kill, before the restart, the database as the kill left it (with its commit journal
moved in, as the next start does first) is checked:

* the engine state stored in it is the state the ledger describes: every alarm's state is the
  ``to`` of its last transition on the ledger, the current lot is the last lot started and not
  ended. (A state that reflects a transition the ledger does not have fails here.)

At the end (a last run stopped with SIGTERM), over all the kills:

* every alarm transition chains onto the one before it (``from`` = previous ``to``): none lost,
  none doubled; lot starts and ends alternate, each lot started and ended at most once;
* ``edge ledger verify`` passes;
* no entry of a run is stamped before that run's ``node.start``;
* within each run no readings are missing (no gap longer than a few polls), and the last durable
  reading of a killed run is at most ``flush_interval`` (plus a poll and commit latency) older
  than the kill;
* every MQTT alert a subscriber received is an entry on the ledger (no alarm the record lacks).
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from stored_readings import stored

from edge.errors import StorageError
from edge.firmware_sim import SimulatorThread, load_scenario
from edge.ledger.entry import parse_ts
from edge.ledger.journal import journal_entries, journal_path
from edge.ledger.keys import load_key
from edge.ledger.store import Ledger

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HERE = Path(__file__).resolve().parent / "crash_line"
EDGE = [sys.executable, "-m", "edge"]
FLUSH = 0.05  # the config's flush_interval
POLL = 0.1  # the device's poll period
#: Commit latency and scheduling on a loaded 2-core machine, on top of flush_interval + a poll.
SLACK = 0.45
LANES = 4

#: Every failpoint of the event path, with the range of the hit count that kills (the N-th hit).
CHOSEN: dict[str, tuple[int, int]] = {
    "engine.stepped": (4, 30),
    "entry.queued": (1, 3),
    "state.queued": (2, 20),
    "batch.cut": (2, 15),
    "batch.durable": (2, 10),
    "alert.published": (1, 3),
    "readings.staged": (4, 30),
    "readings.flush": (1, 1),
    # transactions: a move of the commit journal every few seconds, and bulk batches
    "commit.begin": (1, 1),
    "commit.entries": (1, 4),
    "commit.readings": (2, 10),
    "commit.before_commit": (1, 1),
    "commit.after_commit": (1, 1),
    "journal.appended": (2, 20),
    "journal.synced": (2, 20),
    "journal.moved": (1, 1),
    "node.started": (1, 1),
    "node.stopping": (1, 1),
}
RANDOM_KILLS = 24


@dataclass
class Run:
    """One process of a lane: how it was to die and when it did."""

    failpoint: str | None
    spawned: float
    died: float = 0.0
    by_failpoint: bool = False
    code: int | None = None


@dataclass
class Lane:
    number: int
    root: Path
    plan: list[str | None]
    rng: random.Random
    broker_port: int
    runs: list[Run] = field(default_factory=list)

    @property
    def db(self) -> Path:
        return self.root / "data" / "ledger.db"

    @property
    def node_id(self) -> str:
        return f"crash-gw{self.number}"


def _node_toml(lane: Lane, failpoint: str | None = None) -> str:
    """The lane's config for a run that is to die at ``failpoint``.

    A run to die inside a transaction (``commit.*``) writes every batch straight to SQLite
    (``commit_journal = false``, the default config): with the journal, small batches wait up to
    120 s for a move, and compressed readings blocks are small, so a run would seldom reach one
    before the test kills it; the database files are the same either way, and the next start
    moves what a journal run left.

    Odd lanes write through a commit process (``commit_worker = "process"``), even ones through
    the default commit thread: every failpoint is planned once with each worker.
    """
    text = (HERE / "node.toml").read_text()
    if lane.number % 2:
        text = text.replace("[ledger]\n", '[ledger]\ncommit_worker = "process"\n')
    if failpoint is not None and failpoint.startswith("commit."):
        text = text.replace("commit_journal = true", "commit_journal = false")
    text = text.replace('id = "crash-gw"', f'id = "{lane.node_id}"')
    text = text.replace("readings_block = 200", "readings_block = 50")
    return text + f'\n[mqtt]\nhost = "127.0.0.1"\nport = {lane.broker_port}\n'


def _spawn(lane: Lane, failpoint: str | None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.pop("EDGE_FAILPOINTS", None)
    if failpoint is not None:
        low, high = CHOSEN[failpoint]
        env["EDGE_FAILPOINTS"] = f"{failpoint}:{lane.rng.randint(low, high)}"
    with (lane.root / f"run{len(lane.runs)}.log").open("wb") as log:
        return subprocess.Popen(
            [*EDGE, "run", "-c", str(lane.root / "node.toml")],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
            start_new_session=True,  # its own process group, as under a service manager
        )


def _connect(db: Path) -> sqlite3.Connection:
    # read-write on purpose: the first connection after a kill recovers the WAL, as the node's would
    return sqlite3.connect(db)


def _entries(db: Path) -> list[dict[str, Any]]:
    """The durable entries: the database's, then the commit journal's (not yet moved).

    Read in that order, so a move between the two reads can hide entries for a moment but
    never show one twice.
    """
    if not db.exists():
        return []
    conn = _connect(db)
    try:
        rows = conn.execute("SELECT raw FROM entries ORDER BY seq").fetchall()
    except sqlite3.OperationalError:  # killed before the schema was made: nothing stored
        return []
    finally:
        conn.close()
    journaled = journal_entries(journal_path(db))
    return [json.loads(r[0]) for r in rows] + [json.loads(r) for r in journaled]


def _move_journal(lane: Lane) -> None:
    """What the node's next start does first: move the commit journal into the database."""
    key_file = lane.db.with_name("node.key")
    if not (lane.db.exists() and key_file.exists()):
        return
    # the killed node's commit process dies with it (PDEATHSIG) but may still hold the writer
    # lock for a moment on a loaded machine: wait for it, as the next start would
    deadline = time.monotonic() + 15
    while True:
        try:
            Ledger.open(lane.db, load_key(key_file)).close()
            return
        except StorageError as exc:
            if "another process is writing" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _count(db: Path, type_: str) -> int:
    return sum(e["type"] == type_ for e in _entries(db))


def _stored_state(db: Path) -> dict[str, Any] | None:
    conn = _connect(db)
    try:
        row = conn.execute("SELECT state FROM engine_state WHERE name = 'rules'").fetchone()
    except sqlite3.OperationalError:  # killed before the schema was made: nothing stored
        return None
    finally:
        conn.close()
    return None if row is None else json.loads(row[0])


def _ledger_view(entries: list[dict[str, Any]]) -> tuple[dict[str, str], str | None]:
    """What the ledger says: each alarm's last state, and the lot started and not ended."""
    alarms: dict[str, str] = {}
    lot: str | None = None
    for e in entries:
        if e["type"] == "alarm":
            alarms[e["body"]["rule"]] = e["body"]["to"]
        elif e["type"] == "lot.start":
            lot = e["body"]["lot"]
        elif e["type"] == "lot.end":
            lot = None
    return alarms, lot


def _check_state_matches_ledger(lane: Lane, when: str) -> None:
    if not lane.db.exists():
        return
    _move_journal(lane)  # no node runs now: the state and entries it holds count too
    state = _stored_state(lane.db)
    if state is None:
        return
    alarms, lot = _ledger_view(_entries(lane.db))
    for rule, a in state["alarms"].items():
        assert a["state"] == alarms.get(rule, "normal"), (
            f"lane {lane.number} {when}: stored state has {rule} {a['state']}, "
            f"the ledger {alarms.get(rule, 'normal')}"
        )
    assert state["lot"] == lot, f"lane {lane.number} {when}: state lot {state['lot']}, ledger {lot}"


def _drive(lane: Lane) -> Lane:
    """Start, kill, check, restart: the lane's whole plan, then a last run stopped by SIGTERM."""
    (lane.root / "node.toml").write_text(_node_toml(lane))
    shutil.copyfile(HERE / "rules.yaml", lane.root / "rules.yaml")
    for failpoint in lane.plan:
        starts = _count(lane.db, "node.start")
        (lane.root / "node.toml").write_text(_node_toml(lane, failpoint))
        proc = _spawn(lane, failpoint)
        run = Run(failpoint, time.time())
        deadline = time.monotonic() + 8.0
        if failpoint is None:
            # a random moment of a running node: after its node.start, under load
            while _count(lane.db, "node.start") == starts and time.monotonic() < deadline:
                time.sleep(0.05)
            deadline = time.monotonic() + lane.rng.uniform(0.5, 2.5)
        if failpoint in ("node.stopping", "journal.moved"):
            # once it runs (its node.start is durable), a stop request: it dies stopping (the
            # stop moves the commit journal, if nothing did before)
            while _count(lane.db, "node.start") == starts and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            os.killpg(proc.pid, signal.SIGTERM)
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        killed_here = proc.poll() is None
        if killed_here:
            os.killpg(proc.pid, signal.SIGKILL)
        run.code = proc.wait(timeout=10)
        run.by_failpoint = not killed_here and failpoint is not None and run.code == -9
        run.died = time.time()
        # the commit process dies with its parent (PDEATHSIG); give it a moment to be reaped
        time.sleep(0.05)
        lane.runs.append(run)
        _check_state_matches_ledger(lane, f"after kill {len(lane.runs)} ({failpoint})")
    (lane.root / "node.toml").write_text(_node_toml(lane))
    starts = _count(lane.db, "node.start")
    proc = _spawn(lane, None)
    run = Run(None, time.time())
    # stopped once it runs: a SIGTERM before its handlers are set (imports take seconds on a
    # loaded machine) would kill it like any signal, which is not what this run checks
    deadline = time.monotonic() + 30.0
    while _count(lane.db, "node.start") == starts and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.5)
    os.killpg(proc.pid, signal.SIGTERM)
    run.code = proc.wait(timeout=20)
    run.died = time.time()
    lane.runs.append(run)
    return lane


@pytest.fixture
def lanes(tmp_path: Path, broker: Any) -> Iterator[tuple[list[Lane], Path]]:
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
    print(f"crash test seed: CRASH_SEED={seed}")
    rng = random.Random(seed)
    # each failpoint planned twice: once on a commit-thread lane (even), once on a
    # commit-process lane (odd); the random kills split between them
    plans: list[list[str | None]] = [[] for _ in range(LANES)]
    for parity in (0, 1):
        points: list[str | None] = [*CHOSEN, *[None] * (RANDOM_KILLS // 2)]
        rng.shuffle(points)
        lanes_of = list(range(parity, LANES, 2))
        for i, point in enumerate(points):
            plans[lanes_of[i % len(lanes_of)]].append(point)
    alerts = tmp_path / "alerts.log"
    with alerts.open("wb") as out:
        sub = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", "edge/#",
             "-v", "-q", "1"],
            stdout=out,
        )  # fmt: skip
        sims = []
        try:
            out_lanes = []
            for i, plan in enumerate(plans):
                root = tmp_path / f"lane{i}"
                root.mkdir()
                sim = SimulatorThread(load_scenario(HERE / "scenario.yaml"), root, seed=i)
                sim.__enter__()
                sims.append(sim)
                out_lanes.append(Lane(i, root, plan, random.Random(rng.random()), broker.port))
            yield out_lanes, alerts
        finally:
            for sim in sims:
                sim.__exit__(None, None, None)
            sub.terminate()
            sub.wait(timeout=10)


def test_kills_at_every_point_of_the_event_path_lose_and_double_nothing(
    lanes: tuple[list[Lane], Path],
) -> None:
    lane_list, alerts_log = lanes
    with ThreadPoolExecutor(len(lane_list)) as pool:
        done = list(pool.map(_drive, lane_list))
    kills = [r for lane in done for r in lane.runs[:-1]]
    print(f"{len(kills)} kills, {sum(r.by_failpoint for r in kills)} at failpoints")
    assert len(kills) >= 50
    hit = {r.failpoint for r in kills if r.by_failpoint}
    assert hit == set(CHOSEN), f"failpoints never reached: {set(CHOSEN) - hit}"
    time.sleep(0.5)  # the subscriber's last messages
    alerts = _alerts_by_node(alerts_log)
    for lane in done:
        last = lane.runs[-1]
        err = (lane.root / f"run{len(lane.runs) - 1}.log").read_text()
        assert last.code == 0, err
        assert "level=error" not in err, err
        _check_verifies(lane.db)
        entries = _entries(lane.db)
        _check_transitions_chain(lane, entries)
        _check_lots_alternate(lane, entries)
        _check_no_entry_before_its_start(lane, entries)
        _check_readings(lane, entries)
        _check_state_matches_ledger(lane, "at the end")
        _check_alerts_are_recorded(lane, entries, alerts.get(lane.node_id, []))


def _check_verifies(db: Path) -> None:
    verify = subprocess.run(
        [*EDGE, "ledger", "verify", "--db", str(db)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _check_transitions_chain(lane: Lane, entries: list[dict[str, Any]]) -> None:
    last: dict[str, str] = {}
    seen: set[tuple[str, str, str]] = set()
    for e in entries:
        if e["type"] != "alarm":
            continue
        b = e["body"]
        key = (b["rule"], b["event"], e["ts"])
        assert key not in seen, f"lane {lane.number}: transition twice on the ledger: {key}"
        seen.add(key)
        assert b["from"] == last.get(b["rule"], "normal"), (
            f"lane {lane.number} seq {e['seq']}: {b['rule']} {b['from']} -> {b['to']} "
            f"follows {last.get(b['rule'], 'normal')}: a transition was lost"
        )
        last[b["rule"]] = b["to"]
    assert len(seen) >= 10, f"lane {lane.number}: too few transitions to prove anything"
    print(f"lane {lane.number}: {len(seen)} transitions chained", end="; ")


def _check_lots_alternate(lane: Lane, entries: list[dict[str, Any]]) -> None:
    open_lot: str | None = None
    started: set[str] = set()
    ended: set[str] = set()
    for e in entries:
        if e["type"] == "lot.start":
            lot = e["body"]["lot"]
            assert open_lot is None, f"lane {lane.number}: lot {lot} started, {open_lot} open"
            assert lot not in started, f"lane {lane.number}: lot {lot} started twice"
            started.add(lot)
            open_lot = lot
        elif e["type"] == "lot.end":
            lot = e["body"]["lot"]
            assert lot == open_lot, f"lane {lane.number}: lot {lot} ended, {open_lot} open"
            assert lot not in ended
            ended.add(lot)
            open_lot = None
    assert len(ended) >= 5, f"lane {lane.number}: too few lots to prove anything"
    print(f"{len(ended)} lots", end="; ")


def _check_no_entry_before_its_start(lane: Lane, entries: list[dict[str, Any]]) -> None:
    start: str | None = None
    for e in entries:
        if e["type"] == "node.start":
            start = e["ts"]
        assert start is not None, f"lane {lane.number}: an entry before the first node.start"
        assert e["ts"] >= start, (
            f"lane {lane.number} seq {e['seq']} {e['type']} at {e['ts']} is before its run's "
            f"node.start at {start}"
        )


def _check_readings(lane: Lane, entries: list[dict[str, Any]]) -> None:
    starts = [parse_ts(e["ts"]) for e in entries if e["type"] == "node.start"]
    conn = _connect(lane.db)
    try:
        stamps = sorted(parse_ts(r.ts) for r in stored(conn) if r.point == "temp")
    finally:
        conn.close()
    bounds = [*starts, float("inf")]
    checked = 0
    for run in lane.runs[:-1]:
        # the run whose node.start lies in the process's life (none: it died before its first
        # batch was durable, and left nothing)
        mine = [i for i, s in enumerate(starts) if run.spawned <= s <= run.died]
        if not mine:
            continue
        i = mine[0]
        in_run = [t for t in stamps if bounds[i] <= t < bounds[i + 1]]
        gaps = [b - a for a, b in itertools.pairwise(in_run)]
        assert not gaps or max(gaps) < 1.0, f"lane {lane.number}: readings missing in a run"
        newest_missing_allowed = run.died - (FLUSH + POLL + SLACK)
        if starts[i] > newest_missing_allowed - 0.3:
            continue  # killed before the first readings could be durable
        assert in_run, f"lane {lane.number}: a run of {run.died - starts[i]:.1f}s kept no reading"
        assert in_run[-1] >= newest_missing_allowed, (
            f"lane {lane.number} ({run.failpoint}): last durable reading "
            f"{run.died - in_run[-1]:.2f}s before the kill"
        )
        checked += 1
    assert checked >= 4, f"lane {lane.number}: too few runs long enough to check readings"
    print(f"{checked} killed runs' readings checked")


def _alerts_by_node(path: Path) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for line in path.read_text().splitlines():
        topic, _, payload = line.partition(" ")
        parts = topic.split("/")
        if len(parts) < 4 or parts[2] not in ("alarms", "lots"):
            continue
        out.setdefault(parts[1], []).append(("/".join(parts[2:]), json.loads(payload)))
    return out


def _check_alerts_are_recorded(
    lane: Lane, entries: list[dict[str, Any]], alerts: list[tuple[str, dict[str, Any]]]
) -> None:
    bodies = [json.dumps(e["body"], sort_keys=True) for e in entries if e["type"] == "alarm"]
    lots = {(e["type"].replace(".", "_"), e["body"]["lot"]) for e in entries
            if e["type"] in ("lot.start", "lot.end")}  # fmt: skip
    assert alerts, f"lane {lane.number}: no alert reached the subscriber"
    by_seq = {(e["feed"], e["seq"]): e for e in entries}
    for suffix, payload in alerts:
        if suffix.startswith("alarms/") and "seq" in payload:
            # a standalone alert names its entry (feed, seq) and carries its body's fields
            entry = by_seq.get((payload.get("feed"), payload["seq"]))
            assert entry is not None, f"lane {lane.number}: alert without a ledger entry: {payload}"
            assert entry["type"] == "alarm", f"lane {lane.number}: alert of a {entry['type']}"
            assert all(payload.get(k) == v for k, v in entry["body"].items()), (
                f"lane {lane.number}: alert differs from its ledger entry: {payload} {entry}"
            )
        elif suffix.startswith("alarms/"):
            assert json.dumps(payload, sort_keys=True) in bodies, (
                f"lane {lane.number}: alert without a ledger entry: {payload}"
            )
        else:
            assert (suffix.split("/")[1], payload["lot"]) in lots, (
                f"lane {lane.number}: lot alert without a ledger entry: {suffix} {payload}"
            )


def test_sigterm_to_the_process_group_stops_node_and_commit_process_cleanly(
    tmp_path: Path,
) -> None:
    """systemd's default KillMode signals the whole control group: node and commit process
    (``commit_worker = "process"``; the default thread has no process of its own)."""
    shutil.copyfile(HERE / "rules.yaml", tmp_path / "rules.yaml")
    shutil.copyfile(HERE / "node.toml", tmp_path / "node.toml")
    toml = tmp_path / "node.toml"
    toml.write_text(toml.read_text().replace("[ledger]\n", '[ledger]\ncommit_worker = "process"\n'))
    db = tmp_path / "data" / "ledger.db"
    with SimulatorThread(load_scenario(HERE / "scenario.yaml"), tmp_path, seed=5):
        with (tmp_path / "run.log").open("wb") as log:
            proc = subprocess.Popen(
                [*EDGE, "run", "-c", str(tmp_path / "node.toml")],
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(
                e["type"] == "alarm" for e in _entries(db)
            ):
                time.sleep(0.1)
            children = _children(proc.pid)
            assert children, "the node runs no commit process"
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            code = proc.wait(timeout=20)
    err = (tmp_path / "run.log").read_text()
    assert code == 0, err
    assert "level=error" not in err, err
    assert "Traceback" not in err, err
    assert "event=node.stopped" in err
    for pid in children:
        assert not Path(f"/proc/{pid}").exists(), "the commit process outlived the node"
    entries = _entries(db)
    assert [e["type"] for e in entries if e["type"] != "checkpoint"][-1] == "node.stop"
    _check_verifies(db)


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.extend(int(t) for t in text)
    return out
