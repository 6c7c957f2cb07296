"""Lots: boundaries, per-point aggregates of a lot, and lot-aggregate checks.

Aggregates are accumulated with shifted sums (``d = x - first value of the lot``;
``sum d`` and ``sum d*d`` added strictly left to right), which is numerically sound for values
such as 74.001 mm and lets the replay path (``numpy.cumsum``, which also adds left to right)
produce bit-identical figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from edge.rules.model import LotRule
from edge.rules.spc import capability

__all__ = ["Aggregate", "LotCheckResult", "LotEvent", "aggregate_of", "check_lot"]


@dataclass(frozen=True, slots=True)
class Aggregate:
    """Statistics of one point's good readings during one lot.

    Attributes:
        count: number of good numeric readings.
        mean: arithmetic mean.
        min: smallest value.
        max: largest value.
        std: sample standard deviation (n - 1), None with fewer than two readings.
        unit: the point's unit ("" when unknown).
    """

    count: int
    mean: float
    min: float
    max: float
    std: float | None
    unit: str = ""


@dataclass(frozen=True, slots=True)
class LotCheckResult:
    """The outcome of one check of a lot rule.

    This is the contract's ``LotCheck``, renamed because :class:`edge.rules.model.LotCheck` is
    the check as written.

    Attributes:
        rule: the lot rule's id.
        point: the point aggregated.
        stat: the statistic (``count mean min max std cp cpk``).
        op: the comparison operator.
        value: the statistic's value, None when undefined (std of one reading, cp without both
            limits, no readings).
        limit: the number compared against.
        passed: whether the check holds (False when ``value`` is None).
        text: the check as written (``"cpk >= 1.33"``).
    """

    rule: str
    point: str
    stat: str
    op: str
    value: float | None
    limit: float
    passed: bool
    text: str = ""


@dataclass(frozen=True, slots=True)
class LotEvent:
    """A lot boundary.

    Attributes:
        kind: ``"lot_start"`` or ``"lot_end"``.
        lot: the lot code.
        ts: time of the lot point's reading that changed the lot.
        aggregates: for ``lot_end``: per point read during the lot (sorted by name); empty for
            ``lot_start``.
        checks: for ``lot_end``: every check of every lot rule, in rule then file order.
    """

    kind: str
    lot: str
    ts: float
    aggregates: Mapping[str, Aggregate]
    checks: tuple[LotCheckResult, ...] = ()

    @property
    def passed(self) -> bool:
        """Whether every check held."""
        return all(c.passed for c in self.checks)


def aggregate_of(
    n: int, first: float, s: float, ss: float, lo: float, hi: float, unit: str
) -> Aggregate:
    """Build an :class:`Aggregate` from shifted sums (``s = sum(x - first)``, ``ss`` of squares)."""
    mean = first + s / n
    std = math.sqrt(max(0.0, (ss - s * s / n) / (n - 1))) if n >= 2 else None
    return Aggregate(count=n, mean=mean, min=lo, max=hi, std=std, unit=unit)


def _stat(rule: LotRule, agg: Aggregate | None, stat: str) -> float | None:
    if stat == "count":
        return float(agg.count if agg is not None else 0)
    if agg is None:
        return None
    if stat in ("mean", "min", "max", "std"):
        value: float | None = getattr(agg, stat)
        return value
    cap = capability(agg.mean, agg.std, rule.low, rule.high)
    return cap.cp if stat == "cp" else cap.cpk


def check_lot(rule: LotRule, agg: Aggregate | None) -> tuple[LotCheckResult, ...]:
    """Evaluate every check of ``rule`` on its point's aggregate (None: no readings in the lot)."""
    out = []
    for check in rule.checks:
        value = _stat(rule, agg, check.stat)
        passed = value is not None and check.holds(value)
        out.append(
            LotCheckResult(
                rule=rule.id,
                point=rule.point,
                stat=check.stat,
                op=check.op,
                value=value,
                limit=check.value,
                passed=passed,
                text=check.text or f"{check.stat} {check.op} {check.value:g}",
            )
        )
    return tuple(out)
