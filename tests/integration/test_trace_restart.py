"""A lot that runs across a node restart, on the real bottling line (firmware-sim buses, the
example config and rules, the real ``Node``): its trace shows the stop and the start, with how
long the node was down, and the lot's start and end are its own (issue 12, point 6)."""

from __future__ import annotations

import asyncio
import shutil
from importlib import resources
from pathlib import Path

import pytest

from edge.config import load_config
from edge.firmware_sim import Simulator, load_scenario
from edge.ledger.query import open_ledger_db
from edge.ledger.trace import trace_lot
from edge.ledger.verify import verify_db
from edge.runtime import Node

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
LOT = "L2026-0412-B"  # from 6 s to 14 s of the scenario; the node restarts at ~9 s


def _scenario(tmp_path: Path) -> Path:
    text = (resources.files("edge.firmware_sim.scenarios") / "bottling.yaml").read_text()
    text = text.replace("{at: 1m, code:", "{at: 6s, code:").replace(
        "{at: 2m, code:", "{at: 14s, code:"
    )
    path = tmp_path / "bottling-fast.yaml"
    path.write_text(text)
    return path


async def _two_runs(tmp_path: Path) -> None:
    """One simulated line; the node runs, stops at ~9 s, and runs again until ~17 s."""
    async with Simulator(load_scenario(_scenario(tmp_path)), tmp_path / "run", seed=3) as sim:
        host, port = sim.tcp_endpoints["plc"]
        node_toml = (REPO / "examples" / "node.toml").read_text()
        (tmp_path / "node.toml").write_text(node_toml.replace("127.0.0.1:5020", f"{host}:{port}"))
        shutil.copytree(REPO / "examples" / "rules", tmp_path / "rules")
        for seconds in (9.0, 8.0):
            node = Node(load_config(tmp_path / "node.toml"))
            stop = asyncio.Event()
            asyncio.get_running_loop().call_later(seconds, stop.set)
            await node.run(stop)


def test_a_restart_inside_a_lot_shows_in_its_trace(tmp_path: Path) -> None:
    asyncio.run(_two_runs(tmp_path))
    conn = open_ledger_db(tmp_path / "var" / "ledger.db")
    try:
        assert verify_db(conn).ok
        trace = trace_lot(conn, LOT)
    finally:
        conn.close()
    types = [e.entry.type for e in trace.events]
    assert (types[0], types[-1]) == ("lot.start", "lot.end"), types
    assert {"node.stop", "node.start"} <= set(types), types
    assert types.index("node.stop") < types.index("node.start")
    start = next(e for e in trace.events if e.entry.type == "node.start")
    stop = next(e for e in trace.events if e.entry.type == "node.stop")
    assert start.note.startswith(f"node down from {stop.entry.ts} to {start.entry.ts} (stopped:")
    (visit,) = trace.visits
    assert (visit.start_note, visit.end_note) == ("", "")
    # nothing outside the lot's own start .. end except what attaches to its entries
    assert trace.span == (visit.start.ts, visit.end.ts)  # type: ignore[union-attr]
    for event in trace.events:
        if event.entry.type not in ("correction", "alarm.ack", "alarm.shelve", "alarm.unshelve"):
            assert trace.span[0] <= event.entry.ts <= trace.span[1], event.entry.type
