"""``edge serve`` in real headless Chromium: search, the cross-gateway lot page, charts, downloads.

Everything is checked from the page the browser rendered (the DOM), and the downloaded files
with independent readers: GS1's EPCIS JSON Schema, pypdf, Python's csv module, and the proof
bundle's own verifier run as a separate Python process.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pypdf
import pytest
import web_scenario as ws
from jsonschema import Draft7Validator
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from web_server import TOKEN, Server

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "epcis"
SCHEMA = json.loads((VECTORS / "EPCIS-JSON-Schema.json").read_text())
VALIDATOR = Draft7Validator(SCHEMA, format_checker=Draft7Validator.FORMAT_CHECKER)


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait(driver: webdriver.Chrome, css: str, timeout: float = 30) -> None:
    WebDriverWait(driver, timeout).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def _login(driver: webdriver.Chrome, server: Server) -> None:
    driver.get(server.url + "/login")
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.ID, "login").click()
    _wait(driver, "table.lots")


def _lot_codes(driver: webdriver.Chrome) -> list[str]:
    return [a.text for a in driver.find_elements(By.CSS_SELECTOR, "table.lots a.lot")]


def _search(driver: webdriver.Chrome, server: Server, **fields: str) -> list[str]:
    driver.get(server.url + "/lots")
    _wait(driver, "form#search")
    for name, value in fields.items():
        box = driver.find_element(By.NAME, name)
        if box.tag_name == "select":
            box.find_element(By.CSS_SELECTOR, f'option[value="{value}"]').click()
        else:
            box.clear()
            box.send_keys(value)
    driver.find_element(By.ID, "go").click()
    WebDriverWait(driver, 30).until(lambda d: "?" in d.current_url)
    _wait(driver, "table.lots")
    return _lot_codes(driver)


def test_requests_without_the_token_are_refused(server: Server, browser: webdriver.Chrome) -> None:
    assert _get(server.url + "/lots")[0] == 401
    assert _get(server.url + "/lot/L-2611-A/proof.zip")[0] == 401
    assert _get(server.url + "/lots", token="wrong")[0] == 403
    status, body = _get(server.url + "/lots?q=2611", token=TOKEN)
    assert status == 200
    assert b"L-2611-A" in body
    browser.delete_all_cookies()
    browser.get(server.url + "/lot/L-2611-A")
    assert "Access refused" in browser.find_element(By.TAG_NAME, "h1").text
    assert not browser.find_elements(By.CSS_SELECTOR, "table.timeline")
    # every refusal above came from 127.0.0.1: logged once, not once per request
    deadline = time.monotonic() + 15  # the server's log reaches us through a pipe
    while not server.log_lines("event=web.refused") and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # a second line, if there were one, would be right behind it
    refused = server.log_lines("event=web.refused")
    assert len(refused) == 1, refused
    assert "client=127.0.0.1" in refused[0]


def test_lots_page_loads_searches_sorts_and_pages(
    server: Server, browser: webdriver.Chrome
) -> None:
    _login(browser, server)
    count = browser.find_element(By.ID, "count")
    assert count.get_attribute("data-total") == str(2 + ws.BULK)
    assert len(_lot_codes(browser)) == 50  # the first page
    assert _search(browser, server, q="2611") == ["L-2611-A"]
    row = browser.find_element(By.CSS_SELECTOR, "table.lots tbody tr")
    for word in ("filler-1", "packer-1", "Tomato sauce 500 g"):
        assert word in row.text
    assert row.find_element(By.CSS_SELECTOR, "span.fail").text == "fail"
    assert _search(browser, server, result="fail") == ["L-2611-A"]
    assert _search(browser, server, product="ketchup") == ["L-OTHER"]
    assert _search(browser, server, station="packer") == ["L-2611-A"]
    # a time typed in the site zone (Europe/Berlin, UTC+1): lots begun before 08:05 UTC
    assert _search(browser, server, until="2026-11-23 09:05") == ["L-2611-A"]
    assert (
        _search(browser, server, since="2026-11-23 09:08")
        == [f"BULK-{n:03d}" for n in range(ws.BULK - 1, -1, -1)][:50]
    )
    # sort by lot code, ascending (click the header twice: descending, then ascending)
    browser.get(server.url + "/lots")
    browser.find_element(By.CSS_SELECTOR, 'a.sort[data-sort="lot"]').click()
    WebDriverWait(browser, 30).until(lambda d: "sort=lot" in d.current_url)
    browser.find_element(By.CSS_SELECTOR, 'a.sort[data-sort="lot"]').click()
    WebDriverWait(browser, 30).until(lambda d: "order=asc" in d.current_url)
    codes = _lot_codes(browser)
    assert codes[:2] == ["BULK-000", "BULK-001"]
    assert codes == sorted(codes)
    browser.find_element(By.CSS_SELECTOR, "a.next").click()
    WebDriverWait(browser, 30).until(lambda d: "page=2" in d.current_url)
    assert _lot_codes(browser) == [f"BULK-{n:03d}" for n in range(50, ws.BULK)] + [
        "L-2611-A",
        "L-OTHER",
    ]


def test_lot_page_shows_the_cross_gateway_timeline(
    server: Server, browser: webdriver.Chrome, scenario: ws.WebScenario
) -> None:
    _login(browser, server)
    _search(browser, server, q="L-2611")
    browser.find_element(By.CSS_SELECTOR, "table.lots a.lot").click()
    _wait(browser, "table.timeline")
    rows = browser.find_elements(By.CSS_SELECTOR, "table.timeline tbody tr")
    seen = [
        (r.find_elements(By.TAG_NAME, "td")[1].text, r.find_element(By.CSS_SELECTOR, ".etype").text)
        for r in rows
    ]
    for node, kind in [
        ("filler-gw/plant-1", "lot.start"),
        ("packer-gw/plant-1", "lot.start"),
        ("filler-gw/plant-1", "node.stop"),
        ("filler-gw/plant-1", "node.start"),
        ("filler-gw/plant-1", "rules.change"),
        ("packer-gw/plant-1", "correction"),
    ]:
        assert (node, kind) in seen
    text = {r.find_element(By.CSS_SELECTOR, ".etype").text: r.text for r in rows}
    assert "alice" in text["alarm.ack"]
    # the first row: 08:01:40 UTC shown as Berlin time, UTC on hover
    first = rows[0].find_element(By.TAG_NAME, "time")
    assert first.text == "2026-11-23 09:01:40"
    assert first.get_attribute("title") == "UTC 2026-11-23T08:01:40.000000Z"
    stations = browser.find_element(By.CSS_SELECTOR, "table.stations").text
    assert "filler-1" in stations
    assert "packer-1" in stations
    checks = browser.find_element(By.CSS_SELECTOR, "table.checks").text
    assert "FAIL: cpk = 0.91" in checks
    assert "FAIL: min = 5.91" in checks
    assert browser.find_element(By.ID, "verdict").text == "fail"
    verify = browser.find_elements(By.CSS_SELECTOR, "span.verify")
    assert {v.get_attribute("data-feed") for v in verify} == {scenario.filler, scenario.packer}
    assert all(v.text.startswith("verified") for v in verify), [v.text for v in verify]


def _imr(values: list[float]) -> tuple[float, float, float]:
    """Centre line and 3-sigma limits of an individuals chart (Montgomery: sigma = MRbar/1.128)."""
    center = statistics.fmean(values)
    mr_bar = statistics.fmean(abs(b - a) for a, b in itertools.pairwise(values))
    return center, center + 3 * mr_bar / 1.128, center - 3 * mr_bar / 1.128


def test_control_chart_renders_limits_and_nelson_hits(
    server: Server, browser: webdriver.Chrome, scenario: ws.WebScenario
) -> None:
    _login(browser, server)
    browser.get(server.url + "/lot/L-2611-A")
    _wait(browser, 'svg.control-chart[data-point="fill_weight"]')
    chart = browser.find_element(By.CSS_SELECTOR, 'svg.control-chart[data-point="fill_weight"]')
    size = chart.size
    assert size["width"] > 300  # laid out, not an empty box
    assert size["height"] > 200
    center, ucl, lcl = _imr(scenario.weights)

    def line(cls: str) -> float:
        el = chart.find_element(By.CSS_SELECTOR, f"g.individuals line.{cls}")
        width = browser.execute_script("return arguments[0].getBBox().width", el)
        assert width > 100  # drawn across the chart
        return float(el.get_attribute("data-value") or "nan")

    assert line("center") == pytest.approx(center, abs=1e-9)
    assert line("ucl") == pytest.approx(ucl, rel=1e-3)
    assert line("lcl") == pytest.approx(lcl, rel=1e-3)
    hits = chart.find_elements(By.CSS_SELECTOR, "g.nelson-hit")
    by_rule: dict[str, set[int]] = {}
    for hit in hits:
        by_rule.setdefault(hit.get_attribute("data-rule") or "", set()).add(
            int(hit.get_attribute("data-index") or -1)
        )
    assert ws.OUTLIER in by_rule["1"]  # the 506 g outlier, beyond the UCL
    assert by_rule["2"] & set(ws.RUN[8:])  # the 9th reading of the high run and after
    # each hit marker is drawn where the browser can see it, and says its rule
    marker = next(h for h in hits if h.get_attribute("data-rule") == "1")
    box = browser.execute_script(
        "const b = arguments[0].getBBox(); return [b.width, b.height];", marker
    )
    assert min(box) > 0
    title = browser.execute_script("return arguments[0].querySelector('title').textContent", marker)
    assert title.startswith("rule 1")
    period = chart.find_element(By.CSS_SELECTOR, "rect.alarm-period")
    assert period.get_attribute("data-rule") == "fill_weight_low"
    assert chart.find_elements(By.CSS_SELECTOR, "g.moving-range polyline.mr-series")
    assert chart.find_elements(By.CSS_SELECTOR, "g.histogram rect.bin")


def _download(browser: webdriver.Chrome, folder: Path, kind: str, suffix: str) -> Path:
    before = set(folder.iterdir())
    browser.find_element(By.CSS_SELECTOR, f'a.download[data-kind="{kind}"]').click()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = [p for p in set(folder.iterdir()) - before if p.name.endswith(suffix)]
        if new and new[0].stat().st_size > 0:
            return new[0]
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} downloaded: {sorted(p.name for p in folder.iterdir())}")


def test_downloads_are_valid_files(
    server: Server,
    browser: webdriver.Chrome,
    downloads: Path,
    scenario: ws.WebScenario,
    tmp_path: Path,
) -> None:
    _login(browser, server)
    browser.get(server.url + "/lot/L-2611-A")
    _wait(browser, "#downloads")
    # CSV: byte-order mark, one row per event, the failing checks named on the lot-end rows
    raw = _download(browser, downloads, "export.csv", ".csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    ends = [r for r in rows if r["entry_type"] == "lot.end"]
    assert {r["station"] for r in ends} == {"filler-1", "packer-1"}
    assert all(r["result"] == "fail" for r in ends)
    failed = " | ".join(r["failed_checks"] for r in ends)
    assert "cpk_weight" in failed
    assert "case_weight" in failed
    # EPCIS 2.0 against GS1's schema
    doc = json.loads(_download(browser, downloads, "epcis.json", ".json").read_bytes())
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(doc)
    ]
    assert errors == []
    assert doc["eqc:lot"] == "L-2611-A"
    assert len(doc["epcisBody"]["eventList"]) >= 6
    # the lot report: a PDF that parses and says what the page says
    pdf = pypdf.PdfReader(_download(browser, downloads, "report.pdf", ".pdf"))
    text = "\n".join(page.extract_text() for page in pdf.pages)
    for word in ("L-2611-A", "cpk_weight", "packer-1"):
        assert word in text
    html = _download(browser, downloads, "report.html", ".html").read_text(encoding="utf-8")
    assert "L-2611-A" in html
    assert "control-chart" in html
    # the proof bundle, checked by the verifier it ships, in a Python without edge-qc
    bundle = _download(browser, downloads, "proof.zip", ".zip")
    with zipfile.ZipFile(bundle) as archive:
        (tmp_path / "verify_proof.py").write_bytes(archive.read("verify_proof.py"))
    folder = scenario.db.parent
    result = subprocess.run(
        [sys.executable, str(tmp_path / "verify_proof.py"), str(bundle),
         "--trust", str(folder / "filler.pub"), "--trust", str(folder / "packer.pub")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_alarms_and_feeds_pages(
    server: Server, browser: webdriver.Chrome, scenario: ws.WebScenario
) -> None:
    _login(browser, server)
    browser.get(server.url + "/alarms")
    _wait(browser, "table.alarms")
    rows = {
        r.find_element(By.TAG_NAME, "td").text: r
        for r in browser.find_elements(By.CSS_SELECTOR, "table.alarms tbody tr")
    }
    assert set(rows) == {"tank_level_low", "door_open"}  # fill_weight_low returned to normal
    assert (
        rows["tank_level_low"]
        .find_element(By.CSS_SELECTOR, "[data-state]")
        .get_attribute("data-state")
        == "active_unack"
    )
    assert "bob" in rows["door_open"].text
    assert "2026-11-24 09:00:00" in rows["door_open"].text
    browser.get(server.url + "/feeds")
    _wait(browser, "table.feeds")
    status = {
        s.get_attribute("data-feed"): s.text
        for s in browser.find_elements(By.CSS_SELECTOR, "table.feeds span[data-feed]")
    }
    assert set(status) == {scenario.filler, scenario.packer}
    assert all(t.startswith("verified") for t in status.values()), status
    lags = browser.find_elements(By.CSS_SELECTOR, "table.feeds span.lag")
    assert [lag.text for lag in lags] == ["0", "0"]  # no peer announced more than we hold
