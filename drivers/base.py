"""The contract between the drivers and the runtime: one :class:`BusPoller` per bus."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable

from edge.drivers.stats import BusStats, Gap
from edge.readings import Reading

__all__ = ["BusPoller", "Emit"]

#: The runtime's sink: awaits a bounded queue (backpressure), so a slow consumer slows polling
#: down instead of losing readings.
Emit = Callable[[list[Reading]], Awaitable[None]]


class BusPoller(abc.ABC):
    """The one owner of a bus: polls every device on it, one transaction at a time.

    Attributes:
        name: the bus name from the config.
    """

    name: str

    @abc.abstractmethod
    async def run(self, emit: Emit) -> None:
        """Poll until cancelled.

        Per device and poll cycle, ``await emit(readings)`` with one Reading per point (quality
        good/stale/comm_fail/config_error). Device and port errors never escape: they become
        qualities and counters. On cancellation the port is closed promptly: an RTU/TCP
        transaction in flight is simply abandoned (it runs on the event loop), a blocking call
        in the bus's worker thread (port open/close, a serial-line read) is bounded by the bus
        timeout.
        """

    @abc.abstractmethod
    def stats(self) -> BusStats:
        """A frozen snapshot of the counters and per-device state."""

    def take_gaps(self) -> list[Gap]:
        """Cycles not polled (skipped or deferred) since the last call, oldest first."""
        return []
