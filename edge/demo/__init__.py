"""``edge demo``: the walking skeleton, real bytes end to end, no hardware and no broker.

firmware-sim serves a Modbus RTU slave (scenario ``demo``: a cooling tunnel whose cooling fails
for a while) on a pseudo-terminal; the node polls it through the Modbus RTU driver (our own RTU
framing over pyserial), evaluates ``tunnel.yaml``, appends everything to a SQLite ledger and
finally verifies the chain.

It is also a short lesson in ISA-18.2 alarm handling: the limit alarm is raised, a demo
operator acknowledges it (through the same command path as ``edge alarm ack``), and it clears;
every transition is printed with what its new state means in plain words, and the four states
are explained at the end.

The run is shortened by compressing the scenario's clock: a run of ``seconds`` plays the
30-second story (fault from 4 s to 12 s, thermal time constant 5 s) at ``seconds / 30`` scale,
so even a 10 s run shows raise, acknowledge and clear. The run directory is a fresh temporary
directory removed at the end unless ``keep`` (or an explicit ``run_dir``) says otherwise.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from edge.alarm_words import STATE_LABEL, STATE_MEANING
from edge.commands import OperatorCommand
from edge.config import NodeConfig, load_config
from edge.firmware_sim import Scenario, Simulator, load_scenario
from edge.ledger import connect, verify_db
from edge.readings import Reading
from edge.rules import LotEvent, Transition
from edge.runtime import Node, NodeSummary, Observer

__all__ = [
    "DEMO_OPERATOR",
    "MAX_SECONDS",
    "MIN_SECONDS",
    "STORY_SECONDS",
    "run_demo",
    "scaled_scenario",
]

#: the length of the demo story as the scenario tells it
STORY_SECONDS = 30.0
#: the shortest run that still shows raise, acknowledge and clear (the rule's 1 s delays)
MIN_SECONDS = 10.0
#: the longest run (a longer one would stretch the story past anyone's patience)
MAX_SECONDS = 3600.0
#: who acknowledges the alarm in the demo (recorded on the ledger as the actor)
DEMO_OPERATOR = "demo-operator"
_RULE = "tunnel-temp-high"

_STYLE = {"activated": "bold red", "cleared": "green", "acknowledged": "cyan"}


def scaled_scenario(scenario: Scenario, factor: float) -> Scenario:
    """The scenario with its clock compressed by ``factor``: schedule times and time constants."""
    devices = {
        name: replace(
            dev,
            points={
                pname: replace(
                    p,
                    params={
                        k: v * factor if k in ("tau", "period", "step") else v
                        for k, v in p.params.items()
                    },
                )
                for pname, p in dev.points.items()
            },
        )
        for name, dev in scenario.devices.items()
    }
    schedule = tuple(
        replace(e, at=e.at * factor, until=None if e.until is None else e.until * factor)
        for e in scenario.schedule
    )
    return replace(scenario, devices=devices, schedule=schedule)


class _Console:
    """Live lines: the temperature once a second and every alarm transition, explained."""

    def __init__(self, console: Console, start: float) -> None:
        self.console = console
        self.start = start
        self._last_print = 0.0
        self.activated = asyncio.Event()
        self.transitions: list[Transition] = []

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
        if not isinstance(ev, Transition):
            self.console.print(f"{t:5.1f}s  LOT {ev.kind} {ev.lot}")
            return
        self.transitions.append(ev)
        value = "" if ev.value is None else f" {ev.value:.2f}"
        limit = "" if ev.limit is None else f" (limit {ev.limit:g})"
        who = f" by {ev.actor}" if ev.actor else ""
        style = _STYLE.get(ev.event, "yellow")
        self.console.print(
            f"{t:5.1f}s  [{style}]{ev.event.upper()}[/{style}]{who} {ev.rule}{value}{limit}  "
            f"{ev.from_state} -> {ev.to_state}",
            soft_wrap=True,
            highlight=False,
        )
        if ev.from_state != ev.to_state:
            state = str(ev.to_state)
            self.console.print(
                Padding(Text.from_markup(
                    f"now [bold]{STATE_LABEL[state]}[/bold]: {STATE_MEANING[state]}"
                ), (0, 0, 0, 8))
            )  # fmt: skip
        if ev.event == "activated" and ev.rule == _RULE:
            self.activated.set()

    def message(self, text: str) -> None:
        self.console.print(f"[yellow]{text}[/yellow]")


def run_demo(
    *,
    seconds: float = STORY_SECONDS,
    seed: int = 1,
    run_dir: Path | None = None,
    keep: bool = False,
) -> bool:
    """Run the demo; return True when the ledger verified at the end.

    Args:
        seconds: how long the line runs (at least :data:`MIN_SECONDS`); the story is compressed
            to fit.
        seed: seed of the simulated process.
        run_dir: where to keep the config, PTY links and ledger (kept afterwards); None: a fresh
            temporary directory, removed at the end unless ``keep``.
        keep: keep the temporary directory.
    """
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:  # nan fails both comparisons
        raise ValueError(f"the demo runs {MIN_SECONDS:g} s to {MAX_SECONDS:g} s, got {seconds:g}")
    console = Console()
    temporary = run_dir is None
    if run_dir is None:
        run_dir = Path(tempfile.mkdtemp(prefix="edge-demo-"))
    # SIGTERM (a service manager, `timeout`) ends the demo like Ctrl-C, through the cleanup below;
    # its default action would kill the process and leave the temporary directory behind.
    previous = _on_sigterm(signal.default_int_handler)
    try:
        return _demo(console, seconds, seed, run_dir, keep=keep or not temporary)
    finally:
        _on_sigterm(previous)
        if temporary and not keep:
            shutil.rmtree(run_dir, ignore_errors=True)


def _on_sigterm(handler: Any) -> Any:
    """Install ``handler`` for SIGTERM and return the one it replaces (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if handler is None:
        return None
    return signal.signal(signal.SIGTERM, handler)


def _demo(console: Console, seconds: float, seed: int, run_dir: Path, *, keep: bool) -> bool:
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in ("node.toml", "tunnel.yaml"):
        with resources.as_file(resources.files(__name__) / name) as src:
            shutil.copyfile(src, run_dir / name)
    config = load_config(run_dir / "node.toml")
    factor = seconds / STORY_SECONDS
    console.print(
        f"[bold]edge demo[/bold]: cooling tunnel, Modbus RTU over a PTY, {seconds:g} s, seed {seed}\n"
        f"the cooling fails from {4 * factor:.1f} s to {12 * factor:.1f} s; "
        f"{DEMO_OPERATOR} acknowledges the alarm a moment after it is raised\n"
        f"run directory: {run_dir}" + ("" if keep else " (removed at the end)"),
        highlight=False,
    )
    summary, live = asyncio.run(_run(config, run_dir, seconds, seed, console))
    db = config.ledger_path
    conn = connect(db, readonly=True)
    try:
        report = verify_db(conn)
    finally:
        conn.close()

    table = Table(title="demo summary", show_header=False)
    table.add_row("readings taken", str(summary.readings))
    table.add_row("alarms raised", str(summary.activated))
    table.add_row("acknowledged", str(sum(t.event == "acknowledged" for t in live.transitions)))
    table.add_row("alarms cleared", str(summary.cleared))
    table.add_row("ledger entries", str(report.entries))
    table.add_row(
        "ledger verify",
        "[green]OK[/green]" if report.ok else f"[red]FAILED[/red] {report.problems[:3]}",
    )
    if keep:
        table.add_row("ledger file", str(db))
    console.print(table)
    console.print("[bold]The four ISA-18.2 alarm states[/bold]", highlight=False)
    for state in ("active_unack", "active_ack", "rtn_unack", "normal"):
        console.print(Padding(Text(f"{STATE_LABEL[state]}: {STATE_MEANING[state]}"), (0, 0, 0, 2)))
    console.print(
        Padding(Text(
            "An alarm that clears before anyone acknowledges it is 'returned unacked' until "
            "someone does; one acknowledged while active returns straight to normal."
        ), (0, 0, 0, 2))
    )  # fmt: skip
    edge = _edge_command()
    if keep:
        console.print(f"next: {edge} ledger verify --db {db}", soft_wrap=True)
        console.print(f"      {edge} ledger query --db {db} --type alarm --type alarm.ack",
                      soft_wrap=True)  # fmt: skip
    else:
        console.print(
            f"the run directory is removed now; to keep the ledger: {edge} demo --keep "
            "(or --dir DIR)",
            soft_wrap=True,
        )
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
) -> tuple[NodeSummary, _Console]:
    start = time.time()
    live = _Console(console, start)
    scenario = scaled_scenario(load_scenario("demo"), seconds / STORY_SECONDS)
    # Inside the loop SIGTERM cancels this task (the node shuts down as on a stop) and is raised
    # as Ctrl-C once it has; a Python-level handler raising there would break a task instead.
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    terminated: list[bool] = []

    def on_term() -> None:
        terminated.append(True)
        main_task.cancel()

    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        loop.add_signal_handler(signal.SIGTERM, on_term)
    try:
        return await _run_line(config, run_dir, seconds, seed, live, scenario)
    except asyncio.CancelledError:
        if terminated:
            raise KeyboardInterrupt from None
        raise
    finally:
        if in_main_thread:
            loop.remove_signal_handler(signal.SIGTERM)  # resets SIGTERM to its default action
            signal.signal(signal.SIGTERM, signal.default_int_handler)


async def _run_line(
    config: NodeConfig,
    run_dir: Path,
    seconds: float,
    seed: int,
    live: _Console,
    scenario: Scenario,
) -> tuple[NodeSummary, _Console]:
    async with Simulator(scenario, run_dir, seed=seed, line_timing=True):
        node = Node(
            config,
            observer=Observer(
                on_readings=live.readings, on_event=live.event, on_message=live.message
            ),
        )
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        async with asyncio.TaskGroup() as tg:
            running = tg.create_task(node.run(stop), name="node")
            tg.create_task(_operator(node, live, stop, delay=seconds / 20), name="operator")
        return running.result(), live


async def _operator(node: Node, live: _Console, stop: asyncio.Event, delay: float) -> None:
    """The demo operator: acknowledges the limit alarm ``delay`` seconds after it is raised."""
    raised = asyncio.create_task(live.activated.wait())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait((raised, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        raised.cancel()
        stopping.cancel()
    if stop.is_set():
        return
    await asyncio.sleep(delay)
    if stop.is_set():
        return
    command = OperatorCommand(
        "ack", rule=_RULE, actor=DEMO_OPERATOR, comment="seen; cooling technician called"
    )
    await node.apply_command(command)
