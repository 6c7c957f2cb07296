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

import contextlib
import errno
import fcntl
import os
import re
import tempfile
from pathlib import Path

from edge.errors import PortUnavailable

__all__ = [
    "lock_dir",
    "lock_path",
    "port_reason",
    "release_endpoint_lock",
    "take_endpoint_lock",
]


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
    """Lock endpoint ``address``; returns the fd to pass to :func:`release_endpoint_lock`.

    Raises:
        PortUnavailable: ``exclusive`` and another program holds the lock (a running node), or
            not ``exclusive`` and ``edge write`` holds it, or the lock file cannot be created.
    """
    folder = lock_dir()
    path = lock_path(address)
    while True:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if folder.stat().st_uid == os.getuid():
                os.chmod(folder, 0o1777)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise PortUnavailable(
                f"address {address}: cannot create lock file in {folder}: {exc.strerror}"
            ) from exc
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            holder = "a running edge node or edge read" if exclusive else "edge write"
            raise PortUnavailable(f"address {address}: in use by {holder} (lock {path})") from exc
        # the last holder may have removed the file between our open and our lock: then this
        # lock guards nothing, try again on the file now at the path
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def release_endpoint_lock(fd: int, address: str) -> None:
    """Release the lock; the last holder removes the file, so no lock files pile up."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pass  # others hold it still: they remove it
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_path(address))
    finally:
        os.close(fd)


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
