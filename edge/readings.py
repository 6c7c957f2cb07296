"""The value that flows from the drivers to the rules: one :class:`Reading` per point per poll."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Quality", "Reading", "Value"]

#: A decoded point value: numbers for registers, bool for coils/bits, str for ASCII points.
Value = float | int | bool | str


class Quality(enum.StrEnum):
    """How far a reading can be trusted (carried on every reading, never dropped)."""

    GOOD = "good"
    #: the device answered before, but the last k polls missed; ``value`` is the last good one.
    STALE = "stale"
    #: the device or line failed (timeout, port gone, bad frames); ``value`` is None.
    COMM_FAIL = "comm_fail"
    #: the point is mis-configured for this device (exception 02/03 on its register); never retried.
    CONFIG_ERROR = "config_error"


@dataclass(frozen=True, slots=True)
class Reading:
    """One sample of one point.

    Attributes:
        point: the point's name as configured (unique per node).
        ts: when the value was sampled, seconds since the Unix epoch (UTC).
        value: decoded engineering value, or None when there is none (comm_fail, config_error).
        quality: see :class:`Quality`.
        unit: engineering unit (``"degC"``, ``"g"``), empty when dimensionless.
        latency: round-trip time of the request that produced it, in seconds (0 if unknown).
    """

    point: str
    ts: float
    value: Value | None
    quality: Quality = Quality.GOOD
    unit: str = ""
    latency: float = 0.0

    def age(self, now: float) -> float:
        """Seconds since the value was sampled."""
        return max(0.0, now - self.ts)
