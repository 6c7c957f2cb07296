"""The FSMA 204 style CSV export: header, one row per event, ISO times, parsed back by ``csv``."""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import ledger_scenario as sc
import pytest
from click.testing import CliRunner

from edge.cli import main
from edge.ledger.export_csv import CSV_COLUMNS, write_lot_csv
from edge.ledger.query import open_ledger_db
from edge.ledger.trace import trace_lot


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return sc.build(tmp_path_factory.mktemp("csv") / "ledger.db")


@pytest.fixture(scope="module")
def exported(scenario: Any) -> tuple[str, list[dict[str, str]]]:
    conn = open_ledger_db(scenario.db)
    out = io.StringIO(newline="")
    count = write_lot_csv(trace_lot(conn, sc.LOT), out)
    text = out.getvalue()
    assert text.startswith("\ufeff")  # the byte-order mark spreadsheets look for
    text = text[1:]
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert count == len(rows)
    return text, rows


def test_header_and_one_row_per_event(exported: tuple[str, list[dict[str, str]]]) -> None:
    text, rows = exported
    header = next(csv.reader(io.StringIO(text)))
    assert tuple(header) == CSV_COLUMNS
    assert [r["entry_type"] for r in rows] == [
        "lot.start",
        "alarm",
        "alarm.ack",
        "alarm",
        "rules.change",
        "lot.end",
        "lot.start",
        "lot.end",
        "correction",
    ]
    assert {r["traceability_lot_code"] for r in rows} == {sc.LOT}
    assert text.endswith("\r\n")


def test_times_are_iso_and_sort_as_text(exported: tuple[str, list[dict[str, str]]]) -> None:
    _, rows = exported
    times = [datetime.fromisoformat(r["event_time"]) for r in rows]
    assert all(t.utcoffset() is not None and t.utcoffset().total_seconds() == 0 for t in times)  # type: ignore[union-attr]
    texts = [r["event_time"] for r in rows]
    assert sorted(texts) == texts
    assert [t for _, t in sorted(zip(texts, times, strict=True))] == sorted(times)
    shuffled = sorted(rows, key=lambda r: r["reference_document_number"])
    assert sorted(shuffled, key=lambda r: r["event_time"]) == rows


def test_key_data_elements(exported: tuple[str, list[dict[str, str]]], scenario: Any) -> None:
    _, rows = exported
    by_type = {r["entry_type"]: r for r in rows}
    alarm = by_type["alarm"]  # the last one: cleared
    assert (alarm["point"], alarm["value"], alarm["limit"], alarm["unit"]) == (
        "fill_weight",
        "500.1",
        "499.0",
        "g",
    )
    assert {r["product"] for r in rows} == {"Tomato sauce 500 g"}
    assert {r["location"] for r in rows} == {"plant-1"}
    ends = [r for r in rows if r["entry_type"] == "lot.end"]
    assert [(r["node"], r["station"], r["result"]) for r in ends] == [
        ("filler-gw", "filler-1", "pass"),
        ("packer-gw", "packer-1", "fail"),
    ]
    assert (
        "fill_weight: count=120 mean=500.12 min=498.2 max=502.0 std=0.81 g"
        in ends[0]["measurements"]
    )
    assert ends[1]["corrected_by"] == scenario.entries["b_correction"].id
    assert rows[0]["rule_set"] == "1" * 64
    assert ends[0]["rule_set"] == "2" * 64


def test_reference_ids_are_ledger_entries(
    exported: tuple[str, list[dict[str, str]]], scenario: Any
) -> None:
    _, rows = exported
    conn = sqlite3.connect(scenario.db)
    for row in rows:
        found = conn.execute(
            "SELECT feed, seq FROM entries WHERE id = ?", (row["reference_document_number"],)
        ).fetchone()
        assert found == (row["feed"], int(row["seq"]))


def test_formula_cells_are_neutralised(exported: tuple[str, list[dict[str, str]]]) -> None:
    _, rows = exported
    ack = next(r for r in rows if r["entry_type"] == "alarm.ack")
    assert ack["comment"] == '\'=HYPERLINK("x") nozzle 3 cleaned'
    assert ack["actor"] == "alice"
    # negative numbers stay numbers
    from edge.ledger.export_csv import _safe

    assert _safe("-3.5") == "-3.5"
    assert _safe("-x") == "'-x"
    assert _safe("@SUM(A1)") == "'@SUM(A1)"


def test_cli_export_csv_to_file(scenario: Any, tmp_path: Path) -> None:
    out = tmp_path / "lot.csv"
    args = [
        "ledger",
        "export",
        "--lot",
        sc.LOT,
        "--format",
        "csv",
        "--db",
        str(scenario.db),
        "-o",
        str(out),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    with out.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9
    assert not (tmp_path / "lot.csv.tmp").exists()


def test_cli_export_unknown_lot_writes_nothing(scenario: Any, tmp_path: Path) -> None:
    out = tmp_path / "lot.csv"
    args = [
        "ledger",
        "export",
        "--lot",
        "L-NOPE",
        "--format",
        "csv",
        "--db",
        str(scenario.db),
        "-o",
        str(out),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "lot 'L-NOPE': no entries" in result.output
    assert not out.exists()


def test_cli_export_unwritable_output(scenario: Any, tmp_path: Path) -> None:
    out = tmp_path / "missing-dir" / "lot.csv"
    args = ["ledger", "export", "--lot", sc.LOT, "--format", "csv", "--db", str(scenario.db)]
    result = CliRunner().invoke(main, [*args, "-o", str(out)])
    assert result.exit_code == 1
    assert result.output.strip() == f"edge: {out}: cannot write: No such file or directory"
