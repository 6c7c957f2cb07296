"""A point's long-term trend from its summaries: means, min/max band, X-bar/S control limits.

Raw readings are kept 30 days; the per-hour summaries (:mod:`edge.ledger.readings_summary`) are
kept for ever and the per-minute ones 90 days. Each summary is a subgroup: ``n`` readings with
their mean, sample standard deviation, min and max. So a chart over months is an X-bar/S chart
with one subgroup per hour (per minute for short spans), subgroups of unequal size. Sigma is
estimated from the spread within subgroups, pooled, as Minitab's X-bar/S chart does by default
and as Montgomery (*Introduction to Statistical Quality Control*, 6.3.2, variable sample size)
pools it, over the subgroups shown with ``n_i >= 2``:

* grand mean, weighted by size: ``xbarbar = sum(n_i * xbar_i) / sum(n_i)`` (every subgroup);
* pooled standard deviation ``sp = sqrt(sum((n_i - 1) * s_i**2) / d)``, ``d = sum(n_i - 1)``,
  made unbiased: ``sigma = sp / c4(d + 1)``;
* ``c4(n) = sqrt(2 / (n - 1)) * Gamma(n / 2) / Gamma((n - 1) / 2)`` (by ``lgamma``: n is 3600
  for a point read every second, d + 1 millions);
* X-bar chart of subgroup i: centre ``xbarbar``, limits ``xbarbar +- 3 * sigma / sqrt(n_i)``;
* S chart of subgroup i: centre ``c4(n_i) * sigma``, limits
  ``c4(n_i) * sigma +- 3 * sigma * sqrt(1 - c4(n_i)**2)`` (the lower one at least 0).

For equal sizes these are the tabled ``A3``, ``B3``, ``B4`` limits with ``sigma`` in place of
``sbar / c4(n)``; checked against Montgomery's piston rings (``shared/vectors/spc``) and against
``statistics`` over the raw readings of the same hours (``tests/office/test_trend.py``).

A subgroup of one reading has no spread: it is drawn, without limits. Limits are phase-I limits
of the span shown (computed from the same subgroups they judge), as on the lot charts.

What the limits mean (said in the quality manager's guide): they are set by the spread *within*
an hour. With thousands of readings an hour, ``3 sigma / sqrt(n)`` is tight, so
any drift *between* hours (a season, a shift, a recipe) shows as points beyond them. That is the
X-bar chart's question -- is the hour-to-hour variation more than the within-hour noise
explains? -- not an alarm threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.ledger.readings_read import Summary

__all__ = ["TrendData", "c4", "trend_data"]


def c4(n: int) -> float:
    """The bias of the sample standard deviation of ``n`` normal readings (``E[s] = c4 sigma``)."""
    if n < 2:
        raise ValueError("c4 needs n >= 2")
    return math.sqrt(2.0 / (n - 1)) * math.exp(math.lgamma(n / 2) - math.lgamma((n - 1) / 2))


@dataclass(frozen=True, slots=True)
class TrendData:
    """One point's subgroups (one per summary, in time order) and their limits.

    The limit tuples hold None for a subgroup of one reading. ``beyond`` are the subgroups whose
    mean is outside its X-bar limits, ``s_beyond`` those whose standard deviation is outside
    its S limits.
    """

    point: str
    seconds: int
    starts: tuple[str, ...]
    epochs: tuple[float, ...]
    counts: tuple[int, ...]
    means: tuple[float, ...]
    mins: tuple[float, ...]
    maxs: tuple[float, ...]
    stds: tuple[float, ...]
    grand_mean: float
    sigma: float | None  #: the pooled within-subgroup sigma, unbiased; None: no spread known
    ucl: tuple[float | None, ...]
    lcl: tuple[float | None, ...]
    s_center: tuple[float | None, ...]
    s_ucl: tuple[float | None, ...]
    s_lcl: tuple[float | None, ...]
    beyond: tuple[int, ...]
    s_beyond: tuple[int, ...]

    @property
    def readings(self) -> int:
        """Readings the subgroups summarise."""
        return sum(self.counts)

    def _subgroup(self, i: int) -> dict[str, Any]:
        return {
            "start": self.starts[i],
            "count": self.counts[i],
            "mean": self.means[i],
            "min": self.mins[i],
            "max": self.maxs[i],
            "std": self.stds[i],
            "ucl": self.ucl[i],
            "lcl": self.lcl[i],
            "s_center": self.s_center[i],
            "s_ucl": self.s_ucl[i],
            "s_lcl": self.s_lcl[i],
        }

    def to_json(self) -> dict[str, Any]:
        """The chart's data and limits as plain JSON values (``/trend/json``)."""
        return {
            "point": self.point,
            "seconds": self.seconds,
            "grand_mean": self.grand_mean,
            "sigma": self.sigma,
            "subgroups": [self._subgroup(i) for i in range(len(self.starts))],
            "beyond": [self.starts[i] for i in self.beyond],
            "s_beyond": [self.starts[i] for i in self.s_beyond],
        }


def trend_data(summaries: Sequence[Summary]) -> TrendData | None:
    """The trend of one point's summaries (all of one period, in time order); None when empty."""
    if not summaries:
        return None
    from edge.ledger.readings_codec import parse_micros

    counts = tuple(s.count for s in summaries)
    means = tuple(s.mean for s in summaries)
    stds = tuple(s.std for s in summaries)
    total = sum(counts)
    grand = math.fsum(n * m for n, m in zip(counts, means, strict=True)) / total
    dof = sum(n - 1 for n in counts if n >= 2)
    sigma = None
    if dof:
        pooled = math.fsum((n - 1) * s * s for n, s in zip(counts, stds, strict=True) if n >= 2)
        sigma = math.sqrt(pooled / dof) / c4(dof + 1)
    ucl: list[float | None] = []
    lcl: list[float | None] = []
    s_center: list[float | None] = []
    s_ucl: list[float | None] = []
    s_lcl: list[float | None] = []
    factors: dict[int, tuple[float, float]] = {}  # n -> (c4, sqrt(1 - c4**2)): few distinct n
    for n in counts:
        if sigma is None or n < 2:
            for out in (ucl, lcl, s_center, s_ucl, s_lcl):
                out.append(None)
            continue
        f = factors.get(n)
        if f is None:
            c = c4(n)
            f = factors[n] = (c, math.sqrt(max(0.0, 1.0 - c * c)))
        half = 3.0 * sigma / math.sqrt(n)
        ucl.append(grand + half)
        lcl.append(grand - half)
        s_center.append(f[0] * sigma)
        s_ucl.append((f[0] + 3.0 * f[1]) * sigma)
        s_lcl.append(max(0.0, (f[0] - 3.0 * f[1]) * sigma))
    beyond = tuple(
        i for i, m in enumerate(means)
        if (u := ucl[i]) is not None and (lo := lcl[i]) is not None and (m > u or m < lo)
    )  # fmt: skip
    s_beyond = tuple(
        i for i, s in enumerate(stds)
        if (u := s_ucl[i]) is not None and (lo := s_lcl[i]) is not None and (s > u or s < lo)
    )  # fmt: skip
    return TrendData(
        point=summaries[0].point,
        seconds=summaries[0].seconds,
        starts=tuple(s.start for s in summaries),
        epochs=tuple(parse_micros(s.start) / 1e6 for s in summaries),
        counts=counts,
        means=means,
        mins=tuple(s.min for s in summaries),
        maxs=tuple(s.max for s in summaries),
        stds=stds,
        grand_mean=grand,
        sigma=sigma,
        ucl=tuple(ucl),
        lcl=tuple(lcl),
        s_center=tuple(s_center),
        s_ucl=tuple(s_ucl),
        s_lcl=tuple(s_lcl),
        beyond=beyond,
        s_beyond=s_beyond,
    )
