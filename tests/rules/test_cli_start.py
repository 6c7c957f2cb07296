"""``edge rules ... --help`` imports neither the rules package nor rich, orjson or YAML.

Like tests/edge/test_cli_imports.py for the other commands: a fresh interpreter runs the real
CLI and reports ``sys.modules`` (a check, not a timing).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_PROBE = """
import json, sys
from edge.cli import main
try:
    main.main(sys.argv[1:], prog_name="edge")
except SystemExit:
    pass
sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n")
"""

HEAVY = ("numpy", "rich", "orjson", "yaml", "ruamel", "edge.rules", "edge.config")


@pytest.mark.parametrize(
    "args", [["rules", "--help"], ["rules", "check", "--help"], ["rules", "test", "--help"]]
)
def test_rules_help_imports_nothing_heavy(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=60
    )
    assert "Usage: edge rules" in proc.stdout
    modules = json.loads(proc.stderr.rsplit("MODULES ", 1)[1])
    heavy = [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert heavy == []
