"""Per-device health: the circuit breaker and per-point quality bookkeeping. Pure (time passed in).

Quality convention (documented in docs/reference/drivers.md):

- a point read in this poll is ``good``;
- a point whose poll failed (timeout, bad frame, port gone, breaker open) keeps its last good
  value as ``stale`` -- with the *sample's* timestamp, so ``Reading.age(now)`` tells how old it
  is -- until ``stale_after`` consecutive polls have missed it; from then on (or when it never
  had a value) it is ``comm_fail`` with value None;
- a point whose register the device rejects (exception 02/03 on a request holding only that
  point) is ``config_error`` for good: it is never read again until the node restarts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edge.config import PointConfig
from edge.readings import Quality, Reading, Value, new_reading

__all__ = ["Breaker", "BreakerState", "PointState"]

_GOOD = Quality.GOOD  # a module global: good() runs once per point per poll


class BreakerState(enum.StrEnum):
    """Whether a device is polled normally or skipped until its backoff expires."""

    OK = "ok"
    BACKOFF = "backoff"


class Breaker:
    """Circuit breaker with exponential backoff for one device.

    After ``trip`` consecutive failures (timeouts: the device did not answer) the device is not
    asked again for ``base * 2**k`` seconds, capped by a *ceiling* the scheduler derives from
    the line's spare capacity (:func:`edge.drivers.budget.probe_ceiling`: a few seconds on an
    idle line, so a re-plugged sensor is back quickly) and never above ``cap`` (the device's
    ``backoff_cap``, reached only on a busy line). A dead device costs at most one timeout per
    backoff period. One answer closes it again.
    """

    __slots__ = ("base", "cap", "failed_at", "failures", "open_until", "trip")

    def __init__(self, base: float, cap: float, trip: int = 2) -> None:
        self.base = base
        self.cap = max(cap, base)
        self.trip = trip
        self.failures = 0
        self.open_until = 0.0
        self.failed_at = 0.0

    @property
    def state(self) -> BreakerState:
        """OK while closed, BACKOFF while open (or half-open, waiting for its probe)."""
        return BreakerState.BACKOFF if self.failures >= self.trip else BreakerState.OK

    def allows(self, now: float) -> bool:
        """Whether the device may be asked at ``now``."""
        return now >= self.open_until

    def success(self) -> None:
        """The device answered: close the breaker."""
        self.failures = 0
        self.open_until = 0.0

    def failure(self, now: float, ceiling: float | None = None) -> float:
        """The device did not answer at ``now``; returns the backoff started (0 if none).

        ``ceiling``: the longest time between probes the line's spare capacity allows now
        (None: ``cap``). The probe goes at the device's first poll deadline after the backoff,
        up to one interval later, so the backoff is at most ``ceiling - base``.
        """
        self.failures += 1
        self.failed_at = now
        if self.failures < self.trip:
            return 0.0
        delay = min(self.cap, self.base * 2.0 ** (self.failures - self.trip))
        if ceiling is not None:
            delay = max(self.base, min(delay, ceiling - self.base))
        self.open_until = now + delay
        return delay

    def reclamp(self, ceiling: float) -> None:
        """The line has more room now: probe no later than ``ceiling`` after the last failure.

        A long backoff begun on a busy line is cut short (only while the breaker is open).
        """
        if self.failures >= self.trip:
            delay = max(self.base, ceiling - self.base)
            self.open_until = min(self.open_until, self.failed_at + delay)


@dataclass(slots=True)
class PointState:
    """What the driver remembers about one point between polls."""

    point: PointConfig
    stale_after: int
    value: Value | None = None
    ts: float = 0.0
    latency: float = 0.0
    missed: int = 0
    config_error: bool = False

    def good(self, value: Value, ts: float, latency: float) -> Reading:
        """A fresh value was read."""
        self.value, self.ts, self.latency, self.missed = value, ts, latency, 0
        point = self.point
        return new_reading(point.name, ts, value, _GOOD, point.unit, latency)

    def miss(self, now: float) -> Reading:
        """This poll did not deliver the point."""
        if self.config_error:
            return self.rejected(now)
        self.missed += 1
        if self.value is not None and self.missed < self.stale_after:
            return new_reading(
                self.point.name, self.ts, self.value, Quality.STALE, self.point.unit, self.latency
            )
        return new_reading(self.point.name, now, None, Quality.COMM_FAIL, self.point.unit, 0.0)

    def rejected(self, now: float) -> Reading:
        """The device rejects this point's register: mark it for good."""
        self.config_error = True
        self.value = None
        return Reading(self.point.name, now, None, Quality.CONFIG_ERROR, self.point.unit, 0.0)
