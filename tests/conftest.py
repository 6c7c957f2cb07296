"""Fixtures shared by every area: a private Mosquitto broker on a free loopback port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    """A running Mosquitto the test owns (it can stop and start it again on the same port)."""

    host: str
    port: int
    conf: Path
    exe: str = "mosquitto"
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A Mosquitto broker of the test's own, on a free loopback port."""
    exe = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if exe is None:  # pragma: no cover - the machine kind ships it
        pytest.fail("mosquitto is not installed (apt-get install mosquitto)")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    b = Broker("127.0.0.1", port, conf, exe)
    b.start()
    try:
        yield b
    finally:
        b.stop()


# The end-to-end folders hold the long tests (brokers stopped for 30-60 s, crash suites, real
# browsers); most of their time is waiting, not CPU. Run them first so the two xdist workers
# overlap that waiting with the short tests instead of ending the run on it (-n 2 wall time).
# `make test` schedules with --dist worksteal: each worker starts on half of this order (the
# first half holds the long tests) and an idle worker takes the end of the other's queue, so the
# two finish together. With --dist load the first worker's first chunk held every long test and
# the run ended on it while the other had long finished.
_FIRST = ("tests/integration/", "tests/web/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the end-to-end tests first (stable order otherwise)."""
    items.sort(key=lambda item: not any(part in item.path.as_posix() for part in _FIRST))
