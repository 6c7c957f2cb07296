"""``edge demo``: the walking skeleton, real bytes end to end, no hardware and no broker.

firmware-sim serves a Modbus RTU slave (scenario ``demo``: a cooling tunnel whose cooling fails
from 4 s to 12 s) on a pseudo-terminal; the node polls it through the Modbus RTU driver
(our own RTU framing over pyserial), evaluates ``tunnel.yaml``, prints alarm transitions live, appends
everything to a SQLite ledger and finally verifies the chain.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edge.config import NodeConfig, load_config
from edge.firmware_sim import Simulator, load_scenario
from edge.ledger import connect, verify_db
from edge.readings import Reading
from edge.rules import LotEvent, Transition
from edge.runtime import Node, NodeSummary, Observer

__all__ = ["run_demo"]

_STYLE = {"activated": "bold red", "cleared": "green", "acknowledged": "cyan"}


class _Console:
    """Live lines: the temperature once a second and every alarm transition as it happens."""

    def __init__(self, console: Console, start: float) -> None:
        self.console = console
        self.start = start
        self._last_print = 0.0

    def readings(self, batch: Sequence[Reading]) -> None:
        now = time.time()
        if now - self._last_print < 1.0:
            return
        self._last_print = now
        parts = [
            f"{r.point}={r.value:.2f} {r.unit}"
            if isinstance(r.value, float)
            else f"{r.point}={r.value} [{r.quality}]"
            for r in batch
            if r.point != "line_running"
        ]
        self.console.print(f"[dim]{now - self.start:5.1f}s  " + "  ".join(parts) + "[/dim]")

    def event(self, ev: Transition | LotEvent) -> None:
        t = time.time() - self.start
        if isinstance(ev, Transition):
            value = "-" if ev.value is None else f"{ev.value:.2f}"
            limit = "-" if ev.limit is None else f"{ev.limit:g}"
            style = _STYLE.get(ev.event, "yellow")
            self.console.print(
                f"{t:5.1f}s  [{style}]{ev.event.upper():<9}[/{style}] {ev.rule} "
                f"{value} (limit {limit})  {ev.from_state} -> {ev.to_state}",
                soft_wrap=True,
            )
        else:
            self.console.print(f"{t:5.1f}s  LOT {ev.kind} {ev.lot}")

    def message(self, text: str) -> None:
        self.console.print(f"[yellow]{text}[/yellow]")


def run_demo(*, seconds: float = 30.0, seed: int = 1, run_dir: Path | None = None) -> bool:
    """Run the demo; return True when the ledger verified at the end."""
    console = Console()
    if run_dir is None:
        run_dir = Path(tempfile.mkdtemp(prefix="edge-demo-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in ("node.toml", "tunnel.yaml"):
        with resources.as_file(resources.files(__name__) / name) as src:
            shutil.copyfile(src, run_dir / name)
    config = load_config(run_dir / "node.toml")
    console.print(
        f"[bold]edge demo[/bold]: cooling tunnel, Modbus RTU over a PTY, {seconds:g} s, seed {seed}\n"
        f"run directory: {run_dir}"
    )
    summary = asyncio.run(_run(config, run_dir, seconds, seed, console))
    db = config.ledger_path
    conn = connect(db, readonly=True)
    try:
        report = verify_db(conn)
    finally:
        conn.close()

    table = Table(title="demo summary", show_header=False)
    table.add_row("readings taken", str(summary.readings))
    table.add_row("alarms raised", str(summary.activated))
    table.add_row("alarms cleared", str(summary.cleared))
    table.add_row("ledger entries", str(report.entries))
    table.add_row(
        "ledger verify",
        "[green]OK[/green]" if report.ok else f"[red]FAILED[/red] {report.problems[:3]}",
    )
    table.add_row("ledger file", str(db))
    console.print(table)
    edge = _edge_command()
    console.print(f"next: {edge} ledger verify --db {db}", soft_wrap=True)
    console.print(f"      {edge} ledger query --db {db}", soft_wrap=True)
    return report.ok


def _edge_command() -> str:
    """How to call `edge` from here: the venv's script when it is not on PATH (`make demo`)."""
    script = Path(sys.executable).parent / "edge"
    if not script.exists() or shutil.which("edge") == str(script):
        return "edge"
    relative = os.path.relpath(script)
    return str(script) if relative.startswith("..") else relative


async def _run(
    config: NodeConfig, run_dir: Path, seconds: float, seed: int, console: Console
) -> NodeSummary:
    start = time.time()
    live = _Console(console, start)
    async with Simulator(load_scenario("demo"), run_dir, seed=seed, line_timing=True):
        node = Node(
            config,
            observer=Observer(
                on_readings=live.readings, on_event=live.event, on_message=live.message
            ),
        )
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        return await node.run(stop)
