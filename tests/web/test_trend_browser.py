"""The long-term trend page in real headless Chromium, on a real ledger whose raw readings of
all but the last day were pruned: the chart is drawn from hour summaries, and the limits drawn
(read from the DOM) are those ``statistics`` computes from the raw readings of the same hours."""

from __future__ import annotations

import json
import math
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from web_server import TOKEN, Server, start_server, stop_server

from edge.ledger.keys import NodeKey
from edge.ledger.store import Ledger
from edge.readings import Reading

DAYS = 10
POINT = "oven.temp"


def _hours_end() -> float:
    now = time.time()
    return now - now % 3600  # the data ends at the last whole hour (inside the default 90 days)


def _raw(end: float) -> list[list[tuple[float, float]]]:
    """Per hour, (ts, value): 12 readings an hour, 11 in every fifth hour (two sizes, so the
    limits come in runs); day 4 shifted up by 3.0 (its hours beyond the X-bar limits)."""
    hours = []
    start = end - DAYS * 86400
    for h in range(DAYS * 24):
        n = 11 if h % 5 == 0 else 12
        shift = 3.0 if 4 * 24 <= h < 5 * 24 else 0.0
        hours.append(
            [(start + h * 3600 + i * 300, 180.0 + ((i * 37 + h * 11) % 23) / 10 + shift)
             for i in range(n)]
        )  # fmt: skip
    return hours


@pytest.fixture(scope="module")
def trend_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, float]]:
    db = tmp_path_factory.mktemp("trend") / "ledger.db"
    end = _hours_end()
    readings = [Reading(POINT, ts, v) for hour in _raw(end) for ts, v in hour]
    with Ledger.open(db, NodeKey.generate()) as led:
        for k in range(0, len(readings), 200):
            led.append_readings(readings[k : k + 200])
        led.commit(now=end)
        # raw readings of all but the last day go: the trend needs only the summaries
        assert led.prune_readings(end - 86400, actor="test", comment="old", now=end) > 0
    srv = start_server(db, "--token", TOKEN, "--verify-every", "0")
    try:
        yield srv, end
    finally:
        stop_server(srv)


def _wait(driver: webdriver.Chrome, css: str) -> None:
    WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def test_the_trend_chart_draws_the_limits_of_the_raw_readings(
    trend_server: tuple[Server, float], browser: webdriver.Chrome
) -> None:
    server, end = trend_server
    browser.get(server.url + "/login")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "login").click()
    WebDriverWait(browser, 30).until(lambda d: "/login" not in d.current_url)
    # from the point chart (raw readings of the last hours) to its trend, by the link
    browser.get(server.url + f"/chart?point={POINT}")
    _wait(browser, "svg.control-chart")
    browser.find_element(By.PARTIAL_LINK_TEXT, "over 90 days").click()
    _wait(browser, "svg.trend-chart")
    assert "/trend?point=oven.temp" in browser.current_url

    hours = _raw(end)
    values = [[v for _, v in h] for h in hours]
    sizes = [len(v) for v in values]
    grand = statistics.fmean([v for h in values for v in h])
    d = sum(n - 1 for n in sizes)
    pooled = math.sqrt(
        sum((n - 1) * statistics.variance(v) for n, v in zip(sizes, values, strict=True)) / d
    )
    c4_all = 1 - 1 / (4 * (d + 1)) - 7 / (32 * (d + 1) ** 2) - 19 / (128 * (d + 1) ** 3)
    sigma = pooled / c4_all

    svg = browser.find_element(By.CSS_SELECTOR, "svg.trend-chart")
    assert svg.get_attribute("data-point") == POINT
    assert svg.get_attribute("data-seconds") == "3600"  # 90 days: hour summaries
    assert int(svg.get_attribute("data-subgroups") or 0) == DAYS * 24
    assert float(svg.get_attribute("data-grand-mean") or "nan") == pytest.approx(grand, rel=1e-12)
    assert float(svg.get_attribute("data-sigma") or "nan") == pytest.approx(sigma, rel=1e-9)
    center = browser.find_element(By.CSS_SELECTOR, "g.xbar line.center")
    assert float(center.get_attribute("data-value") or "nan") == pytest.approx(grand, rel=1e-12)
    centre_y = float(center.get_attribute("y1") or "nan")
    for cls, sign in (("ucl", 1), ("lcl", -1)):
        lines = browser.find_elements(By.CSS_SELECTOR, f"g.xbar line.{cls}")
        assert len(lines) == len(hours) // 5 * 2  # a run for each 11-hour and 12-hour stretch
        for line in lines:
            n = int(line.get_attribute("data-n") or 0)
            want = grand + sign * 3 * sigma / math.sqrt(n)
            assert float(line.get_attribute("data-value") or "nan") == pytest.approx(want, rel=1e-9)
            # drawn: a horizontal segment of positive length, on the right side of the centre
            x1, x2, y1, y2 = (
                float(line.get_attribute(a) or "nan") for a in ("x1", "x2", "y1", "y2")
            )
            assert x2 > x1
            assert y1 == y2
            assert (y1 - centre_y) * sign < 0  # SVG's y grows downwards
    beyond = [
        i for i, v in enumerate(values)
        if abs(statistics.fmean(v) - grand) > 3 * sigma / math.sqrt(len(v))
    ]  # fmt: skip
    assert set(range(4 * 24, 5 * 24)) <= set(beyond)  # the shifted day
    marks = browser.find_elements(By.CSS_SELECTOR, "g.xbar circle.beyond")
    assert len(marks) == len(beyond)
    s_ucl = browser.find_elements(By.CSS_SELECTOR, "g.s-chart line.s-ucl")
    for line in s_ucl:
        n = int(line.get_attribute("data-n") or 0)
        c = math.sqrt(2 / (n - 1)) * math.gamma(n / 2) / math.gamma((n - 1) / 2)
        want = (c + 3 * math.sqrt(1 - c * c)) * sigma
        assert float(line.get_attribute("data-value") or "nan") == pytest.approx(want, rel=1e-9)
    assert s_ucl
    # the list of points links here too
    browser.get(server.url + "/trend")
    _wait(browser, "ul.trend-points")
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "ul.trend-points a")] == [POINT]


def _get(url: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_trend_json_and_bad_requests(trend_server: tuple[Server, float]) -> None:
    server, end = trend_server
    status, body = _get(server.url + f"/trend/json?point={POINT}")
    assert status == 200
    data = json.loads(body)
    assert (data["point"], data["seconds"], len(data["subgroups"])) == (POINT, 3600, DAYS * 24)
    first = data["subgroups"][0]
    values = [v for _, v in _raw(end)[0]]
    assert (first["count"], first["min"], first["max"]) == (len(values), min(values), max(values))
    assert first["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
    # the last day asked per minute: minute summaries
    status, body = _get(server.url + f"/trend/json?point={POINT}&since=1d")
    assert status == 200
    assert json.loads(body)["seconds"] == 60
    status, body = _get(server.url + f"/trend?point={POINT}&per=week")
    assert status == 400
    assert b"is not auto, hour or minute" in body
    status, body = _get(server.url + f"/trend?point={POINT}&per=minute&since=30d")
    assert status == 400
    assert b"at most 7 days" in body
    status, body = _get(server.url + f"/trend?point={POINT}&since=soon")
    assert status == 400
    # year 0 in UTC, and a span from year 999 (once a 500: strftime wrote '999-01-01')
    status, body = _get(server.url + f"/trend?point={POINT}&since=0001-01-01T00:00%2B01:00")
    assert (status, b"is out of range" in body) == (400, True)
    status, body = _get(server.url + f"/trend/json?point={POINT}&since=0999-01-01T00:00Z")
    assert status == 200
    assert len(json.loads(body)["subgroups"]) == DAYS * 24
    status, body = _get(server.url + "/trend?point=nosuch")
    assert status == 200
    assert b"No hour summaries of nosuch" in body
    assert _get(server.url + "/trend/json?point=nosuch")[0] == 404
