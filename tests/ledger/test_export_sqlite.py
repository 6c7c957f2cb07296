"""``edge ledger export --format sqlite``: the analysis database, read back with plain sqlite3.

The oracle for events is the CSV export of the same lot (same rows, same columns); readings are
checked against what the read interface returns for the lot's span, written through the real
Ledger with the file owner's key.
"""

from __future__ import annotations

import csv
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import ledger_scenario as sc
import pytest
from click.testing import CliRunner

from edge.cli import main
from edge.ledger.export_csv import CSV_COLUMNS
from edge.ledger.store import Ledger
from edge.readings import Reading

#: Readings at the filler during L-2611-A (T0+100 .. T0+200), plus some outside every lot's span.
_IN_LOT = [
    Reading("fill_weight", sc.T0 + 100 + i, 499.0 + i / 8, unit="g") for i in range(0, 100, 5)
]
_OUTSIDE = [Reading("fill_weight", sc.T0 + 86400 + i, 1.0, unit="g") for i in range(3)]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Any:
    scenario = sc.build(tmp_path_factory.mktemp("sqlite") / "ledger.db")
    with Ledger.open(scenario.db, scenario.keys["filler"]) as led:
        led.append_readings([*_IN_LOT, Reading("running", sc.T0 + 150, True)])
        led.append_readings(_OUTSIDE)
        led.commit()
    return scenario


def _export(scenario: Any, out: Path, fmt: str, *lots: str) -> Any:
    args = ["ledger", "export", "--format", fmt, "--db", str(scenario.db), "-o", str(out)]
    for lot in lots:
        args += ["--lot", lot]
    return CliRunner().invoke(main, args)


@pytest.fixture(scope="module")
def exported(scenario: Any, tmp_path_factory: pytest.TempPathFactory) -> sqlite3.Connection:
    out = tmp_path_factory.mktemp("out") / "lots.db"
    result = _export(scenario, out, "sqlite", sc.LOT, "L-OTHER")
    assert result.exit_code == 0, result.output
    assert "exported 2 lot(s)" in result.output
    assert not out.with_name("lots.db.tmp").exists()
    conn = sqlite3.connect(out)
    conn.row_factory = sqlite3.Row
    return conn


def test_tables_and_indexes(exported: sqlite3.Connection) -> None:
    names = {r["name"] for r in exported.execute("SELECT name FROM sqlite_master")}
    assert {"lots", "events", "measurements", "readings", "summaries", "events_fts"} <= names
    indexed = {
        (r["tbl_name"], r["sql"])
        for r in exported.execute("SELECT tbl_name, sql FROM sqlite_master WHERE type = 'index'")
        if r["sql"]
    }
    assert any(t == "readings" and '"point", "ts"' in sql for t, sql in indexed)
    assert any(t == "events" and "traceability_lot_code" in sql for t, sql in indexed)
    fks = exported.execute("PRAGMA foreign_key_list(events)").fetchall()
    assert [(f["table"], f["from"], f["to"]) for f in fks] == [
        ("lots", "traceability_lot_code", "lot")
    ]
    assert exported.execute("PRAGMA foreign_key_check").fetchall() == []
    cols = {r["name"]: r["type"] for r in exported.execute("PRAGMA table_info(events)")}
    assert (cols["seq"], cols["value"], cols["event_time"]) == ("INTEGER", "REAL", "TEXT")


def test_events_match_the_csv_export(
    exported: sqlite3.Connection, scenario: Any, tmp_path: Path
) -> None:
    for lot in (sc.LOT, "L-OTHER"):
        out = tmp_path / f"{lot}.csv"
        result = _export(scenario, out, "csv", lot)
        assert result.exit_code == 0, result.output
        with out.open(newline="", encoding="utf-8-sig") as f:
            expected = list(csv.DictReader(f))
        rows = exported.execute(
            "SELECT * FROM events WHERE traceability_lot_code = ? ORDER BY event_time, rowid",
            (lot,),
        ).fetchall()
        assert len(rows) == len(expected) > 0
        for row, want in zip(rows, expected, strict=True):
            got = {c: row[c] for c in CSV_COLUMNS}
            for column, cell in want.items():
                value = got[column]
                if value is None:
                    assert cell == "", (column, cell)
                elif isinstance(value, float):
                    assert value == float(cell), (column, cell)
                elif column == "comment" and cell.startswith("'="):
                    assert value == cell[1:]  # the CSV's formula guard is not needed in SQL
                else:
                    assert str(value) == cell, (column, cell)


def test_lots_rows(exported: sqlite3.Connection) -> None:
    lot = exported.execute("SELECT * FROM lots WHERE lot = ?", (sc.LOT,)).fetchone()
    assert lot["result"] == "fail"  # the packer's lot end failed its check
    assert lot["failed_checks"].startswith("packer-1: ")
    assert lot["product"] == "Tomato sauce 500 g"
    assert lot["stations"] == 2
    assert lot["alarms"] == 1
    (events,) = exported.execute(
        "SELECT count(*) FROM events WHERE traceability_lot_code = ?", (sc.LOT,)
    ).fetchone()
    assert lot["events"] == events == 9
    other = exported.execute("SELECT * FROM lots WHERE lot = 'L-OTHER'").fetchone()
    assert other["result"] is None  # started, never ended
    m = exported.execute(
        "SELECT * FROM measurements WHERE lot = ? AND station = 'filler-1' AND point = 'fill_weight'",
        (sc.LOT,),
    ).fetchone()
    assert (m["count"], m["mean"], m["min"], m["unit"]) == (120, 500.12, 498.2, "g")


def test_readings_of_the_lots_span(exported: sqlite3.Connection) -> None:
    rows = exported.execute(
        "SELECT point, ts, value, quality, unit FROM readings ORDER BY ts, point"
    ).fetchall()
    weights = [r for r in rows if r["point"] == "fill_weight"]
    assert [r["value"] for r in weights] == [r.value for r in _IN_LOT]
    assert all(r["unit"] == "g" and r["quality"] == "good" for r in weights)
    assert [r["value"] for r in rows if r["point"] == "running"] == [1]
    # a reading belongs to a lot when it lies in the lot's span
    (n,) = exported.execute(
        "SELECT count(*) FROM readings r JOIN lots l ON r.ts BETWEEN l.first AND l.last "
        "WHERE l.lot = ? AND r.point = 'fill_weight'",
        (sc.LOT,),
    ).fetchone()
    assert n == len(_IN_LOT)


def test_summaries_of_the_lots_span(exported: sqlite3.Connection) -> None:
    """Minute and hour summaries of the periods the span touches, as ``statistics`` computes
    them from the same readings; none from the day after (outside every lot), none of a bit."""
    import statistics
    from datetime import UTC, datetime

    got = {
        (r["seconds"], r["start"]): r
        for r in exported.execute("SELECT * FROM summaries WHERE point = 'fill_weight'")
    }
    expected: dict[tuple[int, str], list[float]] = {}
    for seconds in (60, 3600):
        for r in _IN_LOT:
            start = int(r.ts) - int(r.ts) % seconds
            at = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
            expected.setdefault((seconds, at), []).append(float(r.value))  # type: ignore[arg-type]
    assert set(got) == set(expected)
    for key, values in expected.items():
        row = got[key]
        assert (row["count"], row["min"], row["max"]) == (len(values), min(values), max(values))
        assert row["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        assert row["std"] == pytest.approx(std, rel=1e-9, abs=1e-12)
    assert (
        exported.execute("SELECT count(*) FROM summaries WHERE point = 'running'").fetchone()[0]
        == 0
    )


def test_full_text_search(exported: sqlite3.Connection) -> None:
    hits = exported.execute(
        "SELECT e.entry_type, e.comment FROM events_fts JOIN events e ON e.rowid = events_fts.rowid "
        "WHERE events_fts MATCH 'nozzle'"
    ).fetchall()
    assert [(h[0], h[1]) for h in hits] == [("alarm.ack", '=HYPERLINK("x") nozzle 3 cleaned')]
    assert (
        exported.execute(
            "SELECT count(*) FROM events_fts WHERE events_fts MATCH 'zzqx'"
        ).fetchone()[0]
        == 0
    )


def test_bad_output_path_one_line_exit_1(scenario: Any, tmp_path: Path) -> None:
    out = tmp_path / "missing-dir" / "lots.db"
    result = _export(scenario, out, "sqlite", sc.LOT)
    assert result.exit_code == 1
    assert result.output.strip() == f"edge: {out}: cannot write: No such directory"
    assert not out.parent.exists()


def test_existing_file_replaced_whole(scenario: Any, tmp_path: Path) -> None:
    out = tmp_path / "lots.db"
    out.write_bytes(b"not a database")
    assert _export(scenario, out, "sqlite", "L-OTHER").exit_code == 0
    assert sqlite3.connect(out).execute("SELECT lot FROM lots").fetchall() == [("L-OTHER",)]


def test_unknown_lot_and_missing_output(scenario: Any, tmp_path: Path) -> None:
    out = tmp_path / "lots.db"
    result = _export(scenario, out, "sqlite", sc.LOT, "L-NOPE")
    assert result.exit_code == 1
    assert "lot 'L-NOPE': no entries" in result.output
    assert not out.exists()
    args = ["ledger", "export", "--format", "sqlite", "--lot", sc.LOT, "--db", str(scenario.db)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "give -o FILE" in result.output
    result = _export(scenario, tmp_path / "x.csv", "csv", sc.LOT, "L-OTHER")
    assert result.exit_code == 2
    assert "exports one lot" in result.output


def test_copy_is_self_contained(exported: sqlite3.Connection, tmp_path: Path) -> None:
    """The file opens on another machine: no attached databases, no extension needed."""
    (path,) = [r["file"] for r in exported.execute("PRAGMA database_list") if r["name"] == "main"]
    copy = tmp_path / "copy.db"
    shutil.copy(path, copy)
    assert sqlite3.connect(copy).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_damaged_readings_block_one_line_exit_1(scenario: Any, tmp_path: Path) -> None:
    from stored_readings import flip_byte

    db = tmp_path / "ledger.db"
    with sqlite3.connect(scenario.db) as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    with sqlite3.connect(db) as conn:
        (block,) = conn.execute("SELECT min(block) FROM reading_data").fetchone()
        flip_byte(
            conn,
            block,
            offset=len(conn.execute("SELECT data FROM reading_data").fetchone()[0]) // 2,
        )
    out = tmp_path / "lots.db"
    args = ["ledger", "export", "--format", "sqlite", "--lot", sc.LOT, "--db", str(db)]
    result = CliRunner().invoke(main, [*args, "-o", str(out)])
    assert result.exit_code == 1, result.output
    # (the copy has no trust list beside it: a note says the packer's feed is not shown)
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"edge: {db}: cannot read readings: readings block {block}: damaged")
    assert not out.exists()
    assert not out.with_name("lots.db.tmp").exists()
