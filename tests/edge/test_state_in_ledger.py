"""The engine state lives in the ledger database; a legacy state file is taken over once; the
next run's node.start says how the previous one ended."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from edge.config import parse_config
from edge.ledger.entry import format_ts
from edge.ledger_bridge import EntryArgs, LedgerBridge
from edge.readings import Reading
from edge.rules import AlarmState, Engine, EngineState, RuleSet
from edge.rules.model import LimitRule

CONFIG = """
[node]
id = "line1-gw1"
data_dir = "var"

[buses.plc]
kind = "tcp"
address = "127.0.0.1:5020"

[devices.filler]
bus = "plc"

[points.t]
device = "filler"
register = 0
type = "float32"
unit = "degC"
"""
T0 = 1_795_000_000.0


def _bridge(tmp_path: Path) -> LedgerBridge:
    source = tmp_path / "node.toml"
    source.write_text(CONFIG)
    return LedgerBridge(parse_config(CONFIG, source))


def _engine() -> Engine:
    return Engine(RuleSet.build([LimitRule(id="hi", point="t", high=8.0)]))


async def _run_once(
    tmp_path: Path, readings: list[Reading], *, stop: bool
) -> tuple[EngineState, dict[str, object] | None]:
    """One run through the bridge as the runtime does it; ``stop``: a clean stop."""
    bridge, engine = _bridge(tmp_path), _engine()
    await bridge.open()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(bridge.run(), name="ledger")
        await bridge.writer.room()
        state = bridge.load_state(engine)
        previous = bridge.previous_run()
        start = bridge.append_now(EntryArgs("node.start", {"previous_run": previous}, T0))
        bridge.track_state(lambda: state)
        bridge.drop_legacy_state(start.seq)
        if readings:
            bridge.add_readings(readings)
            state, _ = engine.step(state, readings, readings[-1].ts)
            bridge.state_changed()
        if stop:
            bridge.flush_readings()
            bridge.append_now(EntryArgs("node.stop", {}, T0 + 100))
        bridge.writer.commit_now()
        await bridge.writer.durable(start.seq)
        await bridge.writer.aclose()  # without node.stop: as far as the file shows, a kill
    return state, previous


async def test_a_legacy_state_file_is_taken_over_and_removed_once_stored(tmp_path: Path) -> None:
    engine = _engine()
    active, _ = engine.step(engine.initial_state(), [Reading("t", T0, 9.0)], T0)
    legacy = tmp_path / "var" / "engine-state.json"
    legacy.parent.mkdir()
    legacy.write_bytes(active.to_json())
    state, _ = await _run_once(tmp_path, [], stop=True)
    assert state.alarm("hi").state is AlarmState.ACTIVE_UNACK
    assert not legacy.exists()
    conn = sqlite3.connect(tmp_path / "var" / "ledger.db")
    try:
        (raw,) = conn.execute("SELECT state FROM engine_state").fetchone()
    finally:
        conn.close()
    assert EngineState.from_json(raw).alarm("hi").state is AlarmState.ACTIVE_UNACK
    # the next start reads it from the ledger database
    state, _ = await _run_once(tmp_path, [], stop=True)
    assert state.alarm("hi").state is AlarmState.ACTIVE_UNACK


async def test_node_start_says_how_and_when_the_previous_run_ended(tmp_path: Path) -> None:
    _, first = await _run_once(tmp_path, [Reading("t", T0 + 1, 5.0)], stop=False)
    assert first is None  # the first start
    _, killed = await _run_once(tmp_path, [Reading("t", T0 + 2, 5.0)], stop=True)
    assert killed == {
        "clean": False,
        "last_entry": format_ts(T0),
        "last_reading": format_ts(T0 + 1),
    }
    _, clean = await _run_once(tmp_path, [], stop=False)
    assert clean is not None
    assert clean["clean"] is True
    assert clean["last_reading"] == format_ts(T0 + 2)
    conn = sqlite3.connect(tmp_path / "var" / "ledger.db")
    try:
        types = [t for (t,) in conn.execute("SELECT type FROM entries ORDER BY seq")]
    finally:
        conn.close()
    # the block the "killed" run left open is closed before the next run's node.start
    assert [t for t in types if t != "checkpoint"] == [
        "node.start", "readings.digest", "node.start", "readings.digest", "node.stop",
        "node.start",
    ]  # fmt: skip


async def test_a_damaged_last_entry_does_not_keep_the_node_from_starting(tmp_path: Path) -> None:
    await _run_once(tmp_path, [], stop=True)
    conn = sqlite3.connect(tmp_path / "var" / "ledger.db")
    try:
        conn.execute("DROP TRIGGER entries_no_update")
        conn.execute("UPDATE entries SET raw = X'7B7D' WHERE type = 'node.stop'")  # '{}'
        conn.commit()
    finally:
        conn.close()
    _, previous = await _run_once(tmp_path, [], stop=True)
    assert previous == {"clean": False, "last_entry": None, "last_reading": None}
