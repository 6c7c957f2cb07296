"""The TCP endpoint lock: readers share it, ``edge write`` takes it alone, a killed holder frees
it, and the last holder removes the file (no lock files pile up in the temp folder)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge.drivers.portlock import lock_path, release_endpoint_lock, take_endpoint_lock
from edge.errors import PortUnavailable

ADDRESS = "10.0.0.7:502"


@pytest.fixture(autouse=True)
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EDGE_LOCK_DIR", str(tmp_path / "locks"))
    return tmp_path / "locks"


def test_readers_share_writers_wait() -> None:
    a = take_endpoint_lock(ADDRESS, exclusive=False)
    b = take_endpoint_lock(ADDRESS, exclusive=False)
    with pytest.raises(PortUnavailable, match="in use by a running edge node or edge read"):
        take_endpoint_lock(ADDRESS, exclusive=True)
    release_endpoint_lock(a, ADDRESS)
    assert lock_path(ADDRESS).exists()  # b still holds it
    release_endpoint_lock(b, ADDRESS)
    assert not lock_path(ADDRESS).exists()  # the last one out removed it
    w = take_endpoint_lock(ADDRESS, exclusive=True)
    with pytest.raises(PortUnavailable, match="in use by edge write"):
        take_endpoint_lock(ADDRESS, exclusive=False)
    release_endpoint_lock(w, ADDRESS)
    assert list(lock_path(ADDRESS).parent.iterdir()) == []


def test_a_killed_holder_frees_the_endpoint(lock_dir: Path) -> None:
    """SIGKILL leaves no stale lock: the kernel drops it with the process."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from edge.drivers.portlock import take_endpoint_lock;"
         f"take_endpoint_lock({ADDRESS!r}, exclusive=False); print('held', flush=True);"
         "sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(PortUnavailable):
        take_endpoint_lock(ADDRESS, exclusive=True)
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    fd = take_endpoint_lock(ADDRESS, exclusive=True)
    release_endpoint_lock(fd, ADDRESS)


def test_addresses_map_to_distinct_files() -> None:
    assert lock_path("[::1]:502") != lock_path("127.0.0.1:502")
    assert lock_path("PLC.local:502") == lock_path("plc.local:502")
    assert lock_path("a/b:1").parent == lock_path("x:1").parent  # no path escapes
