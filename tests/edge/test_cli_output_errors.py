"""Output that cannot be written (a full disk: stdout on /dev/full) is one line, exit 1.

A closed pipe ends quietly (tests/edge/test_cli_pipes*); any other write error on stdout
(ENOSPC, EIO) used to end in a 30-line traceback from click.echo.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUNNEL = ROOT / "examples" / "rules" / "tunnel.yaml"
FULL = Path("/dev/full")

pytestmark = pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full (Linux)")


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["rules", "check", str(TUNNEL)],
        ["rules", "check", "--json", str(TUNNEL)],
        ["rules", "test", str(ROOT / "tests" / "rules" / "inline" / "tunnel_test.yaml")],
    ],
)
def test_a_full_disk_on_stdout_is_one_line_and_exit_1(args: list[str]) -> None:
    with FULL.open("w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "edge", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "120"},
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if not ln.startswith(("warning:", "points "))]
    assert lines == ["edge: cannot write the output: No space left on device"]
