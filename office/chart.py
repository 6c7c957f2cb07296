"""Control-chart data: individuals and moving-range charts, Nelson hits, histogram, Cp/Cpk.

The statistics use every reading; only what is drawn is thinned. Limits come from
:mod:`edge.rules.spc` (``imr_limits`` learned from the series or its first ``baseline`` points,
or the limits an SPC rule was given) and the run-rule hits from :mod:`edge.rules.nelson`'s
vectorised form: the chart shows what the SPC rules compute, not a second implementation.

Display thinning (*decimation*) keeps, per horizontal bucket of the plot (about one per pixel
column), the bucket's lowest and highest point, plus every point where a Nelson rule fires: a
line through a bucket's minimum and maximum draws the same ink as a line through all its points,
so 100,000 readings read like 2,000 and no spike or signal disappears.

Capability shown beside the histogram is computed as the lot checks compute it
(:func:`edge.rules.lots.check_lot`: overall sample standard deviation), so the figure on the
chart is the one a ``cpk >= 1.33`` check passed or failed on.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from edge.rules.nelson import RULE_NAMES, Zones, mask_of, nelson_flags, rules_in
from edge.rules.spc import Capability, ImrLimits, capability, imr_limits

if TYPE_CHECKING:
    from edge.ledger.query import StoredEntry
    from edge.rules.model import RuleSet

__all__ = [
    "AlarmPeriod",
    "ChartData",
    "Histogram",
    "NelsonHit",
    "Series",
    "SpcSettings",
    "SpecLimits",
    "alarm_periods",
    "chart_data",
    "decimate",
    "spc_settings",
    "spec_limits",
]

#: A point's readings in time order: (RFC 3339 UTC time as stored, value).
Series = Sequence[tuple[str, float]]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class SpecLimits:
    """A point's specification limits (what the customer accepts), either may be open."""

    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class SpcSettings:
    """How a point's ``spc`` rule watches it, so its chart shows what the rule signals.

    Attributes:
        rule: the rule's id.
        nelson: its selected Nelson rules.
        limits: its given limits (``center``/``sigma``), None when it learns them.
        baseline: readings it learns its limits from, None when they are given.
    """

    rule: str
    nelson: tuple[int, ...]
    limits: ImrLimits | None = None
    baseline: int | None = None


@dataclass(frozen=True, slots=True)
class AlarmPeriod:
    """An alarm of a rule from its activation to its clearing (``end`` None: still active)."""

    rule: str
    start: str
    end: str | None
    severity: str = ""
    point: str = ""


@dataclass(frozen=True, slots=True)
class NelsonHit:
    """A point where one or more Nelson rules signal (the window of the rule ends there)."""

    index: int
    ts: str
    value: float
    rules: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Histogram:
    """Bin edges (one more than counts) and the count of readings in each bin."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ChartData:
    """Everything a control chart of one point shows; statistics over every reading.

    Attributes:
        count: readings in the series (all of them, not the displayed ones).
        limits: I-MR limits, None with fewer than two readings or a constant series.
        limits_source: how the limits were obtained (``learned from 120 readings``, ``given``).
        std: overall sample standard deviation (n - 1), None below two readings.
        capability: Cp/Cpk against ``spec`` with ``std`` (as the lot checks compute them).
        hits: every point where a selected Nelson rule signals.
        shown: indexes of the readings drawn on the individuals chart (decimated, sorted).
        mr_shown: indexes ``i`` of the moving ranges ``|x[i] - x[i-1]|`` drawn (decimated).
        alarms: alarm periods overlapping the series, with ``first``/``last`` as bounds.
    """

    point: str
    unit: str
    count: int
    first: str
    last: str
    mean: float
    std: float | None
    minimum: float
    maximum: float
    limits: ImrLimits | None
    limits_source: str
    spec: SpecLimits
    capability: Capability
    nelson: tuple[int, ...]
    hits: tuple[NelsonHit, ...]
    timestamps: tuple[str, ...]
    values: FloatArray
    shown: IntArray
    mr_shown: IntArray
    alarms: tuple[AlarmPeriod, ...]
    alarm_spans: tuple[tuple[int, int], ...]
    histogram: Histogram

    def moving_range(self, index: int) -> float:
        """``|x[index] - x[index - 1]|`` (index >= 1)."""
        return abs(float(self.values[index]) - float(self.values[index - 1]))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping of the chart (full-precision numbers, displayed points only)."""
        lim = self.limits
        cap = self.capability
        x = self.values
        return {
            "point": self.point,
            "unit": self.unit,
            "count": self.count,
            "first": self.first,
            "last": self.last,
            "mean": self.mean,
            "std": self.std,
            "min": self.minimum,
            "max": self.maximum,
            "limits": None
            if lim is None
            else {
                "center": lim.center,
                "sigma": lim.sigma,
                "ucl": lim.ucl,
                "lcl": lim.lcl,
                "mr_bar": lim.mr_bar,
                "mr_ucl": lim.mr_ucl,
                "source": self.limits_source,
            },
            "spec": {"low": self.spec.low, "high": self.spec.high},
            "capability": {"cp": cap.cp, "cpk": cap.cpk, "cpu": cap.cpu, "cpl": cap.cpl},
            "nelson": list(self.nelson),
            "hits": [
                {"index": h.index, "ts": h.ts, "value": h.value, "rules": list(h.rules)}
                for h in self.hits
            ],
            "points": [[int(i), self.timestamps[i], float(x[i])] for i in self.shown],
            "moving_ranges": [[int(i), self.moving_range(int(i))] for i in self.mr_shown],
            "alarms": [
                {"rule": a.rule, "start": a.start, "end": a.end, "severity": a.severity}
                for a in self.alarms
            ],
            "histogram": {
                "edges": list(self.histogram.edges),
                "counts": list(self.histogram.counts),
            },
        }


def decimate(values: FloatArray, buckets: int, keep: Iterable[int] = ()) -> IntArray:
    """Indexes of the lowest and highest value in each of ``buckets`` runs, plus ``keep``.

    With no more values than ``2 * buckets`` every index is kept. The result is sorted and
    has no duplicates; the first and last index are always in it.
    """
    n = int(values.size)
    kept = np.fromiter(keep, dtype=np.int64)
    if n <= 2 * buckets:
        return np.arange(n, dtype=np.int64)
    starts = (np.arange(buckets, dtype=np.int64) * n) // buckets
    lows = np.empty(buckets, dtype=np.int64)
    highs = np.empty(buckets, dtype=np.int64)
    bounds = np.append(starts, n)
    # one pass per bucket over a view: argmin/argmax have no reduceat form
    for b in range(buckets):
        chunk = values[bounds[b] : bounds[b + 1]]
        lows[b] = bounds[b] + int(np.argmin(chunk))
        highs[b] = bounds[b] + int(np.argmax(chunk))
    out = np.concatenate((lows, highs, kept, np.array([0, n - 1], dtype=np.int64)))
    return np.unique(out)


def _bins(n: int, requested: int | None) -> int:
    if requested is not None:
        return max(1, requested)
    return max(5, min(60, math.ceil(math.sqrt(n))))


def _histogram(x: FloatArray, bins: int, spec: SpecLimits) -> Histogram:
    lo, hi = float(x.min()), float(x.max())
    if lo == hi:  # one value: one bin around it
        pad = abs(lo) * 1e-6 or 1e-6
        lo, hi = lo - pad, hi + pad
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    return Histogram(tuple(float(e) for e in edges), tuple(int(c) for c in counts))


def _index_at(timestamps: Sequence[str], ts: str) -> int:
    """Index of the first reading at or after ``ts`` (len when none)."""
    return bisect.bisect_left(timestamps, ts)


def chart_data(
    series: Series,
    *,
    point: str = "",
    unit: str = "",
    spec: SpecLimits | None = None,
    limits: ImrLimits | None = None,
    baseline: int | None = None,
    nelson: Iterable[int] = range(1, 9),
    alarms: Sequence[AlarmPeriod] = (),
    width: int = 1000,
    bins: int | None = None,
    rule: str = "",
) -> ChartData:
    """The control chart of ``series`` (numbers only; draw it with :func:`chart_svg`).

    Args:
        series: (ts, value) in time order; at least one reading.
        point: the point's name (labels only).
        unit: the point's unit (labels only).
        spec: specification limits (histogram lines and Cp/Cpk).
        limits: the limits to draw (an SPC rule's given centre and sigma); None: learned.
        baseline: learn the limits from the first ``baseline`` readings only and mark signals
            from the reading after them, as an SPC rule with ``baseline: N`` does; None: learn
            from the whole series and mark signals everywhere.
        nelson: the run rules to mark (1..8).
        alarms: alarm periods to shade (those not overlapping the series are dropped).
        width: plot width in pixels: the display keeps about two points per pixel column.
        bins: histogram bins (default: the square root of the count, 5..60).
        rule: the SPC rule whose limits and run rules these are (named on the chart).

    Raises:
        ValueError: an empty series, or a rule number outside 1..8.
    """
    if not series:
        raise ValueError("no readings to chart")
    spec = spec or SpecLimits()
    select = mask_of(nelson)
    timestamps = tuple(ts for ts, _ in series)
    x = np.fromiter((v for _, v in series), dtype=np.float64, count=len(series))
    n = int(x.size)
    source = "given"
    start = 0  # first reading the run rules evaluate
    if limits is None:
        learn = (x if baseline is None else x[:baseline]).tolist()
        try:
            limits = imr_limits(learn)
            source = f"learned from {'the first ' if baseline else ''}{len(learn)} readings"
        except ValueError as exc:
            limits, source = None, str(exc)
        # an SPC rule with a baseline evaluates its run rules from the reading after it, its
        # runs counted from there: the chart marks what the rule would have signalled
        start = min(baseline or 0, n)
    if rule and limits is not None:
        source += f" (rule {rule})"
    hits: list[NelsonHit] = []
    if limits is not None:
        flags = nelson_flags(x[start:], Zones.of(limits.center, limits.sigma), select)
        for j in np.flatnonzero(flags):
            i = start + int(j)
            hits.append(NelsonHit(i, timestamps[i], float(x[i]), rules_in(int(flags[j]))))
    mean = math.fsum(x.tolist()) / n  # fsum, as the limits' centre: the two agree exactly
    std = float(np.std(x, ddof=1)) if n >= 2 else None
    buckets = max(1, width // 2)
    shown = decimate(x, buckets, (h.index for h in hits))
    mr = np.abs(np.diff(x))
    mr_shown = decimate(mr, buckets) + 1 if n >= 2 else np.zeros(0, dtype=np.int64)
    first, last = timestamps[0], timestamps[-1]
    kept_alarms: list[AlarmPeriod] = []
    spans: list[tuple[int, int]] = []
    for alarm in alarms:
        end = alarm.end or "\uffff"
        if alarm.start > last or end < first:
            continue
        kept_alarms.append(alarm)
        lo = min(_index_at(timestamps, alarm.start), n - 1)
        hi = min(_index_at(timestamps, end), n - 1)
        spans.append((lo, max(lo, hi)))
    return ChartData(
        point=point,
        unit=unit,
        count=n,
        first=first,
        last=last,
        mean=mean,
        std=std,
        minimum=float(x.min()),
        maximum=float(x.max()),
        limits=limits,
        limits_source=source,
        spec=spec,
        capability=capability(mean, std, spec.low, spec.high),
        nelson=rules_in(select),
        hits=tuple(hits),
        timestamps=timestamps,
        values=x,
        shown=shown,
        mr_shown=mr_shown,
        alarms=tuple(kept_alarms),
        alarm_spans=tuple(spans),
        histogram=_histogram(x, _bins(n, bins), spec),
    )


def alarm_periods(entries: Iterable[StoredEntry]) -> list[AlarmPeriod]:
    """Alarm periods from ``alarm`` entries: each activation to the next clearing of its rule.

    Entries of other types are ignored; an activation never cleared stays open (``end`` None).
    """
    periods: list[AlarmPeriod] = []
    open_at: dict[tuple[str, str], int] = {}
    for entry in sorted((e for e in entries if e.type == "alarm"), key=lambda e: (e.ts, e.seq)):
        body = entry.body
        key = (entry.feed, str(body.get("rule", "")))
        event = body.get("event")
        if event == "activated" and key not in open_at:
            open_at[key] = len(periods)
            periods.append(
                AlarmPeriod(
                    key[1],
                    entry.ts,
                    None,
                    str(body.get("severity", "")),
                    str(body.get("point", "")),
                )
            )
        elif event == "cleared" and key in open_at:
            i = open_at.pop(key)
            p = periods[i]
            periods[i] = AlarmPeriod(p.rule, p.start, entry.ts, p.severity, p.point)
    return periods


def spec_limits(ruleset: RuleSet) -> dict[str, SpecLimits]:
    """Per point, its specification limits from the rule set.

    A ``lot`` rule's ``low``/``high`` (the limits its Cp/Cpk checks use) win; else a ``limit``
    rule's.
    """
    out: dict[str, SpecLimits] = {}
    for kind in ("limit", "lot"):  # lot rules last: they overwrite
        for rule in ruleset.rules:
            if rule.kind == kind:
                low = getattr(rule, "low", None)
                high = getattr(rule, "high", None)
                if low is not None or high is not None:
                    out[rule.point] = SpecLimits(low, high)
    return out


def spc_settings(ruleset: RuleSet) -> dict[str, SpcSettings]:
    """Per point, its first ``spc`` rule's Nelson rules and limits (given or baseline)."""
    from edge.rules.model import SpcRule
    from edge.rules.spc import imr_given

    out: dict[str, SpcSettings] = {}
    for rule in ruleset.rules:
        if isinstance(rule, SpcRule) and rule.point not in out:
            given = None
            if rule.center is not None and rule.sigma is not None:
                given = imr_given(rule.center, rule.sigma)
            out[rule.point] = SpcSettings(
                rule.id, tuple(rule.nelson), given, None if given else rule.baseline or None
            )
    return out


def rule_title(rule: int) -> str:
    """``rule 2: 9 points on one side of the centre line``."""
    return f"rule {rule}: {RULE_NAMES[rule]}"
