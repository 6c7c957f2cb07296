"""``edge run``, ``edge demo`` and ``edge config check``."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path
from typing import Any

import click

from edge.cli.output import dump_json
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
        node = Node(config, freeze_gc=True)  # this process is the node's: see Node.__init__
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
    except (EdgeError, OSError, ExceptionGroup) as exc:
        _fail_leaves(exc)


def _finite(ctx: click.Context, param: click.Parameter, value: float) -> float:
    """Refuse nan, which passes click's range check (every comparison with nan is false)."""
    if value != value:
        raise click.BadParameter(f"{value} is not a number of seconds", ctx, param)
    return value


@click.command()
@click.option("--seconds", default=30.0, show_default=True, type=click.FloatRange(min=10, max=3600),
              callback=_finite,
              help="How long the demo line runs (the story is compressed to fit; 10 s to 1 h).")  # fmt: skip
@click.option("--seed", default=1, show_default=True, help="Seed of the simulated process.")
@click.option("--dir", "run_dir", type=click.Path(path_type=Path), default=None,
              help="Keep the demo's config, ledger and PTY links in DIR (default: a temporary "
              "directory, removed at the end).")  # fmt: skip
@click.option("--keep", is_flag=True, help="Keep the temporary directory (its path is printed).")
def demo(seconds: float, seed: int, run_dir: Path | None, keep: bool) -> None:
    """Run the walking skeleton: simulated sensor -> Modbus RTU -> rules -> ledger (no hardware).

    A cooling failure raises the limit alarm, a demo operator acknowledges it, and it clears;
    each state is explained as it is entered. Needs no hardware and no broker.
    """
    from edge.demo import run_demo

    configure("warning")
    try:
        ok = run_demo(seconds=seconds, seed=seed, run_dir=run_dir, keep=keep)
    except (EdgeError, OSError, ExceptionGroup) as exc:
        _fail_leaves(exc)
    sys.exit(0 if ok else 1)


@click.group()
def config() -> None:
    """Work with node config files."""


@config.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON report instead of lines.")
def check(files: tuple[Path, ...], as_json: bool) -> None:
    """Validate node config files; print one line per problem and exit 1 if there is any.

    A problem reads FILE:LINE: KEY.PATH: MESSAGE (no line when not even the key's table is
    written; FILE:LINE:COL: TOML syntax: ... for a file that is not TOML).
    """
    failed = False
    report: list[dict[str, Any]] = []
    for f in files:
        try:
            cfg = load_config(f)
        except ConfigError as exc:
            failed = True
            report.append({"file": str(f), "ok": False,
                           "problems": [_problem_json(f, p) for p in exc.problems]})  # fmt: skip
            if not as_json:
                for line in exc.problems:
                    click.echo(line)
            continue
        counts = {"buses": len(cfg.buses), "devices": len(cfg.devices),
                  "points": len(cfg.points), "rule_files": len(cfg.rules.files)}  # fmt: skip
        report.append({"file": str(f), "ok": True, "problems": [], **counts})
        if not as_json:
            click.echo(
                f"{f}: ok ({counts['buses']} buses, {counts['devices']} devices, "
                f"{counts['points']} points, {counts['rule_files']} rule files)"
            )
    if as_json:
        click.echo(dump_json({"ok": not failed, "files": report}, indent=True))
    sys.exit(1 if failed else 0)


def _problem_json(file: Path, problem: str) -> dict[str, Any]:
    """``FILE[:LINE[:COL]]: KEY: MESSAGE`` as fields (key None for file-level problems)."""
    match = re.match(re.escape(str(file)) + r"(?::(\d+))?(?::(\d+))?: (.*)$", problem)
    if match is None:
        return {"file": str(file), "line": None, "key": None, "message": problem}
    line, column, rest = match.groups()
    key, sep, message = rest.partition(": ")
    if not sep or " " in key:  # "cannot read: ...", "TOML syntax: ...": no key
        key, message = None, rest
    out: dict[str, Any] = {"file": str(file), "line": int(line) if line else None}
    if column:
        out["column"] = int(column)
    return {**out, "key": key, "message": message}


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


def _fail_leaves(exc: Exception) -> None:
    """Edge and OS errors, also from inside the node's TaskGroup, as one line each; exit 1.

    Anything else is a bug and keeps its traceback.
    """
    leaves = _leaves(exc)
    if not all(isinstance(e, EdgeError | OSError) for e in leaves):
        raise exc
    for leaf in leaves:
        if isinstance(leaf, OSError) and not isinstance(leaf, EdgeError):
            where = f": {leaf.filename}" if leaf.filename else ""
            click.echo(f"edge: {leaf.strerror or leaf}{where}", err=True)
        else:
            for line in str(leaf).splitlines() or [repr(leaf)]:
                click.echo(f"edge: {line}", err=True)
    sys.exit(1)


def _fail(exc: EdgeError) -> None:
    """Print an edge error as plain lines, one per problem (never a traceback), and exit 1."""
    for line in str(exc).splitlines() or [repr(exc)]:
        click.echo(f"edge: {line}", err=True)
    sys.exit(1)


COMMANDS: list[click.Command] = [run, demo, config]
