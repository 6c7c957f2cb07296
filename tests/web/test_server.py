"""``edge serve`` without a browser: start-up rules, read-only access, HTTP edges, the catalog."""

from __future__ import annotations

import hashlib
import socket
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import web_scenario as ws
from web_server import TOKEN, Server, start_server, stop_server

from edge.errors import ConfigError
from edge.ledger.keys import NodeKey
from edge.ledger.store import Ledger
from edge.web.app import Settings, WebApp
from edge.web.auth import Access, is_loopback
from edge.web.catalog import LotFilter, LotRecord, search_lots
from edge.web.http import Request
from edge.web.serve import check_access, parse_listen


def _edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=60
    )


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    assert parse_listen(":8080") == ("127.0.0.1", 8080)
    assert parse_listen("0.0.0.0:0") == ("0.0.0.0", 0)
    for bad in ("8080", "host:port", "::1:8080", "127.0.0.1:99999", ""):
        with pytest.raises(ConfigError, match="--listen"):
            parse_listen(bad)
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("192.168.1.20")


def test_a_token_is_required_beyond_localhost() -> None:
    check_access("127.0.0.1", None)
    check_access("0.0.0.0", "long-random-token")
    with pytest.raises(ConfigError, match="without a token"):
        check_access("0.0.0.0", None)
    with pytest.raises(ConfigError, match="empty"):
        check_access("127.0.0.1", " ")


def test_serve_refuses_to_start_open_to_the_network(scenario: ws.WebScenario) -> None:
    result = _edge("serve", "--db", str(scenario.db), "--listen", "0.0.0.0:0")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no traceback
    assert "without a token" in result.stderr
    bad_tz = _edge("serve", "--db", str(scenario.db), "--tz", "Mars/Olympus")
    assert bad_tz.returncode == 1
    assert "--tz" in bad_tz.stderr
    assert "Traceback" not in bad_tz.stderr
    missing = _edge("serve", "--db", str(scenario.db.parent / "nope.db"))
    assert missing.returncode == 1
    assert "nope.db" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_port_in_use_is_one_line(scenario: ws.WebScenario) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _edge("serve", "--db", str(scenario.db), "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"--listen 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_connections_are_read_only(scenario: ws.WebScenario) -> None:
    app = WebApp(Settings(db=scenario.db, token=None))
    with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only|query_only"):
        app.conn().execute("INSERT INTO entry_lots VALUES ('x', 0, 'x')")


def _files(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name.startswith("ledger.db")
    }


def _request(url: str, method: str = "GET", token: str | None = TOKEN) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_no_route_changes_the_ledger(scenario: ws.WebScenario, server: Server) -> None:
    before = _files(scenario.db.parent)
    paths = [
        "/lots", "/lots?q=L&sort=lot&order=asc&page=2", "/lot/L-2611-A", "/alarms", "/feeds",
        "/lot/L-2611-A/export.csv", "/lot/L-2611-A/epcis.json", "/lot/L-2611-A/report.html",
        "/lot/L-2611-A/report.pdf", "/lot/L-2611-A/proof.zip", "/lot/L-2611-A/analysis.sqlite",
        "/lot/L-2611-A/chart/fill_weight.svg", "/lot/L-2611-A/chart/fill_weight.json",
        "/chart?point=fill_weight&since=2026-11-23T08:00Z&until=2026-11-23T09:00Z",
    ]  # fmt: skip
    for path in paths:
        status, _ = _request(server.url + path)
        assert status == 200, path
    for method in ("POST", "PUT", "DELETE"):
        assert _request(server.url + "/lot/L-2611-A", method)[0] == 405
    assert _files(scenario.db.parent) == before


def test_bad_requests_get_clear_answers(server: Server) -> None:
    assert _request(server.url + "/lot/NO-SUCH-LOT")[0] == 404
    assert _request(server.url + "/lot/L-2611-A/chart/nothing.svg")[0] == 404
    assert _request(server.url + "/nowhere")[0] == 404
    status, body = _request(server.url + "/lots?since=yesterday-ish")
    assert status == 400
    assert b"since" in body
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        raw.sendall(b"GET /lots HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        assert raw.recv(64).startswith(b"HTTP/1.1 413")
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        raw.sendall(b"NONSENSE\r\n\r\n")
        assert raw.recv(64).startswith(b"HTTP/1.1 400")
    assert _request(server.url + "/lots")[0] == 200  # still serving


def test_access_rule() -> None:
    def req(headers: dict[str, str], client: str = "10.0.0.7") -> Request:
        return Request("GET", "/lots", {}, headers, client)

    assert Access(None).check(req({})) is None
    access = Access("tok")
    assert access.check(req({"authorization": "Bearer tok"})) is None
    assert access.check(req({"cookie": "a=b; edge_serve_token=tok"})) is None
    assert access.check(req({})) == 401
    assert access.check(req({"authorization": "Bearer nope"})) == 403
    assert access.check(req({"cookie": "edge_serve_token=tok2"})) == 403
    assert access.accepts("tok")
    assert not access.accepts("tok ")


def _record(lot: str, start: str, end: str, result: str = "pass", station: str = "s1") -> LotRecord:
    r = LotRecord(lot, started=start, first=start, end=end, ends=1 if end else 0)
    r.stations.add(station)
    if result == "fail":
        r.failed.append(f"{station}: mean (mean)")
    return r


def test_search_filters_sorts_and_pages() -> None:
    records = [
        _record("A-1", "2026-01-01T00:00:00.000000Z", "2026-01-01T01:00:00.000000Z"),
        _record("A-2", "2026-01-02T00:00:00.000000Z", "2026-01-02T01:00:00.000000Z", "fail"),
        _record("B-1", "2026-01-03T00:00:00.000000Z", "", station="packer"),
    ]
    assert [r.lot for r in search_lots(records, LotFilter()).lots] == ["B-1", "A-2", "A-1"]
    assert [r.lot for r in search_lots(records, LotFilter(text="a-")).lots] == ["A-2", "A-1"]
    assert [r.lot for r in search_lots(records, LotFilter(result="open")).lots] == ["B-1"]
    assert [r.lot for r in search_lots(records, LotFilter(result="fail")).lots] == ["A-2"]
    assert [r.lot for r in search_lots(records, LotFilter(station="PACK")).lots] == ["B-1"]
    window = LotFilter(since="2026-01-01T12:00:00.000000Z", until="2026-01-02T12:00:00.000000Z")
    assert [r.lot for r in search_lots(records, window).lots] == ["A-2"]
    asc = LotFilter(sort="lot", descending=False, per_page=2)
    first = search_lots(records, asc)
    assert ([r.lot for r in first.lots], first.total, first.pages) == (["A-1", "A-2"], 3, 2)
    assert [
        r.lot
        for r in search_lots(
            records, LotFilter(sort="lot", descending=False, per_page=2, page=2)
        ).lots
    ] == ["B-1"]
    assert search_lots(records, LotFilter(page=99)).page == 1


def test_catalog_reads_only_what_was_appended(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    key = NodeKey.generate()
    t0 = 1_795_000_000.0
    with Ledger.open(db, key) as led:
        led.append(
            "node.start",
            {"node_id": "gw", "site": "p", "version": "0", "config_hash": "c" * 64},
            ts=t0,
        )
        led.append("lot.start", {"lot": "L1", "station": "s"}, ts=t0 + 1, lots=["L1"])
        led.commit(now=t0 + 2)
    app = WebApp(Settings(db=db, token=None))
    assert app.catalog.refresh(app.conn()) == 2  # node.start, lot.start (not the checkpoint)
    assert app.catalog.lots["L1"].result == "open"
    assert app.catalog.refresh(app.conn()) == 0
    with Ledger.open(db, key) as led:
        led.append(
            "lot.end",
            {
                "lot": "L1",
                "station": "s",
                "aggregates": {},
                "checks": [{"rule": "r", "statistic": "mean", "passed": False}],
            },
            ts=t0 + 3,
            lots=["L1"],
        )
        led.append(
            "alarm",
            {
                "rule": "hot",
                "point": "t",
                "event": "activated",
                "from": "normal",
                "to": "active_unack",
            },
            ts=t0 + 4,
        )
        led.commit(now=t0 + 5)
    assert app.catalog.refresh(app.conn()) == 2
    assert app.catalog.lots["L1"].result == "fail"
    assert app.catalog.lots["L1"].stations == {"s"}
    assert [(a.rule, a.state) for a in app.catalog.open_alarms()] == [("hot", "active_unack")]


def test_edge_run_does_not_load_the_web_view() -> None:
    probe = (
        "import sys, edge.runtime, edge.cli.node; "
        "print(sorted(m for m in sys.modules if m.startswith(('edge.web', 'edge.office'))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_server_without_token_on_localhost_is_open(scenario: ws.WebScenario) -> None:
    srv = start_server(scenario.db, "--verify-every", "0")
    try:
        status, body = _request(srv.url + "/lots?q=2611", token=None)
        assert status == 200
        assert b"L-2611-A" in body
    finally:
        stop_server(srv)


_NODE = """
[node]
id = "filler-gw"
site = "plant-1"
data_dir = "."
timezone = "America/New_York"

[buses.plc]
kind = "tcp"
address = "127.0.0.1:5020"

[devices.filler]
bus = "plc"

[points.fill_weight]
device = "filler"
register = 1
type = "int16"
scale = 0.01
unit = "g"

[points.lot_code]
device = "filler"
register = 10
type = "string"
length = 4

[rules]
files = ["fill.yaml"]
"""

_RULES = """
version: 1
lot: lot_code
rules:
  - id: fill-weight-lot
    kind: lot
    point: fill_weight
    low: 497 g
    high: 503 g
    checks:
      - cpk >= 1.33
"""


def test_node_config_gives_spec_limits_resolution_and_zone(scenario: ws.WebScenario) -> None:
    folder = scenario.db.parent
    (folder / "node.toml").write_text(_NODE)
    (folder / "fill.yaml").write_text(_RULES)
    srv = start_server(scenario.db, "-c", str(folder / "node.toml"), "--verify-every", "0")
    try:
        status, svg = _request(srv.url + "/lot/L-2611-A/chart/fill_weight.svg", token=None)
        assert status == 200
        text = svg.decode()
        assert 'class="usl" data-value="503.0"' in text or 'class="usl" data-value="503"' in text
        assert 'class="lsl" data-value="497.0"' in text or 'class="lsl" data-value="497"' in text
        status, page = _request(srv.url + "/lot/L-2611-A", token=None)
        html = page.decode()
        # Cp/Cpk of the filler's aggregates against 497..503 g (mean 500.2, std 0.71):
        # Cp = 6 / (6 * 0.71) = 1.41, Cpk = (503 - 500.2) / (3 * 0.71) = 1.31
        row = html.split('<table class="aggregates">', 1)[1].split("</tr>", 2)[1]
        assert ">1.41<" in row
        assert ">1.31<" in row
        # [node] timezone: 08:01:40 UTC is 03:01:40 in New York
        assert ">2026-11-23 03:01:40</time>" in html
    finally:
        stop_server(srv)
        (folder / "node.toml").unlink()
        (folder / "fill.yaml").unlink()


def test_beyond_localhost_with_a_token_warns_of_plain_http(scenario: ws.WebScenario) -> None:
    srv = start_server(
        scenario.db, "--listen", "0.0.0.0:0", "--token", TOKEN, "--verify-every", "0"
    )
    try:
        port = srv.url.rsplit(":", 1)[1]
        assert _request(f"http://127.0.0.1:{port}/lots", token=None)[0] == 401
        assert _request(f"http://127.0.0.1:{port}/lots")[0] == 200
        warned = srv.log_lines("event=web.plain_http")
        assert len(warned) == 1
        assert "TLS reverse proxy" in warned[0]
    finally:
        stop_server(srv)


def test_epcis_download_uses_the_recorded_gtin(server: Server) -> None:
    status, body = _request(server.url + "/lot/L-OTHER/epcis.json")
    assert status == 200
    assert f"https://id.gs1.org/01/{ws.GTIN}/10/L-OTHER".encode() in body


def test_a_damaged_ledger_is_a_503_page_not_a_crash(
    scenario: ws.WebScenario, tmp_path: Path
) -> None:
    db = tmp_path / "ledger.db"
    src = sqlite3.connect(scenario.db)
    dst = sqlite3.connect(db)
    src.backup(dst)  # a consistent copy, WAL folded in
    src.close()
    dst.close()
    app = WebApp(Settings(db=db, token=None))
    assert app(Request("GET", "/lots", {}, {}, "t")).status == 200
    data = db.read_bytes()
    half = len(data) // 2
    db.write_bytes(data[:half] + b"\x5a" * (len(data) - half))  # pages overwritten underneath
    fresh = WebApp(Settings(db=db, token=None))
    answer = fresh(Request("GET", "/lot/L-2611-A", {}, {}, "t"))
    assert answer.status == 503
    assert b"malformed" in answer.body
    assert fresh(Request("GET", "/login", {}, {}, "t")).status == 303  # still answering


def test_charts_of_recently_ended_lots_are_built_in_advance(scenario: ws.WebScenario) -> None:
    from edge.web.lot_page import load_trace

    app = WebApp(Settings(db=scenario.db, token=None))
    assert app.warm(count=3) == 0  # the newest lots (BULK-...) have no readings to chart
    assert app.warm(count=100) == 1  # L-2611-A's fill_weight
    assert app.warm(count=100) == 0  # each lot once
    trace, _ = load_trace(app, ws.LOT)
    charts = app.lot_charts(app.conn(), trace, ["fill_weight"])
    assert [c.point for c in charts] == ["fill_weight"]
    assert charts[0].svg is not None  # drawn in advance and kept: the page only sends it
    assert charts[0].data.count == 200
