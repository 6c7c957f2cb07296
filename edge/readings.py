"""The value that flows from the drivers to the rules: one :class:`Reading` per point per poll."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import cast

__all__ = ["Quality", "Reading", "Value", "new_reading"]

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


# The slots' own setters: a frozen dataclass's __init__ stores each field through
# ``object.__setattr__`` (a global, an attribute and a generic call per field, ~1 us a reading);
# a slot's descriptor stores straight into it. Reading has no __post_init__ and no validation
# to skip (tests/edge/test_readings_fast.py holds new_reading equal to Reading).
_Setter = Callable[[Reading, object], None]
_FIELDS = ("point", "ts", "value", "quality", "unit", "latency")
if tuple(f.name for f in fields(Reading)) != _FIELDS:  # pragma: no cover - a guard for edits
    raise RuntimeError("Reading's fields changed: update new_reading")
_SP, _ST, _SV, _SQ, _SU, _SL = (cast(_Setter, Reading.__dict__[n].__set__) for n in _FIELDS)
_NEW = cast(Callable[[type[Reading]], Reading], object.__new__)


def new_reading(
    point: str,
    ts: float,
    value: Value | None,
    quality: Quality,
    unit: str,
    latency: float,
    *,
    _new: Callable[[type[Reading]], Reading] = _NEW,
    _sp: _Setter = _SP,
    _st: _Setter = _ST,
    _sv: _Setter = _SV,
    _sq: _Setter = _SQ,
    _su: _Setter = _SU,
    _sl: _Setter = _SL,
) -> Reading:
    """``Reading(point, ts, value, quality, unit, latency)`` in about half the time.

    The drivers build one per point per poll (400 a second on issue 18's job); the result is
    an ordinary :class:`Reading` (same type, equality, hash and repr).
    """
    r = _new(Reading)
    _sp(r, point)
    _st(r, ts)
    _sv(r, value)
    _sq(r, quality)
    _su(r, unit)
    _sl(r, latency)
    return r
