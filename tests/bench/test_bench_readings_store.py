"""Readings store benchmark: stored bytes per raw reading, beside the limit of 8 (issue 18).

Two real runs of the node against firmware-sim (its process models: normal noise on float32
registers, counters, thermal lags, bits): the 40-point job (40 points on one Modbus TCP device,
polled every 100 ms, as issue 18 measured against Node-RED) and the shipped bottling scenario
(four buses, examples/node.toml). The figure is the bytes the readings store uses in the
database file -- SQLite's ``dbstat`` page bytes minus their free space, of every readings table
and index (compressed blocks, staged pieces, block rows, summaries, legacy rows) -- divided by
the readings stored; in a file of any size the pages fill, so this is its steady state. The
``readings.digest`` ledger entries (one per block) are printed beside it. The anchor is the same
readings stored as SQLite rows with JSON values, the store before (~128 bytes a reading).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from importlib import resources
from pathlib import Path

from edge.config import load_config
from edge.firmware_sim import Simulator, load_scenario
from edge.ledger.readings_read import read_readings
from edge.ledger.schema import MIGRATIONS
from edge.runtime import Node

REPO = Path(__file__).resolve().parents[2]
LIMIT = 8.0
_READINGS_TABLES = (
    "readings",
    "readings_block",
    "readings_point_ts",
    "reading_blocks",
    "reading_blocks_last_ts",
    "reading_blocks_kept",
    "reading_data",
    "reading_stage",
    "reading_summaries",
)


def _forty_points(folder: Path) -> Path:
    """The 40-point job's simulated device: the register map of a bottling line's PLC."""
    pts = []
    reg = 0
    for h in range(12):  # fill weights, a new bottle every 500 ms
        pts.append(
            f"fill_{h}: {{register: {reg}, type: float32, unit: g, model: {{kind: normal, mean: 502.0, sd: 1.5, period: 500ms}}}}"
        )
        reg += 2
    for h in range(6):  # cap torque, N*m x100
        pts.append(
            f"torque_{h}: {{register: {reg}, type: uint16, scale: 0.01, model: {{kind: normal, mean: 2.2, sd: 0.06, period: 500ms}}}}"
        )
        reg += 1
    for h in range(4):  # counters
        pts.append(
            f"count_{h}: {{register: {reg}, type: uint32, model: {{kind: counter, start: 0, rate: {h + 1}}}}}"
        )
        reg += 2
    for h in range(6):  # tunnel temperatures
        pts.append(
            f"temp_{h}: {{register: {reg}, type: float32, model: {{kind: thermal, start: 6.0, setpoint: 6.0, tau: 20s, noise: 0.03}}}}"
        )
        reg += 2
    for h in range(4):  # humidity, pressure: slow walks
        pts.append(
            f"walk_{h}: {{register: {reg}, type: float32, model: {{kind: walk, start: 50.0, mean: 50.0, tau: 60s, sd: 0.5}}}}"
        )
        reg += 2
    for h in range(2):  # line speed, status words
        pts.append(f"word_{h}: {{register: {reg}, type: uint16, value: {120 + h}}}")
        reg += 1
    for h in range(6):  # motors, valves
        pts.append(f"coil_{h}: {{table: coil, register: {h}, value: {h % 2}}}")
    assert len(pts) == 40
    body = "\n".join(f"      {p}" for p in pts)
    path = folder / "forty.yaml"
    path.write_text(
        "name: forty\nbuses:\n  plc:\n    kind: tcp\ndevices:\n  plc:\n    bus: plc\n    unit: 1\n"
        f"    points:\n{body}\n"
    )
    return path


def _forty_node(folder: Path, scenario: Path, address: str) -> Path:
    lines = [
        '[node]\nid = "forty"\ndata_dir = "var"\n',
        f'[buses.plc]\nkind = "tcp"\naddress = "{address}"\n',
        '[devices.plc]\nbus = "plc"\nunit = 1\npoll = "100ms"\n',
    ]
    text = scenario.read_text()
    for line in text.splitlines():
        line = line.strip()
        if not line or ":" not in line or not line[0].isalpha() or "{" not in line:
            continue
        name, spec = line.split(":", 1)
        table = "coil" if "table: coil" in spec else "holding"
        register = spec.split("register:")[1].split(",")[0].strip()
        kind = "bool" if table == "coil" else spec.split("type:")[1].split(",")[0].strip()
        extra = "scale = 0.01\n" if "scale:" in spec else ""
        lines.append(
            f'[points.{name}]\ndevice = "plc"\ntable = "{table}"\nregister = {register}\n'
            f'type = "{kind}"\n{extra}'
        )
    lines.append('[ledger]\nflush_interval = "50ms"\n')
    path = folder / "node.toml"
    path.write_text("\n".join(lines))
    return path


def _point_at(toml: Path, host: str, port: int) -> None:
    """The node's TCP bus at the simulator's endpoint."""
    toml.write_text(toml.read_text().replace("{PLC}", f"{host}:{port}"))


async def _run(toml: Path, scenario: Path, sim_dir: Path, seconds: float) -> None:
    async with Simulator(load_scenario(scenario), sim_dir, seed=3) as sim:
        if "plc" in sim.tcp_endpoints:
            _point_at(toml, *sim.tcp_endpoints["plc"])
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        await Node(load_config(toml)).run(stop)


def _used_bytes(conn: sqlite3.Connection, names: tuple[str, ...]) -> int:
    marks = ", ".join("?" for _ in names)
    (used,) = conn.execute(
        f"SELECT coalesce(sum(pgsize - unused), 0) FROM dbstat WHERE name IN ({marks})", names
    ).fetchone()
    return int(used)


def _as_rows(conn: sqlite3.Connection, tmp: Path) -> int:
    """Used bytes of the same readings stored as before: rows of the migration-2 table."""
    from edge.ledger.commit import reading_rowid
    from edge.ledger.readings_codec import parse_micros
    from edge.ledger.readings_store import encode_value

    old = sqlite3.connect(tmp / "rows.db")
    old.executescript(MIGRATIONS[1].sql)
    import orjson

    position: dict[int, int] = {}
    rows = []
    for r in read_readings(conn):
        i = position.get(r.block, 0)
        position[r.block] = i + 1
        hashed = encode_value(r.value)
        rows.append(
            (
                reading_rowid(r.block, i),
                r.block,
                r.point,
                r.ts,
                None if hashed is None else orjson.dumps(hashed).decode(),
                r.quality,
                r.unit,
            )
        )
        assert parse_micros(r.ts) >= 0
    old.executemany(
        "INSERT INTO readings(rowid, block, point, ts, value, quality, unit) VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    old.commit()
    used = _used_bytes(old, ("readings", "readings_block", "readings_point_ts"))
    old.close()
    return used


def _report(name: str, db: Path, tmp: Path) -> float:
    conn = sqlite3.connect(db)
    try:
        count = sum(1 for _ in read_readings(conn))
        store = _used_bytes(conn, _READINGS_TABLES)
        (blobs,) = conn.execute(
            "SELECT coalesce(sum(length(data)), 0) FROM reading_data"
        ).fetchone()
        (digests, blocks) = conn.execute(
            "SELECT sum(length(raw)), count(*) FROM entries WHERE type = 'readings.digest'"
        ).fetchone()
        before = _as_rows(conn, tmp)
    finally:
        conn.close()
    figure = store / count
    print(
        f"{name}: {count} readings in {blocks} blocks; stored {figure:.2f} bytes/reading / limit"
        f" {LIMIT:.0f} = ratio {figure / LIMIT:.2f} (compressed blobs alone {blobs / count:.2f};"
        f" + digest entries {digests / count:.2f} on the ledger); as rows before:"
        f" {before / count:.1f} bytes/reading, {before / store:.0f}x more"
    )
    return figure


def test_bytes_per_reading_forty_points(tmp_path: Path) -> None:
    scenario = _forty_points(tmp_path)
    toml = _forty_node(tmp_path, scenario, "{PLC}")
    asyncio.run(_run(toml, scenario, tmp_path / "run", seconds=30.0))
    assert _report("40-point job, 100 ms", tmp_path / "var" / "ledger.db", tmp_path) <= LIMIT


def test_bytes_per_reading_bottling(tmp_path: Path) -> None:
    node_toml = (REPO / "examples" / "node.toml").read_text()
    (tmp_path / "node.toml").write_text(node_toml.replace("127.0.0.1:5020", "{PLC}"))
    shutil.copytree(REPO / "examples" / "rules", tmp_path / "rules")
    with resources.as_file(resources.files("edge.firmware_sim.scenarios") / "bottling.yaml") as s:
        shutil.copyfile(s, tmp_path / "bottling.yaml")
    toml = tmp_path / "node.toml"
    asyncio.run(_run(toml, tmp_path / "bottling.yaml", tmp_path / "run", seconds=60.0))
    db = tmp_path / "var" / "ledger.db"
    assert _report("bottling scenario", db, tmp_path) <= LIMIT


def test_verify_decodes_and_hashes_readings(tmp_path: Path) -> None:
    """``verify``'s readings check: every stored block decoded and re-hashed, readings/s, beside
    the row store's 190,000/s (docs/design.md, measured under load before the compression)."""
    import random
    import struct
    import time

    from edge.ledger.keys import NodeKey
    from edge.ledger.store import Ledger
    from edge.ledger.verify_readings import check_readings
    from edge.ledger.verify_report import Report
    from edge.readings import Reading

    rng = random.Random(1)
    t = 1_795_000_000.0
    blocks, per_block = 200, 1000
    with Ledger.open(tmp_path / "l.db", NodeKey.generate()) as ledger:
        for b in range(blocks):
            readings = []
            for c in range(per_block // 40):
                t += 0.1
                for i in range(40):
                    value: float | int | bool = (
                        struct.unpack("<f", struct.pack("<f", rng.gauss(502.0, 1.5)))[0]
                        if i < 20
                        else (i % 2 == 0)
                        if i < 26
                        else c + b
                    )
                    readings.append(Reading(f"p{i}", t, value))
            ledger.append_readings(readings)
        ledger.commit()
        best = 0.0
        for _ in range(3):
            report = Report()
            start = time.perf_counter()
            check_readings(ledger.conn, report, None)
            best = max(best, blocks * per_block / (time.perf_counter() - start))
            assert report.ok, report.problems
    anchor = 190_000.0
    print(
        f"verify readings: {best:,.0f} readings/s decoded and hashed / row store {anchor:,.0f}"
        f" = ratio {best / anchor:.2f} (limit 0.5)"
    )
    assert best >= 0.5 * anchor
