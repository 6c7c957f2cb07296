"""The rules loop sleeps while no rule has a timer running, and wakes for one an operator starts.

A step without readings (a tick) only fires timers (delays, stale data, shelve expiry) and moves
the engine's clock; with none running the loop waits for readings instead of ticking every
250 ms (issue 18: CPU of an idle node). A shelve starts a timer while the loop sleeps: the
command wakes it, so the shelve still ends on time with no readings flowing. A real node polls
the 40-point job from firmware-sim over Modbus TCP, once an hour: one batch, then silence.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from node_job import write_node, write_scenario

from edge.commands import OperatorCommand
from edge.config import load_config
from edge.firmware_sim import Simulator, load_scenario
from edge.ledger import connect
from edge.ledger.readings_codec import parse_micros
from edge.runtime import Node

pytestmark = pytest.mark.integration


async def _scenario(tmp_path: Path) -> tuple[int, dict[str, object]]:
    async with Simulator(load_scenario(write_scenario(tmp_path)), tmp_path / "sim", seed=1) as sim:
        _, port = sim.tcp_endpoints["plc"]
        node = Node(load_config(write_node(tmp_path, port, poll="1h")))
        steps: list[float] = []
        engine_step = node._engine.step

        def counting_step(*args: object) -> object:  # the real step, counted
            steps.append(time.monotonic())
            return engine_step(*args)  # type: ignore[arg-type]

        node._engine.step = counting_step  # type: ignore[method-assign]
        stop = asyncio.Event()
        run = asyncio.create_task(node.run(stop))
        async with asyncio.timeout(20):
            while node.summary.readings < 40:  # the one poll of the hour
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        idle_from = len(steps)
        await asyncio.sleep(1.5)
        idle_steps = len(steps) - idle_from
        answer = await node.apply_command(
            OperatorCommand("shelve", rule="p00-high", actor="unix:qa", duration=1.0)
        )
        await asyncio.sleep(2.0)  # the shelve ends 1 s in, with no readings to wake the loop
        stop.set()
        await run
    return idle_steps, answer


def test_idle_rules_sleep_and_a_shelve_still_ends_on_time(tmp_path: Path) -> None:
    idle_steps, answer = asyncio.run(_scenario(tmp_path))
    assert answer["ok"] is True, answer
    assert idle_steps == 0, f"the rules stepped {idle_steps} times in 1.5 s with nothing to do"
    conn = connect(tmp_path / "data" / "ledger.db", readonly=True)
    try:
        times = dict(conn.execute("SELECT type, ts FROM entries WHERE type LIKE 'alarm.%shelve'"))
    finally:
        conn.close()
    # the expiry was recorded while no readings came (the node stopped 2 s after the shelve),
    # stamped when the shelve ended
    assert set(times) == {"alarm.shelve", "alarm.unshelve"}, times
    shelved, unshelved = parse_micros(times["alarm.shelve"]), parse_micros(times["alarm.unshelve"])
    assert unshelved - shelved == pytest.approx(1_000_000, abs=1_000)
