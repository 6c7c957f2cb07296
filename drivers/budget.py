"""The line budget: which device's interval to stretch when a shared line is over-committed.

Pure functions over measured costs (no clock, no I/O), so the rules are property-tested alone.

A device's *cost* is the measured wire time of one of its poll cycles (all its requests, back
to back); its *demand* is cost / interval, the share of the line it asks for. One transaction
at a time runs on the line, so two things go wrong when a device asks too much:

1. **Blocking.** A cycle of ``c`` seconds holds the line while a faster device's deadlines pass:
   a device polled every ``T`` loses up to ``floor(c / T)`` cycles to each such cycle (its
   deadlines missed by a whole interval are skipped). Each device may lose at most
   :data:`LOSS_BUDGET` of its cycles to the others' blocking, shared among its blockers, so a
   blocker ``j`` of ``i`` is polled at most every ``T_i * floor(c_j / T_i) * blockers_i /
   LOSS_BUDGET`` seconds.
2. **Utilisation.** The demands together must leave headroom for jitter, retries and probes of
   dead devices: at most :data:`LINE_BUDGET` of the line. Over it, the largest demands are cut
   to a common level (water-filling: max-min fairness), so the devices asking for the least keep
   all of theirs. A device alone on its bus is never stretched: it takes nothing from anyone.

Either way only the device whose transactions are out of proportion is stretched, by a whole
factor ``m`` of its configured interval (its deadlines stay on the same grid, so it returns to
its interval without a phase jump). Dead devices are left to their breaker; the probes they get
come out of the *spare* capacity (:func:`probe_ceiling`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "LINE_BUDGET",
    "LOSS_BUDGET",
    "MAX_STRETCH",
    "PROBE_SHARE",
    "Load",
    "probe_ceiling",
    "spare_capacity",
    "stretch_factors",
    "utilisation",
]

#: the most of the line the polled devices' demands may take together
LINE_BUDGET = 0.9
#: the most of a device's cycles the other devices' long transactions may cost it
LOSS_BUDGET = 0.05
#: the most of the spare line time probes of dead devices may use
PROBE_SHARE = 0.1
#: the largest stretch (a device is never polled less than once per MAX_STRETCH intervals)
MAX_STRETCH = 1000


@dataclass(frozen=True, slots=True)
class Load:
    """One device as the budget sees it.

    Attributes:
        interval: its configured poll interval, seconds (> 0).
        cost: measured seconds of one poll cycle on the line; None while unknown or while
            the device is dead (its breaker decides about it).
    """

    interval: float
    cost: float | None


def utilisation(loads: Sequence[Load], factors: Sequence[int] | None = None) -> float:
    """The share of the line the live devices' cycles take at the given stretch factors."""
    total = 0.0
    for i, load in enumerate(loads):
        if load.cost is not None:
            total += load.cost / (load.interval * (factors[i] if factors else 1))
    return total


def spare_capacity(loads: Sequence[Load], factors: Sequence[int] | None = None) -> float:
    """The share of the line nobody's cycles use (0..1)."""
    return min(1.0, max(0.0, 1.0 - utilisation(loads, factors)))


def stretch_factors(loads: Sequence[Load]) -> list[int]:
    """The whole factor (>= 1) each device's interval is stretched by; 1 when it is not.

    A device is stretched only for its own blocking or demand (see the module docstring); a
    device whose cost is unknown is never stretched and blocks nobody.
    """
    n = len(loads)
    factors = [1] * n
    live = [i for i in range(n) if loads[i].cost is not None]
    # 1. blocking: j's cycle outlasts i's interval
    for i in live:
        t_i = loads[i].interval
        blockers = [j for j in live if j != i and _lost(loads[j], t_i) > 0]
        for j in blockers:
            period = t_i * _lost(loads[j], t_i) * len(blockers) / LOSS_BUDGET
            factors[j] = max(factors[j], _factor(period, loads[j].interval))
    # 2. utilisation: water-fill the demands down to the line budget. A device alone on the
    # line takes nothing from anyone: stretching it would only cost throughput (its deadlines
    # missed are skipped all the same).
    demand = {j: _cost(loads[j]) / (loads[j].interval * factors[j]) for j in live}
    if len(live) > 1 and sum(demand.values()) > LINE_BUDGET:
        level = _water_level(sorted(demand.values()), LINE_BUDGET)
        for j, d in demand.items():
            if d > level:
                factors[j] = max(factors[j], _factor(_cost(loads[j]) / level, loads[j].interval))
    return factors


def probe_ceiling(spare: float, probe_cost: float, dead: int, base: float, cap: float) -> float:
    """The longest a dead device waits between probes, given the line's spare capacity.

    Each probe costs ``probe_cost`` (a timeout plus the guard); the ``dead`` devices' probes
    together use at most :data:`PROBE_SHARE` of the spare time, so an idle line probes every
    few seconds and a busy one backs off to ``cap``. Never below ``base`` (the poll interval).
    """
    if spare <= 0.0:
        return max(cap, base)
    ceiling = probe_cost * max(1, dead) / (PROBE_SHARE * spare)
    return max(base, min(cap, ceiling))


def _cost(load: Load) -> float:
    assert load.cost is not None
    return load.cost


def _lost(blocker: Load, interval: float) -> int:
    """Cycles of a device polled every ``interval`` one of ``blocker``'s cycles can cost it."""
    return math.floor(_cost(blocker) / interval)


def _factor(period: float, interval: float) -> int:
    """The smallest whole factor making ``interval * factor >= period``."""
    # a relative epsilon: 0.3 / 0.1 must be 3, not 4
    return max(1, min(MAX_STRETCH, math.ceil(period / interval * (1 - 1e-9))))


def _water_level(demands: list[float], budget: float) -> float:
    """The level L with sum(min(d, L)) == budget (demands sorted ascending, sum > budget)."""
    rest = budget
    for k, d in enumerate(demands):
        share = rest / (len(demands) - k)
        if d >= share:
            return share
        rest -= d
    return demands[-1]  # pragma: no cover - unreachable when the sum exceeds the budget
