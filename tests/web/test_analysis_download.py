"""The lot page's analysis database download, fetched over HTTP from a real ``edge serve``.

Opened with sqlite-utils and sqlite3 and held to the lot's CSV download of the same server
(one event row each) and to ``edge ledger export --format sqlite`` of the same lot (every
table's count): the page gives what the CLI gives, for that lot only.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import sqlite_utils
import web_scenario as ws
from web_server import TOKEN, Server

_TABLES = ("lots", "events", "measurements", "readings", "summaries")


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _download(server: Server, lot: str, folder: Path) -> Path:
    status, headers, body = _get(f"{server.url}/lot/{lot}/analysis.sqlite")
    assert status == 200, body[:200]
    assert headers["Content-Type"] == "application/vnd.sqlite3"
    assert headers["Content-Disposition"] == f'attachment; filename="lot-{lot}.sqlite"'
    path = folder / f"{lot}.sqlite"
    path.write_bytes(body)
    return path


def _csv_rows(server: Server, lot: str) -> list[dict[str, str]]:
    status, _, body = _get(f"{server.url}/lot/{lot}/export.csv")
    assert status == 200
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


def _counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in _TABLES}
    finally:
        conn.close()


def test_the_lot_page_offers_the_analysis_database(server: Server) -> None:
    status, _, page = _get(server.url + "/lot/L-2611-A")
    assert status == 200
    assert b'href="/lot/L-2611-A/analysis.sqlite"' in page
    assert b'data-kind="analysis.sqlite"' in page


def test_the_download_is_the_lots_analysis_database(
    server: Server, scenario: ws.WebScenario, tmp_path: Path
) -> None:
    path = _download(server, "L-2611-A", tmp_path)
    db = sqlite_utils.Database(path)
    assert [r["lot"] for r in db["lots"].rows] == ["L-2611-A"]
    # one events row per CSV row, the same entries, and nothing of another lot
    rows = _csv_rows(server, "L-2611-A")
    assert db["events"].count == len(rows) > 0
    ids = {r["reference_document_number"] for r in db["events"].rows}
    assert ids == {r["reference_document_number"] for r in rows}
    assert {r["traceability_lot_code"] for r in db["events"].rows} == {"L-2611-A"}
    lot = next(db["lots"].rows)
    assert lot["events"] == len(rows)
    assert lot["result"] == "fail"  # the Cpk and case-weight checks failed
    # the readings lie in the lot's span, and there are some (a reading a second, 200 s)
    counts = _counts(path)
    assert counts["readings"] > 0
    conn = sqlite3.connect(path)
    try:
        outside = conn.execute(
            "SELECT count(*) FROM readings, lots WHERE ts < lots.first OR ts > lots.last"
        ).fetchone()[0]
    finally:
        conn.close()
    assert outside == 0
    # every table as the CLI's export of this lot from the same database and trust
    cli = tmp_path / "cli.sqlite"
    result = subprocess.run(
        [sys.executable, "-m", "edge", "ledger", "export", "--db", str(scenario.db),
         "--lot", "L-2611-A", "--format", "sqlite", "-o", str(cli)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert counts == _counts(cli)


def test_another_lot_gets_only_its_rows(server: Server, tmp_path: Path) -> None:
    path = _download(server, "L-OTHER", tmp_path)
    db = sqlite_utils.Database(path)
    assert [r["lot"] for r in db["lots"].rows] == ["L-OTHER"]
    rows = _csv_rows(server, "L-OTHER")
    assert db["events"].count == len(rows) > 0
    assert {r["traceability_lot_code"] for r in db["events"].rows} == {"L-OTHER"}
    # L-2611-A's readings (100..300 s) are outside L-OTHER's span (400..420 s)
    assert _counts(path)["readings"] == 0


def test_an_unknown_lot_has_no_database(server: Server) -> None:
    status, _, _ = _get(server.url + "/lot/NO-SUCH-LOT/analysis.sqlite")
    assert status == 404
