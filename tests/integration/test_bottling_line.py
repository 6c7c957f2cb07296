"""The whole product on the bottling scenario: four buses (RTU multi-drop, two serial-line
devices, Modbus TCP), the example rule file, lots from the scanner, and the quality manager's
view at the end (verify, trace, EPCIS export validated against GS1's schema, a lot's proof bundle
checked by its own verifier). One run of the line serves every test of the module."""

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
import jsonschema
import pytest
from click.testing import CliRunner

from edge.cli import main
from edge.config import load_config
from edge.drivers import BusStats
from edge.firmware_sim import Simulator, load_scenario
from edge.runtime import Node, NodeSummary

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO.parent / "shared" / "vectors" / "epcis" / "EPCIS-JSON-Schema.json"
LOTS = ("L2026-0412-A", "L2026-0412-B")


def _fast_scenario(tmp_path: Path) -> Path:
    """The shipped bottling scenario with lot changes every 8 s instead of every minute."""
    text = (resources.files("edge.firmware_sim.scenarios") / "bottling.yaml").read_text()
    text = text.replace("{at: 1m, code:", "{at: 8s, code:").replace(
        "{at: 2m, code:", "{at: 16s, code:"
    )
    text = text.replace("interval: 5s", "interval: 1s")
    path = tmp_path / "bottling-fast.yaml"
    path.write_text(text)
    return path


async def _run_line(tmp_path: Path, seconds: float) -> NodeSummary:
    async with Simulator(load_scenario(_fast_scenario(tmp_path)), tmp_path / "run", seed=7) as sim:
        host, port = sim.tcp_endpoints["plc"]
        node_toml = (REPO / "examples" / "node.toml").read_text()
        (tmp_path / "node.toml").write_text(node_toml.replace("127.0.0.1:5020", f"{host}:{port}"))
        shutil.copytree(REPO / "examples" / "rules", tmp_path / "rules")
        node = Node(load_config(tmp_path / "node.toml"))
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        return await node.run(stop)


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, NodeSummary]:
    tmp = tmp_path_factory.mktemp("bottling")
    summary = asyncio.run(_run_line(tmp, seconds=19.0))
    return tmp / "var" / "ledger.db", summary


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_every_bus_delivered_good_readings(line: tuple[Path, NodeSummary]) -> None:
    _, summary = line
    assert summary.readings > 100
    assert set(summary.bus_stats) == {"line-bus", "filler-scale", "lot-scanner", "plc"}
    for bus, stats in summary.bus_stats.items():
        assert isinstance(stats, BusStats), bus
        assert stats.responses > 0, bus
        assert stats.dropped == 0, bus


def test_ledger_verifies_and_holds_lots(line: tuple[Path, NodeSummary]) -> None:
    db, _ = line
    _cli("ledger", "verify", "--db", str(db))
    rows = [
        json.loads(x)
        for x in _cli("ledger", "query", "--db", str(db), "--json").splitlines()
        if x.strip()
    ]
    types = {r["type"] for r in rows}
    assert {
        "node.start",
        "rules.change",
        "lot.start",
        "lot.end",
        "readings.digest",
        "node.stop",
    } <= types


def test_trace_of_a_finished_lot_has_aggregates_from_the_scale(
    line: tuple[Path, NodeSummary],
) -> None:
    db, _ = line
    trace = json.loads(_cli("ledger", "trace", LOTS[0], "--db", str(db), "--json"))
    text = json.dumps(trace)
    assert LOTS[0] in text
    assert "lot.end" in text
    assert '"fill_weight"' in text  # the scale's aggregates made it into the lot record


def test_epcis_export_validates_against_gs1_schema(
    line: tuple[Path, NodeSummary], tmp_path: Path
) -> None:
    db, _ = line
    out = tmp_path / "lot.jsonld"
    _cli("ledger", "export", "--db", str(db), "--lot", LOTS[0], "--format", "epcis", "-o", str(out))
    document = json.loads(out.read_text())
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator(schema).validate(document)
    events = document["epcisBody"]["eventList"]
    assert any("sensorElementList" in e for e in events)


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


def test_a_real_lot_proves_to_the_nodes_own_key(
    line: tuple[Path, NodeSummary], tmp_path: Path
) -> None:
    """The auditor's path: ``edge ledger export --format proof`` bundles a finished lot, and the
    verifier shipped in the bundle, run without edge-qc on its path, accepts it when pinned to the
    node's own ``node.key.pub`` and rejects a changed byte and a dropped entry."""
    db, _ = line
    run = db.parent
    bundle = tmp_path / "lot.proof.zip"
    result = CliRunner().invoke(
        main,
        ["ledger", "export", "--db", str(run / "ledger.db"), "--lot", LOTS[0], "--format", "proof",
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
