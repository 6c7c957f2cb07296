"""Counters a bus poller keeps, and their frozen snapshot :class:`BusStats`."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from edge.drivers.health import BreakerState

__all__ = ["BusStats", "Counters", "DeviceStats", "Gap", "gaps_body"]

#: DeviceStats.status when the device is polled at a stretched interval
STRETCHED = "polled late: line over-committed"


@dataclass(frozen=True, slots=True)
class DeviceStats:
    """One device's health, as of the snapshot.

    Every cycle of the configured interval is either polled (``polls``), skipped (its deadline
    was missed by a whole interval: ``skipped``) or deferred (the device's interval was
    stretched by the line budget: ``deferred``); ``kept`` is polls over all three.
    """

    name: str
    unit: int
    state: BreakerState
    consecutive_failures: int
    polls: int
    failed_polls: int
    config_errors: int  #: points marked config_error
    skipped: int = 0  #: deadlines missed by a whole interval: cycles not polled
    deferred: int = 0  #: cycles given up while the interval was stretched (line over-committed)
    late_replies: int = 0  #: replies that came after the timeout, drained in the guard window
    last_lateness: float = 0.0  #: seconds past the timeout of the latest late reply
    frame_errors: int = 0  #: replies to this device discarded unread (CRC, unit, format)
    interval: float = 0.0  #: effective poll interval now, seconds (configured x stretch)
    stretch: int = 1  #: how many configured intervals one cycle takes now (1: not stretched)
    stretches: int = 0  #: times the line budget stretched this device
    cost: float = 0.0  #: measured seconds of one poll cycle on the line (0: not yet known)
    status: str = "ok"  #: ok | backoff | STRETCHED

    @property
    def kept(self) -> float:
        """The share of configured cycles actually polled (1.0 before the first)."""
        total = self.polls + self.skipped + self.deferred
        return self.polls / total if total else 1.0


@dataclass(frozen=True, slots=True)
class Gap:
    """Cycles of one device that were not polled (as opposed to polled and not answered).

    Attributes:
        device: the device's name.
        reason: ``skipped`` (deadline missed by a whole interval) or ``deferred`` (interval
            stretched: line over-committed).
        first: wall-clock time (Unix seconds) of the first deadline not polled.
        last: wall-clock time of the last one.
        cycles: configured cycles not polled between them.
        stretch: ``skipped``: 1, no deadline from ``first`` to ``last`` was polled; ``deferred``:
            the interval was stretched to ``stretch`` configured intervals, so from ``first`` to
            ``last`` one deadline in ``stretch`` was polled and the others were not.
    """

    device: str
    reason: str
    first: float
    last: float
    cycles: int
    stretch: int = 1


def _rfc3339(epoch: float) -> str:
    """Fixed-width RFC 3339 UTC with microseconds, as the ledger writes times."""
    seconds, micros = divmod(round(epoch * 1_000_000), 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(seconds)) + f"{micros:06d}Z"


def gaps_body(bus: str, gaps: Sequence[Gap], dropped: int = 0) -> dict[str, Any]:
    """The ``bus.gaps`` ledger entry body: the cycles of the bus's devices that were not polled.

    A reading missing from the store inside a recorded gap was *not polled*; a cycle that was
    polled and not answered is stored as a reading of quality stale or comm_fail.
    """
    return {
        "bus": bus,
        "gaps": [
            {
                "device": g.device,
                "reason": g.reason,
                "first": _rfc3339(g.first),
                "last": _rfc3339(g.last),
                "cycles": g.cycles,
                "stretch": g.stretch,
            }
            for g in gaps
        ],
        "dropped": dropped,
    }


@dataclass(frozen=True, slots=True)
class BusStats:
    """A snapshot of one bus poller's counters (all monotonic since start)."""

    bus: str
    requests: int = 0  #: transactions sent
    responses: int = 0  #: valid answers decoded (exception responses included)
    timeouts: int = 0  #: no answer in time
    frame_errors: int = 0  #: replies discarded: bad CRC, wrong unit id or function, short frame
    exceptions: int = 0  #: Modbus exception responses
    overruns: int = 0  #: poll deadlines missed by a whole period and skipped (sum of skipped)
    port_errors: int = 0  #: port open failures or losses (unplugged)
    reopens: int = 0  #: successful re-opens after a loss
    dropped: int = 0  #: readings lost (always 0: emit blocks instead; kept to prove it)
    port_open: bool = False
    devices: Mapping[str, DeviceStats] = field(default_factory=lambda: MappingProxyType({}))
    deferred: int = 0  #: cycles given up by stretched devices (sum over devices)
    late_replies: int = 0  #: replies drained in the guard window after a timeout
    utilisation: float = 0.0  #: share of the line the live devices' cycles take (0..1+)
    gaps_dropped: int = 0  #: gap records lost because nobody collected them (bounded buffer)


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
    late_replies: int = 0
    gaps_dropped: int = 0

    def snapshot(
        self,
        bus: str,
        port_open: bool,
        devices: Mapping[str, DeviceStats],
        utilisation: float = 0.0,
    ) -> BusStats:
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
            sum(d.deferred for d in devices.values()),
            self.late_replies,
            utilisation,
            self.gaps_dropped,
        )
