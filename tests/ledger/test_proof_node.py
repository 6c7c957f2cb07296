"""The auditor's path end to end: a real node runs the bottling line (firmware-sim over PTYs and
Modbus TCP), ``edge ledger export --format proof`` bundles a finished lot, and the verifier
shipped in the bundle, run without edge-qc on its path, accepts it when pinned to the node's own
``node.key.pub`` and rejects a changed byte and a dropped entry."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import _cffi_backend
import cryptography
import pytest
from click.testing import CliRunner

from edge.cli import main
from edge.config import load_config
from edge.firmware_sim import Simulator, load_scenario
from edge.runtime import Node

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
LOT = "L2026-0412-A"


async def _run_line(tmp: Path, seconds: float) -> None:
    """The shipped bottling scenario with lot changes every 8 s instead of every minute."""
    text = (resources.files("edge.firmware_sim.scenarios") / "bottling.yaml").read_text()
    text = text.replace("{at: 1m, code:", "{at: 8s, code:").replace(
        "{at: 2m, code:", "{at: 16s, code:"
    )
    scenario = tmp / "bottling-fast.yaml"
    scenario.write_text(text.replace("interval: 5s", "interval: 1s"))
    async with Simulator(load_scenario(scenario), tmp / "run", seed=11) as sim:
        host, port = sim.tcp_endpoints["plc"]
        node_toml = (REPO / "examples" / "node.toml").read_text()
        (tmp / "node.toml").write_text(node_toml.replace("127.0.0.1:5020", f"{host}:{port}"))
        shutil.copytree(REPO / "examples" / "rules", tmp / "rules")
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        await Node(load_config(tmp / "node.toml")).run(stop)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("proof-node")
    asyncio.run(_run_line(tmp, seconds=19.0))  # data_dir "var" is beside node.toml
    return tmp / "var"


def _verify(folder: Path, bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-E", "-s", "-S", "verify_proof.py", str(bundle), *args],
        cwd=folder,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_real_lot_proves_to_the_nodes_own_key(run: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "lot.proof.zip"
    result = CliRunner().invoke(
        main,
        ["ledger", "export", "--db", str(run / "ledger.db"), "--lot", LOT, "--format", "proof",
         "-o", str(bundle)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(bundle) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(files["proof.json"])
    (part,) = manifest["feeds"]
    lines = files[f"entries/{part['feed']}.jsonl"].split(b"\n")[:-1]
    entries = {json.loads(line)["seq"]: line for line in lines}
    types = {json.loads(entries[e["seq"]])["type"] for e in part["entries"] if "lot" in e["roles"]}
    assert {"lot.start", "lot.end"} <= types
    assert part["names"][0]["node_id"] == "bottling-gw1"

    auditor = tmp_path / "auditor"
    auditor.mkdir()
    (auditor / "verify_proof.py").write_bytes(files["verify_proof.py"])
    (auditor / "cryptography").symlink_to(Path(cryptography.__file__).parent)
    backend = Path(str(_cffi_backend.__file__))
    (auditor / backend.name).symlink_to(backend)
    pub = run / "node.key.pub"
    checked = _verify(auditor, bundle, "--trust", str(pub))
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout.rstrip().endswith("OK")
    assert "(trusted)" in checked.stdout
    print(f"\nbundle: {bundle.stat().st_size} bytes\n{checked.stdout}")

    # one byte of the lot's end changed; the lot's end left out: both fail
    end = next(
        e["seq"] for e in part["entries"] if json.loads(entries[e["seq"]])["type"] == "lot.end"
    )
    name = f"entries/{part['feed']}.jsonl"
    raw = entries[end]

    def without(replacement: bytes | None) -> bytes:
        kept = [replacement if seq == end else line for seq, line in entries.items()]
        return b"".join(line + b"\n" for line in kept if line is not None)

    at = raw.index(b'Z","type"') - 1  # the last digit of the entry's time: still valid JSON
    digit = bytes([ord("0") + (raw[at] - ord("0") + 1) % 10])
    for change, want in (
        (without(raw[:at] + digit + raw[at + 1 :]), f"seq {end}: its bytes hash to"),
        (without(raw[:-1] + b"]"), f"entries missing from the range: [{end}]"),
        (without(None), f"entries missing from the range: [{end}]"),
    ):
        forged = tmp_path / "forged.zip"
        with zipfile.ZipFile(forged, "w") as archive:
            for key, data in {**files, name: change}.items():
                archive.writestr(key, data)
        checked = _verify(auditor, forged, "--trust", str(pub))
        assert checked.returncode == 1, checked.stdout
        assert want in checked.stdout
