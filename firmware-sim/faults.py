"""Fault injection: what can go wrong with a device or its line, scheduled or on command.

A fault is a named kind with parameters, active from ``start`` to ``end`` (simulation seconds;
``end`` None = until cleared). Value faults change the numbers a device reports; communication
faults change how it answers; ``port_gone`` unplugs the whole port its bus hangs on.

- noise (sd=1.0): adds N(0, sd) at every model step.
- drift (rate=0.01 units/s): adds rate * seconds since the fault started.
- stuck (value=the value when it stuck): the value stops changing.
- spikes (magnitude=10.0, probability=0.05): at each model step, with that probability,
  adds ±magnitude.
- no_response (probability=1.0): requests go unanswered (the master times out).
- corrupt_crc (probability=1.0): replies carry a wrong CRC (RTU), a wrong transaction id
  (TCP), a garbled character (serial line).
- slow_response (delay=0.5 s, at=none): replies come ``delay`` late; with ``at`` the reply
  instead ends ``at`` after the request arrived (never sooner than the line allows), so a test
  puts a reply exactly at 187 ms of a 200 ms timeout, or 7 ms past it, whatever the baud rate.
- wrong_unit (unit=own unit + 1): replies carry another unit id.
- exception (code=4, function=all): requests are answered with Modbus exception ``code``.
- port_gone: the PTY is closed and its symlink removed (TCP: listener and connections
  closed); re-created at the same path after ``duration`` or on clear.

``point`` (optional, value faults) restricts a value fault to one point of the device; ``duration``
(any fault) makes it clear itself.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edge.durations import parse_duration

__all__ = [
    "COMM_FAULTS",
    "FAULTS",
    "FAULT_PARAMS",
    "VALUE_FAULTS",
    "Fault",
    "FaultSet",
    "check_fault",
    "deterministic_random",
]

VALUE_FAULTS = ("noise", "drift", "stuck", "spikes")
COMM_FAULTS = (
    "no_response",
    "corrupt_crc",
    "slow_response",
    "wrong_unit",
    "exception",
    "port_gone",
)
FAULTS = VALUE_FAULTS + COMM_FAULTS

#: Parameters each fault accepts, with their defaults (None: no default, computed on use).
FAULT_PARAMS: Mapping[str, Mapping[str, float | int | str | None]] = {
    "noise": {"sd": 1.0, "point": None},
    "drift": {"rate": 0.01, "point": None},
    "stuck": {"value": None, "point": None},
    "spikes": {"magnitude": 10.0, "probability": 0.05, "point": None},
    "no_response": {"probability": 1.0},
    "corrupt_crc": {"probability": 1.0},
    "slow_response": {"delay": 0.5, "at": None},
    "wrong_unit": {"unit": None},
    "exception": {"code": 4, "function": None},
    "port_gone": {},
}
_COMMON = ("duration",)


def deterministic_random(*key: object) -> random.Random:
    """A generator seeded from ``key`` (str seeds are hashed with SHA-512: stable across runs)."""
    return random.Random(":".join(str(k) for k in key))


def check_fault(kind: str, params: Mapping[str, Any]) -> list[str]:
    """Every problem with a fault kind and its parameters, as ``key: message`` strings."""
    if kind not in FAULT_PARAMS:
        return [f"fault: unknown fault {kind!r}; expected one of {', '.join(FAULTS)}"]
    problems = []
    allowed = FAULT_PARAMS[kind]
    for key, value in params.items():
        if key in _COMMON:
            if isinstance(value, str):
                try:
                    parse_duration(value)
                except ValueError as exc:
                    problems.append(f"{key}: {exc}")
            elif isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                problems.append(f"{key}: expected a positive duration, got {value!r}")
            continue
        if key not in allowed:
            known = ", ".join((*allowed, *_COMMON))
            problems.append(f"{key}: not a parameter of fault {kind!r} (known: {known})")
        elif key == "point":
            if not isinstance(value, str):
                problems.append(f"{key}: expected a point name, got {value!r}")
        elif key in ("delay", "at") and isinstance(value, str):
            try:
                parse_duration(value)
            except ValueError as exc:
                problems.append(f"{key}: {exc}")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{key}: expected a number, got {value!r}")
        elif key == "probability" and not 0.0 <= value <= 1.0:
            problems.append(f"{key}: must be within 0..1, got {value}")
        elif key == "code" and not 1 <= value <= 255:
            problems.append(f"{key}: exception code must be 1..255, got {value}")
    return problems


def _seconds(value: Any) -> float:
    return parse_duration(value) if isinstance(value, str) else float(value)


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault.

    Attributes:
        kind: one of :data:`FAULTS`.
        start: simulation time it began, seconds.
        end: simulation time it clears itself, or None (until cleared).
        params: its parameters with defaults filled in (``duration`` removed).
    """

    kind: str
    start: float
    end: float | None
    params: Mapping[str, Any]

    def active(self, now: float) -> bool:
        """Whether the fault is in force at ``now``."""
        return self.start <= now and (self.end is None or now < self.end)

    def applies_to(self, point: str) -> bool:
        """Whether a value fault touches ``point`` (all points unless it names one)."""
        target = self.params.get("point")
        return target is None or target == point

    @classmethod
    def make(cls, kind: str, start: float, params: Mapping[str, Any]) -> Fault:
        """Validate and build a fault; raises ValueError listing every problem."""
        problems = check_fault(kind, params)
        if problems:
            raise ValueError("; ".join(problems))
        filled = dict(FAULT_PARAMS[kind])
        filled.update({k: v for k, v in params.items() if k != "duration"})
        for key in ("delay", "at"):
            if filled.get(key) is not None:
                filled[key] = _seconds(filled[key])
        duration = params.get("duration")
        end = start + _seconds(duration) if duration is not None else None
        return cls(kind, start, end, filled)


@dataclass(slots=True)
class FaultSet:
    """The faults of one device, safe to change from another thread while it serves."""

    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault) -> None:
        """Put a fault in force (a second fault of the same kind replaces the first)."""
        with self.lock:
            self.faults = [
                f
                for f in self.faults
                if f.kind != fault.kind or f.params.get("point") != fault.params.get("point")
            ]
            self.faults.append(fault)

    def clear(self, kind: str | None = None) -> list[Fault]:
        """Remove faults of ``kind`` (all if None); returns what was removed."""
        with self.lock:
            gone = [f for f in self.faults if kind is None or f.kind == kind]
            self.faults = [f for f in self.faults if f not in gone]
            return gone

    def active(self, kind: str, now: float) -> Fault | None:
        """The fault of ``kind`` in force at ``now``, if any."""
        with self.lock:
            for fault in self.faults:
                if fault.kind == kind and fault.active(now):
                    return fault
        return None

    def value_faults(self, point: str, now: float) -> list[Fault]:
        """Value faults in force at ``now`` that touch ``point``."""
        with self.lock:
            return [
                f
                for f in self.faults
                if f.kind in VALUE_FAULTS and f.active(now) and f.applies_to(point)
            ]
