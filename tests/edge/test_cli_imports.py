"""Fast start: ``edge --version`` and ``--help`` import no heavy module (checked, not timed).

Each case runs the real CLI in a fresh interpreter and reads ``sys.modules`` after it: an honest
check that does not depend on how loaded the machine is (the wall time is in
tests/bench/test_bench_cli_start.py).
"""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from edge.cli import REGISTRY, main, short_help_from_source

HEAVY = ("numpy", "aiomqtt", "pymodbus", "rich", "ruamel", "sqlite3", "cryptography")
# also kept out: serial-port and Modbus libraries, the JSON and YAML libraries, our cores
ALSO = ("serial", "minimalmodbus", "orjson", "yaml", "edge.drivers", "edge.rules",
        "edge.ledger")  # fmt: skip

_PROBE = """
import sys
from edge.cli import main
try:
    main.main(sys.argv[1:], prog_name="edge")
except SystemExit as exc:
    code = exc.code
import json
loaded = sorted({m.split(".")[0] for m in sys.modules} | {".".join(m.split(".")[:2]) for m in sys.modules})
sys.stderr.write("\\nMODULES " + json.dumps({"code": code, "modules": loaded}) + "\\n")
"""


def _loaded(*args: str) -> tuple[int, set[str], str]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=60
    )
    marker = proc.stderr.rsplit("MODULES ", 1)
    assert len(marker) == 2, proc.stderr
    data = json.loads(marker[1])
    return data["code"], set(data["modules"]), proc.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["--help"],
        ["read", "--help"],
        ["alarm", "--help"],
        ["alarm", "list", "--help"],
        ["config", "check", "--help"],
        ["demo", "--help"],
        ["run", "--help"],
        ["status", "--help"],
    ],
    ids=" ".join,
)
def test_cli_help_and_version_import_no_heavy_module(args: list[str]) -> None:
    code, modules, out = _loaded(*args)
    assert code in (0, None), out
    assert out.strip(), "printed nothing"
    heavy = sorted(m for m in (*HEAVY, *ALSO) if m in modules)
    assert heavy == [], f"edge {' '.join(args)} imported {heavy}"


def test_the_probe_sees_a_heavy_import() -> None:
    """The check above can fail: a command that needs the drivers shows them loaded."""
    code, modules, _ = _loaded("sim", "list")
    assert code in (0, None)
    assert "numpy" in modules or "edge.firmware_sim" in modules


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    code, _, out = _loaded("--version")
    assert code in (0, None)
    assert out.strip() == f"edge, version {version('edge-qc')}"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_registry_line_resolves_to_its_command_and_its_help_reads_from_source(
    name: str,
) -> None:
    ctx = click.Context(main)
    command = main.get_command(ctx, name)
    assert isinstance(command, click.Command)
    assert command.name == name
    from_source = short_help_from_source(REGISTRY[name])
    assert from_source is not None, f"no docstring found for {REGISTRY[name]}"
    for width in (45, 1000):
        shown = click.Command(None, help=from_source).get_short_help_str(width)
        assert shown == command.get_short_help_str(width)


def test_short_help_from_source_reads_multi_line_signatures_and_docstrings() -> None:
    # edge.cli.probe.probe has a multi-line signature; edge.cli.node.run a one-line one
    assert short_help_from_source("edge.cli.node:run") == (
        "Run a node until SIGINT/SIGTERM, then shut down cleanly (exit 0)."
    )
    assert short_help_from_source("edge.cli.node:no_such_function") is None
    assert short_help_from_source("edge.no_such_module:x") is None


def test_top_level_help_lists_every_command() -> None:
    from click.testing import CliRunner

    out = CliRunner().invoke(main, ["--help"]).output
    for name in REGISTRY:
        assert f"\n  {name} " in out


def test_unknown_command_is_a_usage_error() -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(main, ["raed"])
    assert result.exit_code == 2
    assert "No such command 'raed'" in result.output
