"""A lot report's content, gathered once for both renderings (HTML and PDF).

:func:`build_lot_report` turns a :class:`~edge.ledger.trace.LotTrace` (what the ledger says
about the lot), the lot's readings and what the caller knows (spec limits, point resolutions,
trust-list names, a verification report) into a :class:`LotReport`: rows of text already
formatted for people, plus one :class:`~edge.office.chart.ChartData` per charted point. The
renderers only lay it out, so the HTML page, the PDF and the web view say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING

from edge.ledger.query import summarize
from edge.office.chart import (
    ChartData,
    Series,
    SpcSettings,
    SpecLimits,
    alarm_periods,
    chart_data,
)
from edge.office.layout import local_time
from edge.office.numbers import fmt_against, fmt_number, summary_numbers

if TYPE_CHECKING:
    from edge.ledger.trace import LotTrace
    from edge.ledger.verify_report import Report

__all__ = ["Chart", "CheckRow", "FeedRow", "LotReport", "build_lot_report"]


@dataclass(frozen=True, slots=True)
class CheckRow:
    """One lot-end check at one station: what was required, what was measured, the verdict."""

    station: str
    rule: str
    point: str
    check: str
    statistic: str
    value: str
    limit: str
    passed: bool


@dataclass(frozen=True, slots=True)
class FeedRow:
    """A feed the lot touches: its full key, its trust-list name, its verification result."""

    feed: str
    name: str
    station: str
    verdict: str
    ok: bool | None  #: None: not verified


@dataclass(frozen=True, slots=True)
class Chart:
    """A charted point and the resolution its numbers are shown to."""

    point: str
    data: ChartData
    resolution: float | None


@dataclass(frozen=True, slots=True)
class LotReport:
    """Everything a lot report shows, formatted for people (see the module docstring)."""

    lot: str
    generated: str
    timezone: str
    first: str
    last: str
    verdict: str  #: ``pass``, ``fail`` or ``no checks``
    stations: tuple[dict[str, str], ...]
    checks: tuple[CheckRow, ...]
    aggregates: tuple[dict[str, str], ...]
    rule_sets: tuple[dict[str, str], ...]
    timeline: tuple[dict[str, str], ...]
    feeds: tuple[FeedRow, ...]
    verification: str
    charts: tuple[Chart, ...] = ()
    #: why points the lot aggregates have no chart ("" when every one has)
    chart_note: str = ""
    tz: tzinfo | None = field(default=None, compare=False)

    @property
    def failed(self) -> list[CheckRow]:
        """The checks that failed."""
        return [c for c in self.checks if not c.passed]


def _time(ts: str | None, tz: tzinfo | None) -> str:
    return local_time(ts, tz) if ts else ""


def _check_rows(trace: LotTrace, resolutions: Mapping[str, float]) -> list[CheckRow]:
    rows = []
    for visit in trace.visits:
        for c in visit.checks:
            stat = str(c.get("statistic", ""))
            point = str(c.get("point", ""))
            res = None if stat in ("count", "cp", "cpk") else resolutions.get(point)
            cap = 0.01 if stat in ("cp", "cpk") else res
            of_stat = stat in ("mean", "std")  # one decimal beyond a reading
            value, limit = c.get("value"), c.get("limit")
            rows.append(
                CheckRow(
                    station=visit.name or visit.station.name,
                    rule=str(c.get("rule", "")),
                    point=point,
                    check=str(c.get("check") or stat),
                    statistic=stat,
                    # the pair with the same digits, never printed alike unless equal
                    value=fmt_against(value, limit, cap, stat=of_stat),
                    limit=fmt_against(limit, value, cap, stat=of_stat),
                    passed=c.get("passed") is True,
                )
            )
    return rows


def _feed_rows(
    trace: LotTrace, names: Mapping[str, str], verification: Report | None
) -> tuple[list[FeedRow], str]:
    feeds = sorted({e.entry.feed for e in trace.events} | {r.entry.feed for r in trace.rule_sets})
    by_feed = {f.feed: f for f in verification.feeds} if verification is not None else {}
    rows = []
    for feed in feeds:
        station = trace.stations.at(feed).name
        found = by_feed.get(feed)
        if verification is None:
            verdict, ok = "not verified", None
        elif found is None:
            verdict, ok = "not in the verified database", False
        elif found.ok:
            verdict = f"verified: {found.entries} entries, {found.signed} signed by checkpoints"
            ok = True
        else:
            first = found.problems[0]
            verdict = f"{len(found.problems)} problem(s), first at seq {first.seq}: {first.kind}"
            ok = False
        rows.append(FeedRow(feed, names.get(feed, ""), station, verdict, ok))
    if verification is None:
        summary = "not verified (run edge ledger verify)"
    elif all(r.ok for r in rows):
        summary = f"every feed of the lot verifies ({len(rows)} feed(s))"
    else:
        bad = sum(1 for r in rows if not r.ok)
        summary = f"{bad} of {len(rows)} feed(s) of the lot do not verify"
    return rows, summary


def build_lot_report(
    trace: LotTrace,
    *,
    now: datetime,
    series: Mapping[str, Series] | None = None,
    spec: Mapping[str, SpecLimits] | None = None,
    resolutions: Mapping[str, float] | None = None,
    feed_names: Mapping[str, str] | None = None,
    verification: Report | None = None,
    spc: Mapping[str, SpcSettings] | None = None,
    tz: tzinfo | None = None,
    chart_width: int = 1000,
) -> LotReport:
    """Gather the report of ``trace``'s lot (times shown in ``tz``, None: UTC).

    Args:
        trace: the lot's trace (non-empty).
        now: when the report is made (printed on it).
        series: per point, the readings to chart (:func:`edge.office.sources.lot_series`).
        spec: per point, specification limits (:func:`edge.office.chart.spec_limits`).
        resolutions: per point, the step of its readings (:func:`point_resolutions`).
        feed_names: feed key -> trust-list name.
        verification: ``edge ledger verify``'s report of the database, None: not verified.
        spc: per point, its SPC rule's settings (:func:`edge.office.chart.spc_settings`): the
            chart uses its Nelson rules and limits; points without one get all 8 rules and
            limits learned from the lot.
        tz: the time zone times are shown in (the site's); None: UTC.
        chart_width: pixels of the charts (decimation follows it).
    """
    series = series or {}
    spec = spec or {}
    resolutions = resolutions or {}
    names = feed_names or {}
    span = trace.span or ("", "")
    checks = _check_rows(trace, resolutions)
    verdict = (
        "no checks" if not checks else ("fail" if any(not c.passed for c in checks) else "pass")
    )
    stations = []
    for visit in trace.visits:
        passed = sum(1 for c in visit.checks if c.get("passed") is True)
        stations.append(
            {
                "station": visit.name or "-",
                "node": visit.station.name,
                "feed": names.get(visit.station.feed) or visit.station.feed,
                "start": _time(visit.start.ts, tz) if visit.start else visit.start_note or "-",
                "end": _time(visit.end.ts, tz) if visit.end else visit.end_note or "-",
                "start_utc": visit.start.ts if visit.start else "",
                "end_utc": visit.end.ts if visit.end else "",
                "checks": f"{passed}/{len(visit.checks)} passed" if visit.checks else "-",
            }
        )
    aggregates = []
    for visit in trace.visits:
        for point, agg in sorted(visit.aggregates.items()):
            res = resolutions.get(point)
            row = {"station": visit.name or visit.station.name, "point": point}
            row["count"] = fmt_number(agg.get("count"))
            for key in ("mean", "std"):
                row[key] = fmt_number(agg.get(key), res, stat=True)
            for key in ("min", "max"):
                row[key] = fmt_number(agg.get(key), res)
            row["unit"] = str(agg.get("unit", ""))
            aggregates.append(row)
    rule_sets = [
        {
            "node": r.station.name,
            "since": _time(r.entry.ts, tz),
            "since_utc": r.entry.ts,
            "hash": r.hash,
            "rules": ", ".join(str(x) for x in r.entry.body.get("rules") or ()),
            "entry": r.entry.id,
        }
        for r in trace.rule_sets
    ]
    timeline = []
    number = summary_numbers(resolutions)
    for event in trace.events:
        extra = []
        if event.corrected_by:
            extra.append("corrected by " + ", ".join(c[:12] for c in event.corrected_by))
        if event.refers_to:
            extra.append(f"on activation {event.refers_to[:12]}")
        if event.note:
            extra.append(event.note)
        timeline.append(
            {
                "ts": _time(event.entry.ts, tz),
                "ts_utc": event.entry.ts,
                "node": event.station.name,
                "type": event.entry.type,
                "summary": summarize(event.entry, number)
                + (f" ({'; '.join(extra)})" if extra else ""),
                "entry": event.entry.id,
            }
        )
    feeds, verification_text = _feed_rows(trace, names, verification)
    periods = alarm_periods(e.entry for e in trace.events)
    units = {p: str(a.get("unit", "")) for v in trace.visits for p, a in v.aggregates.items()}
    charts = []
    for point, readings in sorted(series.items()):
        if not readings:
            continue
        rule = (spc or {}).get(point)
        data = chart_data(
            readings,
            point=point,
            unit=units.get(point, ""),
            spec=spec.get(point),
            limits=rule.limits if rule else None,
            baseline=rule.baseline if rule else None,
            nelson=rule.nelson if rule else range(1, 9),
            alarms=[a for a in periods if a.point == point],
            width=chart_width,
            rule=rule.rule if rule else "",
        )
        charts.append(Chart(point, data, resolutions.get(point)))
    missing = sorted({p for v in trace.visits for p in v.aggregates} - {c.point for c in charts})
    note = ""
    if missing:
        note = (
            f"No stored readings of {', '.join(missing)} in this lot's time in this database: raw "
            "readings stay on the gateway that took them and are pruned after their retention."
        )
    return LotReport(
        lot=trace.lot,
        generated=now.isoformat(timespec="seconds"),
        timezone=str(tz) if tz is not None else "UTC",
        first=_time(span[0], tz),
        last=_time(span[1], tz),
        verdict=verdict,
        stations=tuple(stations),
        checks=tuple(checks),
        aggregates=tuple(aggregates),
        rule_sets=tuple(rule_sets),
        timeline=tuple(timeline),
        feeds=tuple(feeds),
        verification=verification_text,
        charts=tuple(charts),
        chart_note=note,
        tz=tz,
    )
