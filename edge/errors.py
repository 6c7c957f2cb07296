"""Every error edge-qc raises on purpose, in one tree rooted at :class:`EdgeError`.

Third-party errors (pyserial, minimalmodbus, pymodbus, aiomqtt, sqlite3, OS errors) are
translated into these at the boundary where they happen (see :func:`map_exceptions`), so the
rest of the code and the CLI deal with one vocabulary. Each name has one meaning::

    EdgeError
    ├── ConfigError                 a node config, rule file or scenario file is wrong (file:line / key path)
    ├── DeviceError                 a field device or its line failed (names bus, device, unit, register)
    │   ├── PortUnavailable         the serial port / TCP endpoint cannot be opened or vanished (unplugged)
    │   ├── DeviceTimeout           the device did not answer in time
    │   ├── FrameError              a reply was malformed: bad CRC, wrong unit id or function, short frame
    │   └── DeviceException         the device answered with a Modbus exception code (01 illegal function ...)
    ├── LedgerError                 the ledger could not do what was asked
    │   ├── NotCanonical            a value is outside the hashable subset (floats, big ints, non-str keys)
    │   ├── StorageError            the database file failed underneath us (disk full, I/O error, locked)
    │   │   └── ReadingsDamaged     a stored readings block does not decode (changed bytes, not ours)
    │   ├── LedgerClosed            use of a ledger after close() (our bug, not the disk's)
    │   ├── KeyFileError            the node key is missing, unreadable, or would be overwritten
    │   ├── RollbackRefused         our own head is behind what we once had or peers hold: no append
    │   ├── UnknownEntry            an entry id (or prefix) given by a user matches no entry, or several
    │   └── TrustError              a trust list or a key given to trust is malformed, or already/not there
    ├── BrokerError                 the MQTT broker is unreachable or refused us
    ├── SyncError                   a sync message from a peer is not valid (edge.sync; counted, never fatal)
    └── NodeNotRunning              no node runs with this config (its control socket is absent or refuses)

Names follow trio's split between *Closed* (we closed it: a programming error) and *Unavailable*
/ *Timeout* (the world broke it: expected in the field, handled by retry and backoff).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

__all__ = [
    "BrokerError",
    "ConfigError",
    "DeviceError",
    "DeviceException",
    "DeviceTimeout",
    "EdgeError",
    "FrameError",
    "KeyFileError",
    "LedgerClosed",
    "LedgerError",
    "NodeNotRunning",
    "NotCanonical",
    "PortUnavailable",
    "ReadingsDamaged",
    "RollbackRefused",
    "StorageError",
    "SyncError",
    "TrustError",
    "UnknownEntry",
    "map_exceptions",
]


class EdgeError(Exception):
    """Root of every error edge-qc raises on purpose; ``str(err)`` is a one-line message."""


class ConfigError(EdgeError):
    """A configuration, rule or scenario file is wrong.

    Attributes:
        problems: every problem found, each already formatted as one line
            (``node.toml: devices.tunnel.poll: bad duration '5 parsecs'``).
    """

    def __init__(self, problems: str | list[str]) -> None:
        self.problems: list[str] = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class DeviceError(EdgeError):
    """A field device or the line it hangs on failed; the message names where."""


class PortUnavailable(DeviceError):
    """The serial port or TCP endpoint cannot be opened, or disappeared (USB unplugged)."""


class DeviceTimeout(DeviceError):
    """The device did not answer within its timeout."""


class FrameError(DeviceError):
    """A reply was malformed (CRC, wrong unit id or function code, truncated) and was discarded."""


class DeviceException(DeviceError):
    """The device answered with a Modbus exception response.

    Attributes:
        code: the Modbus exception code (1 illegal function, 2 illegal data address,
            3 illegal data value, 4 server device failure, ...).
    """

    def __init__(self, message: str, code: int) -> None:
        self.code = code
        super().__init__(message)


class LedgerError(EdgeError):
    """The ledger could not do what was asked."""


class NotCanonical(LedgerError):
    """A value cannot be hashed canonically (a float, an integer beyond 2**53, a non-str key)."""


class StorageError(LedgerError):
    """The SQLite file failed underneath the ledger (disk full, I/O error, corrupt, locked)."""


class ReadingsDamaged(StorageError):
    """A stored block of raw readings does not decode: its bytes were changed or are not ours."""


class LedgerClosed(LedgerError):
    """The ledger was used after it was closed."""


class KeyFileError(LedgerError):
    """The node key file is missing, unreadable, malformed or would be overwritten."""


class RollbackRefused(LedgerError):
    """Our own feed is behind a head we signed before: appending would fork it."""


class UnknownEntry(LedgerError):
    """An entry id or id prefix given by a user matches no stored entry, or more than one."""


class TrustError(LedgerError):
    """A trust list or a key given to trust is malformed, or a name/key is already (or not) on it."""


class BrokerError(EdgeError):
    """The MQTT broker is unreachable, refused the connection, or dropped it."""


class SyncError(EdgeError):
    """A sync message from a peer is not valid (malformed, oversize, unknown version, spoofed)."""


class NodeNotRunning(EdgeError):
    """No node runs with this config: its control socket is absent or refuses connections."""


@contextlib.contextmanager
def map_exceptions(
    mapping: Mapping[type[BaseException], type[EdgeError]], where: str
) -> Iterator[None]:
    """Translate foreign exceptions into edge errors at a boundary.

    Args:
        mapping: foreign exception type -> edge error type; the first matching entry wins,
            so list subclasses before their bases.
        where: what was being done to whom, prefixed to the message
            (``"bus rs485-1 device tunnel unit 3 register 100"``).

    Raises:
        EdgeError: the mapped type, chained to the original exception.
    """
    try:
        yield
    except EdgeError:
        raise
    except Exception as exc:
        for foreign, ours in mapping.items():
            if isinstance(exc, foreign):
                detail = str(exc) or type(exc).__name__
                raise ours(f"{where}: {detail}") from exc
        raise
