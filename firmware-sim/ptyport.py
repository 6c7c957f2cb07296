"""A pseudo-terminal standing in for a serial port, reachable through a stable symlink.

The simulator keeps the PTY's master side; drivers open the slave side by the symlink path
(``<run dir>/<bus>.tty``) exactly as they would open ``/dev/ttyUSB0``. The slave is put in raw
mode so every byte passes unchanged (no echo, no CR/LF translation, no XON/XOFF).

The simulator also holds the slave side open itself: without that, reading the master returns
EIO whenever no driver has the port open, and a reader callback would spin on it.

Unplugging (:meth:`PtyPort.close`) closes both sides and removes the symlink: a driver that had
the port open sees its reads fail, and reopening the path fails with "no such file", as with a
pulled USB adapter. :meth:`PtyPort.open` then creates a *new* PTY (the kernel usually gives it
another ``/dev/pts/N``) and atomically re-points the same symlink at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import termios
import threading
import tty
from collections.abc import Callable
from pathlib import Path

__all__ = ["PtyPort"]

#: Unread bytes the driver side may accumulate before old ones are discarded, as a UART FIFO
#: overruns when nobody reads a device that talks by itself.
BACKLOG_LIMIT = 4096


class PtyPort:
    """One simulated serial port: a PTY pair plus a stable symlink to its slave side.

    Thread-safe: replies may be written from a timing thread while the loop unplugs the port.
    """

    def __init__(self, link: Path) -> None:
        """Prepare a port whose symlink will live at ``link`` (created by :meth:`open`)."""
        self.link = Path(link)
        self.master_fd = -1
        self._slave_fd = -1
        self.device = ""  #: the current /dev/pts/N
        self.generation = 0  #: how many times the port was (re)created
        self.dropped = 0  #: bytes discarded because the driver side did not read them
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_readable: Callable[[], None] | None = None

    def attach(self, loop: asyncio.AbstractEventLoop, on_readable: Callable[[], None]) -> None:
        """Call ``on_readable`` from ``loop`` whenever the driver wrote something, across replugs.

        While attached, :meth:`open` and :meth:`close` must be called from the loop's thread.
        """
        self._loop, self._on_readable = loop, on_readable
        if self.master_fd >= 0:
            loop.add_reader(self.master_fd, on_readable)

    def detach(self) -> None:
        """Stop watching the port (it stays open)."""
        if self._loop is not None and self.master_fd >= 0:
            self._loop.remove_reader(self.master_fd)
        self._loop = self._on_readable = None

    @property
    def is_open(self) -> bool:
        """Whether the port is plugged in."""
        return self.master_fd >= 0

    def open(self) -> None:
        """Create a fresh PTY and point the symlink at it (atomically, replacing any old link)."""
        with self._lock:
            if self.master_fd >= 0:
                return
            master, slave = os.openpty()
            tty.setraw(slave, termios.TCSANOW)
            _park_speed(slave)
            os.set_blocking(master, False)
            self.device = os.ttyname(slave)
            tmp = self.link.with_name(f".{self.link.name}.{os.getpid()}.tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            self.link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(self.device, tmp)
            os.replace(tmp, self.link)
            self.master_fd, self._slave_fd = master, slave
            self.generation += 1
            if self._loop is not None and self._on_readable is not None:
                self._loop.add_reader(master, self._on_readable)

    def close(self) -> None:
        """Unplug: close both sides and remove the symlink. Idempotent."""
        with self._lock:
            if self.master_fd < 0:
                return
            if self._loop is not None:
                self._loop.remove_reader(self.master_fd)
            with contextlib.suppress(FileNotFoundError):
                if self.link.is_symlink() and os.readlink(self.link) == self.device:
                    self.link.unlink()
            os.close(self.master_fd)
            os.close(self._slave_fd)
            self.master_fd = self._slave_fd = -1

    def read(self) -> bytes:
        """Bytes the driver wrote (empty if none or unplugged)."""
        with self._lock:
            if self.master_fd < 0:
                return b""
            try:
                data = os.read(self.master_fd, 4096)
                _park_speed(self._slave_fd)
                return data
            except (BlockingIOError, InterruptedError):
                return b""
            except OSError:  # EIO: nobody on the other side; nothing to read
                return b""

    def write(self, data: bytes) -> bool:
        """Send bytes to the driver; False if the port is unplugged or the data was dropped."""
        with self._lock:
            if self.master_fd < 0:
                return False
            _park_speed(self._slave_fd)
            pending = _pending(self._slave_fd)
            if pending + len(data) > BACKLOG_LIMIT:
                termios.tcflush(self._slave_fd, termios.TCIFLUSH)
                self.dropped += pending
            try:
                written = os.write(self.master_fd, data)
            except (BlockingIOError, InterruptedError):
                self.dropped += len(data)
                return False
            if written < len(data):
                self.dropped += len(data) - written
                return False
            return True

    def __enter__(self) -> PtyPort:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: A speed no master uses. See :func:`_park_speed`.
PARKED_SPEED = termios.B50


def _park_speed(fd: int) -> None:
    """Set the PTY's nominal speed to 50 baud (a PTY ignores it).

    Linux PTYs cannot carry parity: the kernel clears PARENB, and recent kernels (6.x) then
    answer a tcsetattr that changes nothing else with EINVAL. A master asking for parity E at
    19200 baud therefore fails whenever the PTY already says 19200 (reopening it, or pyserial
    re-applying settings to change a timeout). Parking the speed elsewhere after each request
    and each write means the master's next settings change also changes the speed, which the
    kernel accepts.
    """
    with contextlib.suppress(termios.error, OSError):
        attrs = termios.tcgetattr(fd)
        if attrs[4] != PARKED_SPEED or attrs[5] != PARKED_SPEED:
            attrs[4] = attrs[5] = PARKED_SPEED
            termios.tcsetattr(fd, termios.TCSANOW, attrs)


def _pending(fd: int) -> int:
    """Bytes waiting in the slave side's input queue (written by us, not yet read)."""
    buf = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return int.from_bytes(buf, "little")
