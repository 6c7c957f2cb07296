"""``edge run``, ``edge demo`` and ``edge config check``."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import click

from edge.config import load_config
from edge.errors import ConfigError, EdgeError
from edge.log import configure


@click.command()
@click.option("-c", "--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="Node config file (TOML).")  # fmt: skip
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))  # fmt: skip
def run(config_path: Path, log_level: str) -> None:
    """Run a node until SIGINT/SIGTERM, then shut down cleanly (exit 0).

    SIGHUP re-reads the rule files (they are also watched for changes); an invalid new set is
    rejected with a config alarm and the running set stays in force.
    """
    from edge.runtime import Node  # heavy imports only for commands that need them

    configure(log_level)
    try:
        config = load_config(config_path)
        node = Node(config)
    except EdgeError as exc:
        _fail(exc)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, node.request_reload)
        await node.run(stop)

    try:
        asyncio.run(main())
    except EdgeError as exc:
        _fail(exc)


@click.command()
@click.option("--seconds", default=30.0, show_default=True, type=click.FloatRange(min=5),
              help="How long the demo line runs.")  # fmt: skip
@click.option("--seed", default=1, show_default=True, help="Seed of the simulated process.")
@click.option("--dir", "run_dir", type=click.Path(path_type=Path), default=None,
              help="Where to keep the demo's ledger and PTY links (default: a fresh temp dir).")  # fmt: skip
def demo(seconds: float, seed: int, run_dir: Path | None) -> None:
    """Run the walking skeleton: simulated sensor -> Modbus RTU -> rules -> ledger (no hardware)."""
    from edge.demo import run_demo

    configure("warning")
    try:
        ok = run_demo(seconds=seconds, seed=seed, run_dir=run_dir)
    except EdgeError as exc:
        _fail(exc)
    sys.exit(0 if ok else 1)


@click.group()
def config() -> None:
    """Work with node config files."""


@config.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def check(files: tuple[Path, ...]) -> None:
    """Validate node config files; print one line per problem and exit 1 if there is any."""
    failed = False
    for f in files:
        try:
            cfg = load_config(f)
        except ConfigError as exc:
            failed = True
            for line in exc.problems:
                click.echo(line)
            continue
        click.echo(
            f"{f}: ok ({len(cfg.buses)} buses, {len(cfg.devices)} devices, "
            f"{len(cfg.points)} points, {len(cfg.rules.files)} rule files)"
        )
    sys.exit(1 if failed else 0)


def _fail(exc: EdgeError) -> None:
    """Print an edge error as plain lines (never a traceback) and exit 1."""
    click.echo(f"edge: {exc}", err=True)
    sys.exit(1)


COMMANDS: list[click.Command] = [run, demo, config]
