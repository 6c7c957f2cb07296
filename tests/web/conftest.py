"""Fixtures of the ``edge serve`` tests: the two-gateway ledger, a real server, real Chromium.

The server is the real command (``python -m edge serve``) in its own process on a free
loopback port; the browser is Debian's ``chromium`` driven by ``chromedriver`` (both installed
by ``make test``'s ``test-tools`` target), headless, downloading into a temp directory.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import web_scenario as ws
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from web_server import TOKEN, Server, start_server, stop_server


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> ws.WebScenario:
    return ws.build(tmp_path_factory.mktemp("office") / "ledger.db")


@pytest.fixture(scope="session")
def server(scenario: ws.WebScenario) -> Iterator[Server]:
    srv = start_server(
        scenario.db, "--token", TOKEN, "--tz", "Europe/Berlin", "--verify-every", "0"
    )
    try:
        deadline = time.monotonic() + 60
        while not srv.log_lines("event=web.verified") and time.monotonic() < deadline:
            time.sleep(0.1)
        yield srv
    finally:
        stop_server(srv)


@pytest.fixture(scope="session")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="session")
def browser(downloads: Path) -> Iterator[webdriver.Chrome]:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    for tool in (chromium, driver_path):
        assert os.path.exists(tool), (
            f"{tool}: chromium and chromium-driver are needed (make test-tools)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
