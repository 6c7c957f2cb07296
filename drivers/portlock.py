"""Who owns a bus: advisory locks that a running node and ``edge write`` both honour.

A serial port is locked by the port itself: every edge program opens it with pyserial's
``exclusive=True`` (``flock(LOCK_EX | LOCK_NB)`` on the device node), so a second program cannot
open a port a node is polling. A Modbus TCP endpoint has no such thing (a device serves several
clients), so pollers take a *shared* lock on a file named for the endpoint for as long as their
transport lives, and ``edge write`` takes it *exclusively*: any number of readers, but no write
behind a running node's back. The lock is released by the kernel when the holder dies, even on
SIGKILL, so a crashed node never leaves a stale lock.

The files live in ``$EDGE_LOCK_DIR`` (default ``<tmp>/edge-qc-locks``, mode 1777 so a node
running as a service user and a technician's shell see the same locks).
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import tempfile
from pathlib import Path

from edge.errors import PortUnavailable

__all__ = ["lock_dir", "lock_path", "port_reason", "take_endpoint_lock"]


def lock_dir() -> Path:
    """The folder holding the endpoint lock files."""
    return Path(os.environ.get("EDGE_LOCK_DIR") or Path(tempfile.gettempdir()) / "edge-qc-locks")


def lock_path(address: str) -> Path:
    """The lock file of a TCP endpoint ``host:port`` (case and brackets folded)."""
    name = re.sub(
        r"[^A-Za-z0-9._-]", "_", address.strip().lower().replace("[", "").replace("]", "")
    )
    return lock_dir() / f"tcp-{name}.lock"


def take_endpoint_lock(address: str, *, exclusive: bool) -> int:
    """Lock endpoint ``address``; returns the fd to close to release it.

    Raises:
        PortUnavailable: ``exclusive`` and another program holds the lock (a running node), or
            the lock file cannot be created.
    """
    folder = lock_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if folder.stat().st_uid == os.getuid():
            os.chmod(folder, 0o1777)
        fd = os.open(lock_path(address), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise PortUnavailable(
            f"address {address}: cannot create lock file in {folder}: {exc.strerror}"
        ) from exc
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        holder = "a running edge node or edge read" if exclusive else "edge write"
        raise PortUnavailable(
            f"address {address}: in use by {holder} (lock {lock_path(address)})"
        ) from exc
    return fd


def port_reason(exc: BaseException) -> str:
    """Why a serial port could not be opened, said once.

    pyserial's own text repeats itself (``[Errno 2] could not open port /dev/x: [Errno 2] No
    such file or directory: '/dev/x'``); the caller's message already names the port, so this
    is just the reason: the OS's words for the errno, or "in use by another program" for the
    exclusive lock another edge program holds.
    """
    code = exc.errno if isinstance(exc, OSError) else None
    if code in (errno.EAGAIN, errno.EWOULDBLOCK) and "lock" in str(exc).lower():
        return "in use by another program (it holds the port's exclusive lock)"
    if code:
        return os.strerror(code)
    return str(exc) or type(exc).__name__
