"""The HTML lot report as a browser draws it: headless Chromium, geometry read from the page.

The report is opened from a file (as from an e-mail attachment: no server, nothing fetched) and
checked on what Chromium laid out, not on the markup: the control limits sit where their values
say, the rule-1 signal is drawn above the upper control limit inside the plot, the alarm's
shading covers it, every chart has its three panels on screen.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from office_lot import LOT, SPIKE, LotLedger
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from edge.cli import main


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    for tool in (chromium, driver_path):
        assert os.path.exists(tool), (
            f"{tool}: chromium and chromium-driver are needed (make test-tools)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1300,1000"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


_GEOMETRY = """
const out = [];
for (const svg of document.querySelectorAll('svg.control-chart')) {
  const box = (el) => { if (!el) return null; const r = el.getBoundingClientRect();
                        return {x: r.x, y: r.y, w: r.width, h: r.height}; };
  const line = (cls) => { const el = svg.querySelector('g.individuals line.' + cls);
                          return el ? {y: box(el).y, value: parseFloat(el.dataset.value)} : null; };
  out.push({
    point: svg.dataset.point,
    svg: box(svg),
    panels: ['individuals', 'moving-range', 'histogram'].map((c) => box(svg.querySelector('g.' + c))),
    frame: box(svg.querySelector('g.individuals rect.frame')),
    ucl: line('ucl'), center: line('center'), lcl: line('lcl'), usl: line('usl'), lsl: line('lsl'),
    hits: [...svg.querySelectorAll('g.nelson-hit')].map((g) => ({
      rule: g.dataset.rule, index: parseInt(g.dataset.index), box: box(g.querySelector('circle'))})),
    alarms: [...svg.querySelectorAll('rect.alarm-period')].map((r) => ({rule: r.dataset.rule, box: box(r)})),
    cpk: svg.querySelector('text.capability').dataset.cpk,
    visibleBins: [...svg.querySelectorAll('rect.bin')].filter((r) => box(r).h > 0).length,
  });
}
return out;
"""


def test_report_charts_render_with_limits_and_signals(
    lot_ledger: LotLedger, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    page = tmp_path / "lot.html"
    result = CliRunner().invoke(
        main, ["ledger", "report", "--lot", LOT, "-c", str(lot_ledger.config), "-o", str(page)]
    )
    assert result.exit_code == 0, result.output
    browser.get(page.as_uri())
    charts: list[dict[str, Any]] = browser.execute_script(_GEOMETRY)
    assert sorted(c["point"] for c in charts) == ["cap_torque", "fill_weight"]
    for chart in charts:
        assert chart["svg"]["w"] > 500  # laid out at a readable size
        tops = [p["y"] for p in chart["panels"]]
        assert all(p["h"] > 50 for p in chart["panels"])
        assert tops == sorted(tops)  # individuals, then moving range, then histogram
        assert chart["visibleBins"] > 3
    fill = next(c for c in charts if c["point"] == "fill_weight")
    # limits drawn in value order (screen y grows downwards) and within the plot
    assert (
        fill["usl"]["y"]
        < fill["ucl"]["y"]
        < fill["center"]["y"]
        < fill["lcl"]["y"]
        < fill["lsl"]["y"]
    )
    assert fill["usl"]["value"] == 505.0
    assert fill["lsl"]["value"] == 495.0
    frame = fill["frame"]
    # the spike: a rule-1 signal drawn above the UCL, inside the plot, under the alarm's shading
    spike = [h for h in fill["hits"] if h["index"] == SPIKE and h["rule"] == "1"]
    assert len(spike) == 1
    mark = spike[0]["box"]
    centre_y = mark["y"] + mark["h"] / 2
    centre_x = mark["x"] + mark["w"] / 2
    assert frame["y"] <= centre_y < fill["ucl"]["y"]
    assert frame["x"] <= centre_x <= frame["x"] + frame["w"]
    (alarm,) = fill["alarms"]
    assert alarm["rule"] == "fill-weight-high"
    assert alarm["box"]["x"] - 1 <= centre_x <= alarm["box"]["x"] + alarm["box"]["w"] + 1
    # every hit is drawn inside the individuals plot
    for hit in fill["hits"]:
        x = hit["box"]["x"] + hit["box"]["w"] / 2
        assert frame["x"] - 1 <= x <= frame["x"] + frame["w"] + 1
    assert float(fill["cpk"]) > 0
