"""Persisting the rule engine's state (alarm states, running delay timers) across restarts.

Written atomically (temp file, fsync, rename, fsync of the directory), so a power cut leaves
either the old or the new state, never half of one.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from edge.log import event
from edge.rules import Engine, EngineState

__all__ = ["load_state", "save_state"]


def load_state(path: Path, engine: Engine) -> EngineState:
    """The saved state if there is a readable one for this engine, else a fresh one."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return engine.initial_state()
    try:
        state = EngineState.from_json(raw)
    except Exception as exc:  # a damaged state file must not keep the node from starting
        event("rules.state_unreadable", logging.WARNING, file=str(path), error=str(exc))
        return engine.initial_state()
    # rules may have changed while the node was down: unchanged rules keep their states
    return engine.adopt(state)


async def save_state(path: Path, state: EngineState) -> None:
    """Write the state atomically without blocking the event loop.

    The state is serialised here, in the loop (it is updated in place by the engine, so it must
    not be read from another thread); only the file work and its fsyncs run in a worker thread.
    """
    await asyncio.to_thread(_write_atomically, path, state.to_json())


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
