"""Benchmark: wall time of ``edge --version``, ``edge --help`` and ``edge read --help`` (< 0.15 s).

Each is run as a technician runs it, the installed ``edge`` script in a fresh process, 15 times;
printed: the median and the best beside the limit, and their ratio. Before the lazy command
registry (edge/cli/__init__.py) every command module and their imports (numpy, pymodbus, rich,
SQLite, the crypto library) loaded first: 0.41 s on the issue's machine. The honest, load-proof
check that nothing heavy is imported is tests/edge/test_cli_imports.py; this measures the time.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

LIMIT_S = 0.15
RUNS = 15


def _edge_script() -> list[str]:
    script = Path(sys.executable).parent / "edge"
    if script.exists():
        return [str(script)]
    found = shutil.which("edge")
    return [found] if found else [sys.executable, "-m", "edge"]


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["read", "--help"]], ids=" ".join)
def test_bench_cli_start(args: list[str]) -> None:
    command = [*_edge_script(), *args]
    subprocess.run(command, capture_output=True, check=True)  # warm the file cache
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    median, best = statistics.median(times), min(times)
    print(
        f"edge {' '.join(args)}: median {median * 1000:.0f} ms, best {best * 1000:.0f} ms | "
        f"limit {LIMIT_S * 1000:.0f} ms | ratio {median / LIMIT_S:.2f}"
    )
    assert median < LIMIT_S
