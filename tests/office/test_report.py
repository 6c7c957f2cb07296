"""``edge ledger report`` and the CSV export on a real lot: files parsed back, not grepped raw."""

from __future__ import annotations

import csv
import io
import re
import shutil
import sqlite3
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pypdf
import pytest
from click.testing import CliRunner
from office_lot import LOT, LotLedger

from edge.cli import main


def run(*args: str) -> Any:
    return CliRunner().invoke(main, ["ledger", *args])


class _Elements(HTMLParser):
    """Every start tag with its attributes (the report has no script to run)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    def having(self, cls: str) -> list[dict[str, str]]:
        return [a for _, a in self.found if cls in a.get("class", "").split()]


def _lot_end(db: Path) -> dict[str, Any]:
    conn = sqlite3.connect(db)
    (raw,) = conn.execute("SELECT raw FROM entries WHERE type = 'lot.end'").fetchone()
    conn.close()
    body: dict[str, Any] = orjson.loads(raw)["body"]
    return body


def test_pdf_report_holds_lot_checks_verdicts_and_feed_key(
    lot_ledger: LotLedger, tmp_path: Path
) -> None:
    out = tmp_path / "lot.pdf"
    result = run(
        "report",
        "--lot",
        LOT,
        "-c",
        str(lot_ledger.config),
        "--format",
        "pdf",
        "-o",
        str(out),
        "--tz",
        "UTC",
    )
    assert result.exit_code == 0, result.output
    reader = pypdf.PdfReader(out)
    text = "\n".join(page.extract_text() for page in reader.pages)
    flat = re.sub(r"\s+", " ", text)
    assert f"Lot report: {LOT}" in flat
    assert "Result: FAIL" in flat
    failed = [c for c in _lot_end(lot_ledger.db)["checks"] if not c["passed"]]
    assert [c["check"] for c in failed] == ["cpk >= 2.0"]
    cpk = float(failed[0]["value"])
    assert f"fill-weight-lot: cpk >= 2.0 (cpk = {cpk:.2f})" in flat
    for check in ("count >= 10", "mean >= 2.0", "cpk >= 2.0"):
        assert check in flat
    assert flat.count("pass") >= 2
    assert "FAIL" in flat
    assert lot_ledger.feed in text.replace("\n", "")  # the full key, not a prefix
    assert "every feed of the lot verifies" in flat
    assert "N·m" in flat  # the unit survives the PDF's base font
    assert "Control chart: fill_weight" in flat
    assert "Control chart: cap_torque" in flat
    assert reader.metadata is not None
    assert reader.metadata.title == f"Lot report {LOT}"


def test_html_report_is_self_contained_with_charts(lot_ledger: LotLedger, tmp_path: Path) -> None:
    out = tmp_path / "lot.html"
    result = run(
        "report",
        "--lot",
        LOT,
        "-c",
        str(lot_ledger.config),
        "-o",
        str(out),
        "--tz",
        "Europe/Berlin",
    )
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    page = _Elements()
    page.feed(html)
    # nothing fetched: no script, no external stylesheet, image or link
    tags = {t for t, _ in page.found}
    assert "script" not in tags
    assert "img" not in tags
    assert "link" not in tags
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    charts = page.having("control-chart")
    assert sorted(c["data-point"] for c in charts) == ["cap_torque", "fill_weight"]
    # every good reading charted, the stale ones left out
    assert {c["data-point"]: int(c["data-count"]) for c in charts} == {
        "cap_torque": 600,
        "fill_weight": 600,
    }
    assert page.having("verdict")[0]["data-verdict"] == "fail"
    # the spike (index 150) is a rule-1 hit, the alarm around it is shaded
    hits = page.having("nelson-hit")
    assert any(h["data-rule"] == "1" and h["data-index"] == "150" for h in hits)
    # fill_weight's spc rule: limits from its first 100 readings, rules 1 and 2 only, marked
    # from the 101st reading on; cap_torque has none: all 8 rules on limits from the whole lot
    charts_html = html.split('<figure class="chart" data-point="')
    fill_part = next(c for c in charts_html if c.startswith("fill_weight"))
    fill = _Elements()
    fill.feed(fill_part)
    assert {h["data-rule"] for h in fill.having("nelson-hit")} == {"1", "2"}
    assert min(int(h["data-index"]) for h in fill.having("nelson-hit")) >= 100
    assert "limits learned from the first 100 readings (rule fill-weight-spc)" in fill_part
    assert [a["data-rule"] for a in page.having("alarm-period")] == ["fill-weight-high"]
    # spec limits from the lot rule (-c), the fill weight rounded to its 0.1 g resolution
    usl = {float(a["data-value"]) for a in page.having("usl")}
    assert usl == {505.0, 2.5}
    assert "500.08" in html
    assert "0.93</td>" in html
    # local times with UTC on hover
    assert (
        '<time datetime="2026-11-23T08:00:10.000000Z" title="2026-11-23T08:00:10.000000Z">2026-11-23 09:00:10</time>'
        in html
    )
    assert lot_ledger.feed in html


def test_report_says_when_a_feed_does_not_verify(lot_ledger: LotLedger, tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    shutil.copy(lot_ledger.db, db)
    conn = sqlite3.connect(db)
    triggers = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
    for (name,) in triggers:  # as an attacker would
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute(
        "UPDATE entries SET raw = replace(raw, 'filler-1', 'filler-9') WHERE type = 'lot.start'"
    )
    conn.commit()
    conn.close()
    out = tmp_path / "lot.html"
    result = run(
        "report", "--lot", LOT, "--db", str(db), "--trust", lot_ledger.feed, "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert "1 of 1 feed(s) of the lot do not verify" in html
    assert "changed content" in html
    skipped = run(
        "report",
        "--lot",
        LOT,
        "--db",
        str(db),
        "--trust",
        lot_ledger.feed,
        "--no-verify",
        "-o",
        str(out),
    )
    assert skipped.exit_code == 0
    assert "not verified (run edge ledger verify)" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--lot", "L-2611-X"], 1, "lot 'L-2611-X': no entries"),
        (["--lot", LOT, "--tz", "Mars/Olympus"], 2, "--tz 'Mars/Olympus': not a time zone name"),
        (["--lot", LOT, "--format", "docx"], 2, "'docx' is not one of"),
    ],
)
def test_report_errors_are_one_line(
    lot_ledger: LotLedger, args: list[str], code: int, message: str
) -> None:
    result = run("report", "--db", str(lot_ledger.db), *args)
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output


def test_csv_has_a_bom_and_names_the_failing_checks(lot_ledger: LotLedger, tmp_path: Path) -> None:
    out = tmp_path / "lot.csv"
    result = run(
        "export",
        "--lot",
        LOT,
        "--format",
        "csv",
        "--db",
        str(lot_ledger.db),
        "--trust",
        lot_ledger.feed,
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    # as a spreadsheet reads it: the BOM says UTF-8, the unit comes back intact
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert len(rows) == 4  # lot start, alarm activated, alarm cleared, lot end
    end = next(r for r in rows if r["entry_type"] == "lot.end")
    assert end["result"] == "fail"
    failed = [c for c in _lot_end(lot_ledger.db)["checks"] if not c["passed"]]
    # full precision as recorded (exports are for programs)
    assert end["failed_checks"] == f"fill-weight-lot: cpk >= 2.0 (cpk = {failed[0]['value']})"
    assert "N·m" in end["measurements"]
    assert all(r["failed_checks"] == "" for r in rows if r is not end)


def test_tables_round_numbers_and_json_keeps_them(
    lot_ledger: LotLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # table rows on one line each
    db = str(lot_ledger.db)
    table = re.sub(r"\s+", " ", run("query", "--db", db, "--type", "alarm").output)
    assert "fill_weight = 509 g (limit 505) high" in table  # no resolution known: 4 digits
    rows = [
        orjson.loads(x)
        for x in run("query", "--db", db, "--type", "alarm", "--json").output.splitlines()
    ]
    assert rows[0]["body"]["value"] == "509.0"
    assert "fill_weight = 509.0 g (limit 505.0)" in rows[0]["summary"]  # for programs: as recorded
    trace = re.sub(r"\s+", " ", run("trace", LOT, "-c", str(lot_ledger.config)).output)
    assert "fill_weight = 509.0 g (limit 505.0) high" in trace  # with -c: to 0.1 g
    body = _lot_end(lot_ledger.db)["aggregates"]["fill_weight"]
    assert len(body["std"]) > 8  # recorded with every digit ...
    std = float(body["std"])
    assert (
        f"│ {std:.2f} " in run("trace", LOT, "-c", str(lot_ledger.config)).output
    )  # ... shown to 0.01 g


def test_report_times_in_the_sites_zone_from_the_config(
    lot_ledger: LotLedger, tmp_path: Path
) -> None:
    out = tmp_path / "lot.html"
    result = run("report", "--lot", LOT, "-c", str(lot_ledger.config), "-o", str(out))
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert "(Asia/Tokyo)" in html  # [node] timezone of node.toml
    assert 'title="2026-11-23T08:00:10.000000Z">2026-11-23 17:00:10</time>' in html


def test_only_good_finite_numbers_are_charted_in_time_order() -> None:
    from edge.ledger.readings_read import StoredReading
    from edge.office.sources import good_numbers

    def at(second: int, value: object, quality: str = "good") -> StoredReading:
        return StoredReading("w", f"2026-11-23T08:00:{second:02d}.000000Z", value, quality, "g", 1)

    got = good_numbers(
        [
            at(2, 2.5),
            at(1, "1.25"),  # a legacy row-stored number: its decimal text
            at(3, 400.0, "stale"),
            at(4, True),
            at(5, "OK"),
            at(6, float("nan")),
            at(7, 3),
        ]
    )
    assert got == [
        ("2026-11-23T08:00:01.000000Z", 1.25),
        ("2026-11-23T08:00:02.000000Z", 2.5),
        ("2026-11-23T08:00:07.000000Z", 3.0),
    ]


def test_a_long_range_is_charted_from_summaries(lot_ledger: LotLedger) -> None:
    from statistics import fmean

    from edge.ledger.query import open_ledger_db
    from edge.office.sources import range_series

    conn = open_ledger_db(lot_ledger.db)
    since, until = "2026-11-23T08:00:00.000000Z", "2026-11-23T09:00:00.000000Z"
    raw = range_series(conn, "fill_weight", since, until)
    assert raw.kind == "readings"
    assert [v for _, v in raw.series] == lot_ledger.fill  # stale readings left out
    # the lot's readings run from 08:00:10 for 60 s: two minutes, one hour
    minutes = range_series(conn, "fill_weight", since, until, max_readings=100)
    assert minutes.kind == "minute means"
    assert [t for t, _ in minutes.series] == [
        "2026-11-23T08:00:00.000000Z",
        "2026-11-23T08:01:00.000000Z",
    ]
    first = lot_ledger.fill[:500]  # 08:00:10.0 .. 08:00:59.9, one every 0.1 s
    assert minutes.series[0][1] == pytest.approx(fmean(first), rel=1e-12)
    assert minutes.series[1][1] == pytest.approx(fmean(lot_ledger.fill[500:]), rel=1e-12)
    hours = range_series(conn, "fill_weight", since, until, max_readings=1)
    assert hours.kind == "hour means"
    assert hours.series[0][1] == pytest.approx(fmean(lot_ledger.fill), rel=1e-12)
    conn.close()


def test_a_lot_without_stored_readings_says_why_it_has_no_charts(tmp_path: Path) -> None:
    import ledger_scenario as sc

    db = tmp_path / "ledger.db"
    sc.build(db)  # lot ends with aggregates, but no raw readings in the file
    out = tmp_path / "lot.pdf"
    result = run("report", "--lot", sc.LOT, "--db", str(db), "--format", "pdf", "-o", str(out))
    assert result.exit_code == 0, result.output
    text = re.sub(r"\s+", " ", "".join(p.extract_text() for p in pypdf.PdfReader(out).pages))
    assert "No stored readings of case_weight, fill_weight, product_temp in this lot's time" in text
    assert "Result: FAIL" in text  # the packer's check failed
