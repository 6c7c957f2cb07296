"""A real ``edge serve`` process for the tests (tests/web/): start it, read its log, stop it."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

TOKEN = "s3cret-office-token"


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[str]
    log: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def log_lines(self, word: str) -> list[str]:
        return [line for line in list(self.log) if word in line]


def start_server(db: Path, *args: str) -> Server:
    """Run ``edge serve`` on a free loopback port; returns once it listens (30 s at most)."""
    cmd = [sys.executable, "-m", "edge", "serve", "--db", str(db), "--listen", "127.0.0.1:0", *args]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    log: list[str] = []
    found: list[str] = []
    ready = threading.Event()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line.rstrip("\n"))
            m = re.search(r"edge serve: (http://\S+)/ ", line)
            if m:
                found.append(m.group(1))
                ready.set()
        ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    if not ready.wait(30) or not found:
        proc.kill()
        raise AssertionError("edge serve did not start:\n" + "\n".join(log))
    return Server(found[0], proc, log, reader)


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(5)
    if server.reader is not None:
        server.reader.join(10)
    if server.proc.stderr is not None:
        server.proc.stderr.close()
