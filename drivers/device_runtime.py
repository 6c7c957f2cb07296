"""A device's runtime on one bus: its read plan, deadline grid, breaker, line budget and points.

:class:`DeviceRuntime` is what the bus scheduler (:mod:`edge.drivers.scheduler`) keeps per
device: the deadline grid in integer microseconds (``anchor + slot * interval``), the
earliest-deadline-first sort key, and the counters the device's stats are made of. Moved out of
the scheduler module, which re-exports it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from edge.config import DeviceConfig, PointConfig
from edge.drivers.codec import point_decoder
from edge.drivers.health import Breaker, PointState
from edge.drivers.planner import ReadRequest, plan_reads
from edge.readings import Value

__all__ = ["DeviceRuntime"]

#: deadlines are integer microseconds
_US = 1_000_000


@dataclass(slots=True)
class DeviceRuntime:
    """A device's plan, deadline grid, breaker, budget and point states."""

    device: DeviceConfig
    points: list[PointState]
    plan: list[ReadRequest]
    breaker: Breaker
    order: int = 0  #: position in the config (the tie order after priority)
    anchor: int = 0  #: start of the deadline grid, microseconds
    slot: int = 0  #: index of the next deadline on the grid
    stretch: int = 1  #: configured intervals per cycle (line budget)
    polls: int = 0
    failed_polls: int = 0
    skipped: int = 0
    deferred: int = 0
    late_replies: int = 0
    last_lateness: float = 0.0
    frame_errors: int = 0
    stretches: int = 0
    cost: float | None = None  #: measured seconds of one answered cycle (moving average)
    probe_at: int | None = None  #: when its due probe goes (µs), set when it falls due
    by_name: dict[str, PointState] = field(default_factory=dict)
    #: per point name, its decoder (:func:`~edge.drivers.codec.point_decoder`)
    decoders: dict[str, Callable[[Sequence[int]], Value]] = field(default_factory=dict)

    @classmethod
    def build(
        cls, device: DeviceConfig, points: Sequence[PointConfig], *, plan: bool = True
    ) -> DeviceRuntime:
        """Plan the device's reads (``plan=False``: a line device, which has no registers)."""
        states = [PointState(p, device.stale_after) for p in points]
        breaker = Breaker(base=device.poll, cap=max(device.backoff_cap, device.poll))
        rt = cls(device, states, plan_reads(device, points) if plan else [], breaker)
        rt.by_name = {s.point.name: s for s in states}
        rt.decoders = {p.name: point_decoder(p) for p in points}
        return rt

    @property
    def interval_us(self) -> int:
        """The configured interval in microseconds."""
        return max(1, round(self.device.poll * _US))

    @property
    def deadline_us(self) -> int:
        """The next deadline, microseconds on the scheduler's clock."""
        return self.anchor + self.slot * self.interval_us

    @property
    def deadline(self) -> float:
        """The next deadline, seconds on the scheduler's clock."""
        return self.deadline_us / _US

    def key(self) -> tuple[int, int, int, int]:
        """Earliest deadline first; at equal deadlines higher priority, then config order.

        A dead device's probe is spare-capacity work: it goes after the live devices due at
        the same instant, at ``probe_at`` (see :meth:`BusScheduler._probe_slot`).
        """
        if self.probe_at is not None:
            return (self.probe_at, 1, -self.device.priority, self.order)
        return (self.deadline_us, 0, -self.device.priority, self.order)
