"""`edge demo` (what `make demo` runs): an alarm raised and cleared, a verifying ledger, < 60 s."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_raises_and_clears_an_alarm_and_verifies(tmp_path: Path) -> None:
    t0 = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "edge", "demo", "--seconds", "25", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "120", "PATH": "/usr/bin:/bin"},
    )
    took = time.monotonic() - t0
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "ACTIVATED" in out
    assert "CLEARED" in out
    assert out.index("ACTIVATED") < out.index("CLEARED")
    assert "ledger verify" in out
    assert "OK" in out.split("ledger verify")[1].splitlines()[0]
    assert "Traceback" not in result.stderr
    assert took < 60
    # the ledger it leaves behind verifies with the quality manager's command too
    verify = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge",
            "ledger",
            "verify",
            "--db",
            str(tmp_path / "data" / "ledger.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
