"""A node that owns its process (``edge run``) moves what it loaded at start out of the cyclic
collector's sight once started; one built without ``freeze_gc`` (tests, tools) leaves it."""

from __future__ import annotations

import asyncio
import gc
import shutil
from importlib import resources
from pathlib import Path

import pytest

from edge.config import load_config
from edge.firmware_sim import Simulator, load_scenario
from edge.runtime import Node

pytestmark = pytest.mark.integration


async def _started(tmp_path: Path, freeze_gc: bool) -> int:
    for name in ("node.toml", "tunnel.yaml"):
        with resources.as_file(resources.files("edge.demo") / name) as src:
            shutil.copyfile(src, tmp_path / name)
    async with Simulator(load_scenario("demo"), tmp_path, seed=1):
        stop = asyncio.Event()
        node = Node(load_config(tmp_path / "node.toml"), freeze_gc=freeze_gc)
        run = asyncio.create_task(node.run(stop))
        async with asyncio.timeout(30):
            while node.summary.readings == 0:  # started and polling
                await asyncio.sleep(0.05)
        frozen = gc.get_freeze_count()
        stop.set()
        await run
    return frozen


@pytest.mark.parametrize("freeze_gc", [True, False])
async def test_the_start_freezes_what_was_loaded_only_when_asked(
    tmp_path: Path, freeze_gc: bool
) -> None:
    gc.unfreeze()
    try:
        frozen = await _started(tmp_path, freeze_gc)
    finally:
        gc.unfreeze()  # this test process starts many nodes: give them back to the collector
    if freeze_gc:
        assert frozen > 10_000  # modules, config, rules: tens of thousands of objects
    else:
        assert frozen == 0
