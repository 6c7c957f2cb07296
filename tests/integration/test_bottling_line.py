"""The whole product on the bottling scenario: four buses (RTU multi-drop, two serial-line
devices, Modbus TCP), the example rule file, lots from the scanner, and the quality manager's
view at the end (verify, trace, EPCIS export validated against GS1's schema)."""

from __future__ import annotations

import asyncio
import json
import shutil
from importlib import resources
from pathlib import Path

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
