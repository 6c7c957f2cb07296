"""docs/reference/commands.md is the click tree of ``edge.cli.main``, regenerated and compared.

The page is written by tools/gen_commands.py; these tests fail when a command or option was
added, removed or re-described in edge/cli/*.py without regenerating it, and say what differs.
"""

from __future__ import annotations

import difflib
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import click

from edge.cli import main

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reference" / "commands.md"
FIX = "run `.venv/bin/python tools/gen_commands.py` and commit docs/reference/commands.md"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_commands", ROOT / "tools" / "gen_commands.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def walk(cmd: click.Command, path: str) -> list[tuple[str, click.Command]]:
    out = [(path, cmd)]
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            out.extend(walk(sub, f"{path} {name}"))
    return out


def test_every_command_and_option_is_in_the_reference() -> None:
    page = PAGE.read_text(encoding="utf-8")
    missing = []
    for path, cmd in walk(main, "edge"):
        if f"`{path}`" not in page:
            missing.append(f"command {path}")
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.hidden:
                for flag in param.opts:
                    if f"`{flag}`" not in page.split(f"`{path}`\n", 1)[-1]:
                        missing.append(f"option {flag} of {path}")
    assert not missing, f"not in docs/reference/commands.md: {missing}; {FIX}"


def test_reference_is_up_to_date() -> None:
    expected = generator().render()
    actual = PAGE.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                actual.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                "docs/reference/commands.md (committed)",
                "generated from edge.cli",
                n=1,
            )
        )
        raise AssertionError(f"the command reference drifted from the CLI; {FIX}\n{diff[:4000]}")


def test_generator_check_mode_agrees() -> None:
    done = subprocess.run([sys.executable, "tools/gen_commands.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_help_text_of_a_command_appears_verbatim() -> None:
    """The page holds each command's own help, as `edge ... --help` prints it (re-wrapped)."""
    page = " ".join(PAGE.read_text(encoding="utf-8").split())
    for path, cmd in walk(main, "edge"):
        first = " ".join((cmd.help or "").split("\n\n")[0].split())
        assert first, f"{path} has no help text: give its click command a docstring"
        assert first in page, f"help of {path} missing from commands.md; {FIX}"
