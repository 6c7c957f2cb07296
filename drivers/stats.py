"""Counters a bus poller keeps, and their frozen snapshot :class:`BusStats`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from edge.drivers.health import BreakerState

__all__ = ["BusStats", "Counters", "DeviceStats"]


@dataclass(frozen=True, slots=True)
class DeviceStats:
    """One device's health, as of the snapshot."""

    name: str
    unit: int
    state: BreakerState
    consecutive_failures: int
    polls: int
    failed_polls: int
    config_errors: int  #: points marked config_error


@dataclass(frozen=True, slots=True)
class BusStats:
    """A snapshot of one bus poller's counters (all monotonic since start)."""

    bus: str
    requests: int = 0  #: transactions sent
    responses: int = 0  #: valid answers decoded (exception responses included)
    timeouts: int = 0  #: no answer in time
    frame_errors: int = 0  #: replies discarded: bad CRC, wrong unit id or function, short frame
    exceptions: int = 0  #: Modbus exception responses
    overruns: int = 0  #: poll deadlines missed by a whole period (the bus is too slow)
    port_errors: int = 0  #: port open failures or losses (unplugged)
    reopens: int = 0  #: successful re-opens after a loss
    dropped: int = 0  #: readings lost (always 0: emit blocks instead; kept to prove it)
    port_open: bool = False
    devices: Mapping[str, DeviceStats] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(slots=True)
class Counters:
    """The mutable counterpart of :class:`BusStats`, owned by one poller."""

    requests: int = 0
    responses: int = 0
    timeouts: int = 0
    frame_errors: int = 0
    exceptions: int = 0
    overruns: int = 0
    port_errors: int = 0
    reopens: int = 0
    dropped: int = 0

    def snapshot(self, bus: str, port_open: bool, devices: Mapping[str, DeviceStats]) -> BusStats:
        """Freeze the counters."""
        return BusStats(
            bus,
            self.requests,
            self.responses,
            self.timeouts,
            self.frame_errors,
            self.exceptions,
            self.overruns,
            self.port_errors,
            self.reopens,
            self.dropped,
            port_open,
            MappingProxyType(dict(devices)),
        )
