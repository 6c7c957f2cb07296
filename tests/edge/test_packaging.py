"""The wheel a gateway installs: `edge` on PATH, its templates and scenarios, no dev tools.

Built from this checkout with pip (``--no-deps``: only the build backend is fetched) and read as
the zip it is; the fresh-venv install and its size are measured by hand (docs/guide/install.md).
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEV_TOOLS = {"pytest", "pytest-asyncio", "pytest-timeout", "pytest-xdist", "hypothesis", "mypy",
             "ruff", "rfc8785", "jsonschema", "types-pyserial"}  # fmt: skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("dist")
    # Built from a copy: setuptools writes build/ and *.egg-info into the tree it builds, and
    # two xdist workers (or a second checkout's run) building the same tree at once collide.
    src = tmp_path_factory.mktemp("src") / "edge-qc"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".hypothesis", ".*_cache"))  # fmt: skip
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (path,) = out.glob("edge_qc-*.whl")
    return zipfile.ZipFile(path)


def _dist_info(wheel: zipfile.ZipFile, name: str) -> str:
    (member,) = [n for n in wheel.namelist() if n.endswith(f".dist-info/{name}")]
    return wheel.read(member).decode()


def test_the_wheel_puts_edge_on_path(wheel: zipfile.ZipFile) -> None:
    entry_points = configparser.ConfigParser()
    entry_points.read_string(_dist_info(wheel, "entry_points.txt"))
    assert entry_points["console_scripts"]["edge"] == "edge.cli:main"


def test_the_wheel_requires_runtime_dependencies_only(wheel: zipfile.ZipFile) -> None:
    meta = Parser().parsestr(_dist_info(wheel, "METADATA"))
    required = meta.get_all("Requires-Dist") or []
    unconditional = {r.split(";")[0].split(">")[0].split("=")[0].strip().lower()
                     for r in required if "extra ==" not in r}  # fmt: skip
    assert "aiomqtt" in unconditional
    assert unconditional.isdisjoint(DEV_TOOLS), unconditional & DEV_TOOLS


def test_the_wheel_carries_what_init_and_demo_read(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for needed in ("edge/templates/node.toml", "edge/templates/first-rule.yaml",
                   "edge/templates/edge-qc.service", "edge/cli/init.py",
                   "edge/demo/node.toml", "edge/demo/tunnel.yaml",
                   "edge/firmware_sim/scenarios/demo.yaml"):  # fmt: skip
        assert needed in names, needed
    assert not any(n.startswith("tests/") for n in names)


def test_the_version_is_the_installed_distributions() -> None:
    """``edge.__version__`` is a literal (no importlib.metadata in a running node): it must be
    what pyproject.toml declares and what the installed distribution reports."""
    import tomllib
    from importlib.metadata import version

    import edge

    declared = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert edge.__version__ == declared["project"]["version"] == version("edge-qc")
