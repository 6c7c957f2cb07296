"""``--json`` means the same everywhere: every command that prints data has it.

Walks the real command tree (every registry entry loaded) rather than a list kept by hand, so a
new command without ``--json`` fails here unless it is one that prints no data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click
from click.testing import CliRunner

from edge.cli import main

#: commands that print no data a program would read, or print a data format of their own
NO_JSON = {
    "run": "a long-running node; it logs key=value lines",
    "demo": "a show for people",
    "sim run": "serves a simulator; its ports are in ports.json",
    "ledger export": "its output is a data format itself (--format csv|epcis)",
    "ledger report": "a document for people (--format html|pdf); trace --json has its data",
    "serve": "a long-running web server; it logs key=value lines (its chart pages have .json)",
}
#: commands another branch of issue 16 gives --json (i16-rules: rules)
PENDING = {"rules check", "rules explain"}


def _leaves(cmd: click.Command, path: list[str]) -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(main)
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            assert sub is not None
            yield from _leaves(sub, [*path, name])
    else:
        yield " ".join(path), cmd


def _has_json(cmd: click.Command) -> bool:
    return any("--json" in getattr(p, "opts", ()) for p in cmd.params)


def test_every_command_that_prints_data_has_json() -> None:
    leaves = dict(_leaves(main, []))
    missing = sorted(name for name, cmd in leaves.items() if not _has_json(cmd))
    assert set(missing) <= set(NO_JSON) | PENDING, missing
    # the exemptions are real commands (a renamed one must not leave a stale exemption)
    assert set(NO_JSON) <= set(leaves)


def test_sim_list_json() -> None:
    result = CliRunner().invoke(main, ["sim", "list", "--json"])
    assert result.exit_code == 0
    scenarios = json.loads(result.stdout)
    assert "demo" in scenarios
    assert "RS-485" in scenarios["demo"]


def test_keys_init_json_and_its_error_as_json(tmp_path: Path) -> None:
    first = CliRunner().invoke(main, ["keys", "init", "--data-dir", str(tmp_path), "--json"])
    assert first.exit_code == 0, first.output
    made = json.loads(first.stdout)
    assert made["ok"] is True
    assert Path(made["key"]).exists()
    assert Path(made["public_key"]).read_text().strip()
    assert len(made["feed"]) == 64
    again = CliRunner().invoke(main, ["keys", "init", "--data-dir", str(tmp_path), "--json"])
    assert again.exit_code == 1
    error = json.loads(again.stdout)
    assert error["ok"] is False
    assert made["key"] in error["error"]
    text = CliRunner().invoke(main, ["keys", "init", "--data-dir", str(tmp_path)])
    assert text.exit_code == 1
    assert text.stderr.startswith("edge: ")
    assert text.stderr.count("\n") == 1
