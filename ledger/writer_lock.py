"""The ledger's single-writer lock: ``<db>.lock``, held by the one process that appends.

An ``flock`` on a file beside the database, so the kernel releases it when the holder dies,
even by SIGKILL (the next start does not wait for a stale lock).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from edge.errors import StorageError

__all__ = ["take_writer_lock"]


def take_writer_lock(path: Path) -> int:
    """Take the single-writer lock ``<db>.lock`` (released when the fd closes, even on SIGKILL)."""
    lock_path = Path(f"{path}.lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(f"ledger {path}: cannot create lock file: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise StorageError(
            f"ledger {path}: another process is writing to it (lock {lock_path} held)"
        ) from exc
    return fd
