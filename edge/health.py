"""The running node's health as metrics: one model for ``/metrics`` and for ``edge status``.

A :class:`HealthRegistry` holds *sources*: callables that return :class:`Metric` values read
from the counters the parts of the node already keep (the bus pollers' :class:`BusStats`, the
ledger writer, the alert publisher, the control server) -- no second bookkeeping. The node
registers its own (:class:`NodeHealth`); another subsystem adds its collector with
:meth:`HealthRegistry.add` (the outbox its depth and oldest age, sync its lag per feed), and it
shows up on ``/metrics`` (:mod:`edge.metrics`) and in ``edge status`` without further wiring.

This module imports no Prometheus code: a node without ``[metrics]`` does not load it, and
``edge status`` reads the same metrics as JSON through the control socket.
"""

from __future__ import annotations

import logging
import operator
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from edge.log import event
from edge.readings import Quality, Reading

__all__ = ["HealthRegistry", "Metric", "NodeHealth", "RateWindow", "Sample", "Source"]

_POINT_QUALITY = operator.attrgetter("point", "quality")

Kind = Literal["counter", "gauge"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of a metric, with its labels."""

    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric family. Counter names end in ``_total`` (Prometheus's convention)."""

    name: str
    kind: Kind
    help: str
    samples: tuple[Sample, ...]

    def json(self) -> dict[str, Any]:
        """As JSON-ready data (the control socket's ``health`` answer)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "help": self.help,
            "samples": [{"labels": dict(s.labels), "value": s.value} for s in self.samples],
        }


def metric(name: str, kind: Kind, help: str, *samples: Sample) -> Metric:
    """Shorthand for a :class:`Metric` built from samples."""
    return Metric(name, kind, help, tuple(samples))


#: A collector: the metrics it reads now (``now``: Unix time of the scrape).
Source = Callable[[float], Iterable[Metric]]


class HealthRegistry:
    """The sources the node's health is read from, by name (the hook for other subsystems)."""

    def __init__(self) -> None:
        self._sources: dict[str, Source] = {}
        self.failures = 0  #: collections in which a source raised (it is skipped, logged)

    def add(self, name: str, source: Source) -> None:
        """Register (or replace) the source ``name``."""
        self._sources[name] = source

    def remove(self, name: str) -> None:
        """Forget the source ``name`` (no error when it is not there)."""
        self._sources.pop(name, None)

    @property
    def names(self) -> tuple[str, ...]:
        """The registered sources, in registration order."""
        return tuple(self._sources)

    def collect(self, now: float | None = None) -> list[Metric]:
        """Every source's metrics; a source that fails is logged and left out of this answer."""
        at = time.time() if now is None else now
        out: list[Metric] = []
        for name, source in list(self._sources.items()):
            try:
                out.extend(source(at))
            except Exception as exc:  # one broken collector must not blind the others
                self.failures += 1
                event("health.source_failed", logging.WARNING, source=name, error=repr(exc))
        out.append(
            metric(
                "edge_health_source_failures_total",
                "counter",
                "Collections in which a health source raised and was left out.",
                Sample(float(self.failures)),
            )
        )
        return out


class RateWindow:
    """A per-second rate of monotonic counters over the last ``span`` seconds (or since start).

    Sampled when read, so it needs no task: the base is the oldest sample not older than
    ``span`` (kept until a newer one is old enough), so the rate covers between ``span`` and
    the time since the previous read -- a minute for a scrape every 15 s.
    """

    def __init__(self, span: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.span = span
        self._clock = clock
        self._samples: deque[tuple[float, Mapping[str, int]]] = deque()

    def start(self, counts: Mapping[str, int]) -> None:
        """The counters at the start (the first base)."""
        self._samples.append((self._clock(), dict(counts)))

    def rates(self, counts: Mapping[str, int]) -> dict[str, float]:
        """Per key, (count now - count at the base) / seconds since the base."""
        now = self._clock()
        samples = self._samples
        while len(samples) > 1 and samples[1][0] <= now - self.span:
            samples.popleft()
        base_t, base = samples[0] if samples else (now, {})
        samples.append((now, dict(counts)))
        dt = now - base_t
        return {k: (v - base.get(k, 0)) / dt if dt > 0 else 0.0 for k, v in counts.items()}


class NodeHealth:
    """The node's own counters as metrics: acquisition, queues, ledger, alerts, control.

    Reading counts per device and quality are the only counters kept here (one update per
    batch of readings, :meth:`observe`); everything else is read from the objects that
    already count it.
    """

    def __init__(self, node_id: str, point_device: Mapping[str, str]) -> None:
        self.node_id = node_id
        self.started = time.time()
        self._device_of = dict(point_device)
        self.devices = tuple(sorted(set(point_device.values())))
        #: (point, quality) -> readings; by device when read (:attr:`readings`)
        self._counts: Counter[tuple[str, Quality]] = Counter()
        self._rates = RateWindow()
        self._rates.start({d: 0 for d in set(point_device.values())})

    def observe(self, readings: Sequence[Reading]) -> None:
        """Count a batch of readings by point and quality (a C loop: ~0.1 us a reading)."""
        self._counts.update(map(_POINT_QUALITY, readings))

    @property
    def readings(self) -> Counter[tuple[str, str]]:
        """Readings so far by (device, quality)."""
        out: Counter[tuple[str, str]] = Counter()
        dev = self._device_of
        for (point, quality), n in self._counts.items():
            out[(dev.get(point, "?"), quality.value)] += n
        return out

    def per_device(self) -> dict[str, int]:
        """Readings so far per device (every quality)."""
        out: dict[str, int] = dict.fromkeys(self.devices, 0)
        for (device, _), n in self.readings.items():
            out[device] = out.get(device, 0) + n
        return out

    def rates(self) -> dict[str, float]:
        """Readings per second per device, over about the last minute (see :class:`RateWindow`)."""
        return self._rates.rates(self.per_device())
