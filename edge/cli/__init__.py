"""The ``edge`` command line: one click group whose commands are imported only when used.

Each area's commands live in a module of their own; :data:`REGISTRY` names them, one line per
top-level command: ``"name": "module:function"``. A command's module is imported only when that
command runs or its own help is shown, so ``edge --version`` and ``edge --help`` import neither
numpy, pymodbus, SQLite, rich nor the crypto library (0.4 s of imports before;
tests/edge/test_cli_imports.py holds the line, tests/bench/test_bench_cli_start.py measures the
time). ``edge --help`` reads each command's short help from its module's source text instead of
importing it. Command modules keep their heavy imports inside the functions that need them for
the same reason: ``edge read --help`` imports the read command's module, nothing more.

Every command ends quietly on a closed pipe (``edge ledger query --json | head -1``): see
:mod:`edge.cli.pipes`. Every failure a command reports through click (a
:class:`click.ClickException`, a usage error) is one line, ``edge: <message>`` on stderr, or with
``--json`` on the command line one JSON object ``{"ok": false, "error": ...}`` on stdout
(:func:`edge.cli.output.fail`); the exit status is click's (1, or 2 for usage errors).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click

from edge.cli.output import fail
from edge.cli.pipes import (
    closed_pipe_exit,
    is_closed_pipe,
    is_output_error,
    output_error_exit,
    quiet_on_closed_pipe,
)

__all__ = ["REGISTRY", "LazyGroup", "main", "short_help_from_source"]

#: top-level command -> "module:function" (the click command). Adding a command is one line here.
REGISTRY: dict[str, str] = {
    "run": "edge.cli.node:run",
    "demo": "edge.cli.node:demo",
    "config": "edge.cli.node:config",
    "sim": "edge.cli.sim:sim",
    "read": "edge.cli.read:read",
    "probe": "edge.cli.probe:probe",
    "scan": "edge.cli.scan:scan",
    "write": "edge.cli.write:write",
    "record": "edge.cli.record:record",
    "readings": "edge.cli.readings:readings",
    "rules": "edge.cli.rules:rules",
    "ledger": "edge.cli.ledger:ledger",
    "keys": "edge.cli.ledger:keys",
    "alarm": "edge.cli.alarm:alarm",
    "trust": "edge.cli.trust:trust",
    "init": "edge.cli.init:init",
    "status": "edge.cli.status:status",
    "serve": "edge.cli.serve:serve",
}


class LazyGroup(click.Group):
    """A click group that imports a command's module only when the command is looked up.

    Args:
        lazy: command name -> ``"module:function"``.
        **kwargs: as for :class:`click.Group`.
    """

    def __init__(self, *args: Any, lazy: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, loaded or not."""
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, its module imported on first use."""
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(_load(cmd_name, self.lazy[cmd_name]), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the commands with their short help, without importing their modules."""
        names = self.list_commands(ctx)
        width = formatter.width - 6 - max(map(len, names), default=0)
        rows: list[tuple[str, str]] = []
        for name in names:
            if name in self.commands:
                if self.commands[name].hidden:
                    continue
                text = self.commands[name].get_short_help_str(width)
            else:
                found = short_help_from_source(self.lazy[name])
                if found is None:  # not found in the text: import it after all
                    command = self.get_command(ctx, name)
                    text = command.get_short_help_str(width) if command else ""
                else:
                    text = _shorten(found, width)
            rows.append((name, text))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a closed pipe ends it quietly (:mod:`edge.cli.pipes`)."""
        try:
            return super().invoke(ctx)
        except Exception as exc:  # before click's own EPIPE handling, which exits 1
            if is_closed_pipe(exc):
                raise closed_pipe_exit() from None
            if is_output_error(exc):
                raise output_error_exit(exc) from None
            raise

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Click's entry point; every failure is one line (JSON with ``--json``), see module doc."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        with quiet_on_closed_pipe():
            try:
                code = super().main(argv, prog_name, complete_var, False, **extra)
            except click.exceptions.NoArgsIsHelpError as exc:  # `edge ledger`: its help
                exc.show()
                sys.exit(exc.exit_code)
            except click.UsageError as exc:
                hint = f" (try '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
                fail(exc.format_message() + hint, as_json="--json" in argv, code=exc.exit_code)
            except click.ClickException as exc:
                fail(exc.format_message(), as_json="--json" in argv, code=exc.exit_code)
            except click.Abort:
                fail("aborted", code=1)
            sys.exit(code if isinstance(code, int) else 0)


def _load(name: str, target: str) -> click.Command:
    module_name, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(command, click.Command):  # a registry mistake, found by the tests
        raise TypeError(f"edge CLI registry: {name!r} -> {target} is not a click command")
    return command


_DOCSTRING = (
    r'(?:async\s+)?def\s+{name}\s*\(.*?\)[^:]*:\s*(?:"""|\'\'\')\s*(.*?)\s*(?:\n\s*\n|"""|\'\'\')'
)


def short_help_from_source(target: str) -> str | None:
    """The first paragraph of ``module:function``'s docstring, read from the module's source.

    Click's short help is that paragraph (up to its first sentence when long); reading the text
    costs well under a millisecond where importing the module costs up to 0.2 s.
    """
    import importlib.util
    import re

    module_name, _, attribute = target.partition(":")
    try:
        spec = importlib.util.find_spec(module_name)
        if spec is None or spec.origin is None:
            return None
        with open(spec.origin, encoding="utf-8") as f:
            source = f.read()
    except (ImportError, OSError, ValueError):
        return None
    pattern = _DOCSTRING.replace("{name}", re.escape(attribute))
    match = re.search(pattern, source, re.DOTALL | re.MULTILINE)
    if match is None:
        return None
    return " ".join(match.group(1).split())


def _shorten(text: str, width: int) -> str:
    """Shorten a short help as click does: the first sentence, cut at a word with an ellipsis."""
    return click.Command(None, help=text).get_short_help_str(width)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from edge import __version__

    click.echo(f"edge, version {__version__}")
    ctx.exit()


@click.group(
    cls=LazyGroup,
    lazy=REGISTRY,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
def main() -> None:
    """edge-qc: sensor acquisition, quality rules and a tamper-evident ledger for the factory edge."""
