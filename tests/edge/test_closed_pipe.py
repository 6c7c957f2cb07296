"""A closed pipe ends every ``edge`` command quietly: no traceback, no message, exit 1.

The reader of the pipe is gone before the command starts (its end is closed first), so the
first write fails, whatever the command prints and however (click.echo, rich, orjson bytes,
the final flush at exit). Real processes, real pipes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ledger_scenario as sc
import pytest

from edge.cli.pipes import EXIT_CLOSED_PIPE

GOOD_TOML = """
[node]
id = "gw"
[buses.b]
kind = "tcp"
address = "127.0.0.1:5020"
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("pipe")
    toml = base / "node.toml"
    toml.write_text(GOOD_TOML)
    return {"db": sc.build(base / "ledger.db").db, "toml": toml}


def _run_into_closed_pipe(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read
    try:
        return subprocess.run(
            [sys.executable, "-m", "edge", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
            env={**os.environ, "COLUMNS": "100"},
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["ledger", "query", "--json", "--db", "{db}"],
        ["ledger", "query", "--db", "{db}"],
        ["ledger", "query", "--csv", "--db", "{db}"],
        ["ledger", "trace", sc.LOT, "--json", "--db", "{db}"],
        ["ledger", "trace", sc.LOT, "--db", "{db}"],
        ["ledger", "verify", "--db", "{db}"],
        ["ledger", "verify", "--json", "--db", "{db}"],
        ["ledger", "export", "--lot", sc.LOT, "--format", "epcis", "--db", "{db}"],
        ["config", "check", "{toml}"],
        ["config", "check", "--json", "{toml}"],
        ["sim", "list"],
    ],
    ids=" ".join,
)
def test_a_closed_pipe_ends_quietly(files: dict[str, Path], args: list[str]) -> None:
    argv = [a.format(**files) for a in args]
    result = _run_into_closed_pipe(argv)
    assert result.stderr.decode() == ""
    assert result.returncode == EXIT_CLOSED_PIPE


def test_an_open_pipe_still_gets_everything(files: dict[str, Path]) -> None:
    """The control: the same command into a live pipe exits 0 with its output."""
    result = subprocess.run(
        [sys.executable, "-m", "edge", "ledger", "query", "--json", "--db", str(files["db"])],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert result.stdout.count(b"\n") > 10


def test_closed_pipe_inside_a_task_group_counts_too() -> None:
    from edge.cli.pipes import is_closed_pipe

    assert is_closed_pipe(ExceptionGroup("tasks", [BrokenPipeError(), BrokenPipeError()]))
    assert is_closed_pipe(OSError(32, "Broken pipe"))
    # anything else in the group is a real failure and must not be hidden
    assert not is_closed_pipe(ExceptionGroup("tasks", [BrokenPipeError(), ValueError("x")]))
    assert not is_closed_pipe(OSError(28, "No space left on device"))
