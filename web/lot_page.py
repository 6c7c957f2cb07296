"""A lot's page, its charts and downloads; and the chart of a point over a time range.

The page is :func:`edge.office.build_lot_report`'s content (the same rows the HTML and PDF
lot reports print, so the three never disagree) laid out for the browser: times in the site
zone with UTC on hover, entry ids on hover, the charts inline as SVG (their limits and
Nelson hits are elements a browser can inspect), the verification status of each feed from
the server's latest background verification, and the downloads.
"""

from __future__ import annotations

import io
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from edge.web.html import esc, form_value, link, parse_times, table, url
from edge.web.http import Request, Response

if TYPE_CHECKING:
    from edge.ledger.trace import LotTrace
    from edge.office import LotReport, SpecLimits
    from edge.web.app import WebApp

__all__ = ["lot_route", "point_chart"]

_DOWNLOADS = (
    ("export.csv", "CSV (spreadsheet)"),
    ("epcis.json", "EPCIS 2.0"),
    ("report.pdf", "Lot report (PDF)"),
    ("report.html", "Lot report (HTML)"),
    ("proof.zip", "Proof bundle (auditors)"),
    ("analysis.sqlite", "Analysis database (SQLite)"),
)


def _filename(lot: str, suffix: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", lot).strip("._") or "lot"
    return f"lot-{safe}{suffix}"


def _download(body: bytes, kind: str, name: str) -> Response:
    return Response(200, body, kind, {"Content-Disposition": f'attachment; filename="{name}"'})


def load_trace(app: WebApp, lot: str) -> tuple[LotTrace, int]:
    """The lot's trace over the shown feeds, and how many other feeds name it (hidden)."""
    from edge.ledger.trace import trace_lot

    conn = app.conn()
    feeds = app.settings.feeds
    trace = trace_lot(conn, lot, feeds)
    hidden = 0
    if feeds is not None:
        naming = {
            f for (f,) in conn.execute("SELECT DISTINCT feed FROM entry_lots WHERE lot = ?", (lot,))
        }
        hidden = len(naming - feeds)
    return trace, hidden


def _specs(app: WebApp) -> dict[str, SpecLimits]:
    if app.settings.ruleset is None:
        return {}
    from edge.office import spec_limits

    return spec_limits(app.settings.ruleset)


def build_report(
    app: WebApp, conn: sqlite3.Connection, trace: LotTrace, *, charts: bool = True
) -> LotReport:
    """The lot report of ``trace`` as the downloads show it (``charts``: with its charts)."""
    from edge.office import build_lot_report
    from edge.office.sources import lot_series

    names = dict(app.settings.names)
    for feed in trace.extents:
        names.setdefault(feed, app.feed_name(feed))
    return build_lot_report(
        trace,
        now=datetime.now(UTC),
        series=lot_series(conn, trace) if charts else {},
        spec=_specs(app),
        resolutions=app.settings.resolutions,
        feed_names=names,
        verification=app.verification.report,
        tz=app.site.zone,
    )


def lot_route(app: WebApp, request: Request, rest: list[str]) -> Response:
    """``/lot/L`` and ``/lot/L/<download>``, ``/lot/L/chart/<point>.svg|.json``."""
    if not rest:
        return Response(303, b"", headers={"Location": "/lots"})
    lot, sub = rest[0], rest[1:]
    trace, hidden = load_trace(app, lot)
    if not trace.events:
        which = f" ({hidden} untrusted feed(s) name it and are not shown)" if hidden else ""
        return app.html(
            404,
            f"Lot {lot}",
            f'<p class="error">No entries of lot {esc(lot)} in a shown feed{which}.</p>',
        )
    conn = app.conn()
    if not sub:
        # the page's charts come from the chart cache, not from the report
        report = build_report(app, conn, trace, charts=False)
        return _lot_html(app, conn, trace, hidden, report)
    if len(sub) == 2 and sub[0] == "chart":
        return _lot_chart(app, conn, trace, sub[1])
    if len(sub) != 1:
        return app.html(404, "Not found", "<p>No such page.</p>")
    what = sub[0]
    if what == "export.csv":
        from edge.ledger.export_csv import write_lot_csv

        out = io.StringIO()
        write_lot_csv(trace, out)
        text = out.getvalue()
        # a spreadsheet on Windows reads UTF-8 only after a byte-order mark (N·m, µS/cm)
        data = text.encode("utf-8") if text.startswith("\ufeff") else ("\ufeff" + text).encode()
        return _download(data, "text/csv; charset=utf-8", _filename(lot, ".csv"))
    if what == "epcis.json":
        from edge.ledger.epcis import epcis_document, valid_gtin

        # the product's GTIN when the lot's entries record one (as `export --gtin` would give it)
        gtins = {str(e.entry.body.get("gtin")) for e in trace.events if e.entry.body.get("gtin")}
        gtin = next((g for g in sorted(gtins) if valid_gtin(g)), None)
        doc = epcis_document(trace, now=datetime.now(UTC), gtin=gtin)
        return _download(
            orjson.dumps(doc, option=orjson.OPT_INDENT_2),
            "application/ld+json",
            _filename(lot, ".epcis.json"),
        )
    if what == "report.html":
        from edge.office import lot_report_html

        body = lot_report_html(build_report(app, conn, trace)).encode()
        return _download(body, "text/html; charset=utf-8", _filename(lot, "-report.html"))
    if what == "report.pdf":
        from edge.office import lot_report_pdf

        body = lot_report_pdf(build_report(app, conn, trace))
        return _download(body, "application/pdf", _filename(lot, "-report.pdf"))
    if what == "proof.zip":
        from edge import __version__
        from edge.ledger.proof import build_proof

        bundle, _ = build_proof(conn, trace, generator=f"edge-qc {__version__} (edge serve)")
        return _download(bundle, "application/zip", _filename(lot, "-proof.zip"))
    if what == "analysis.sqlite":
        return _download(
            _analysis_db(conn, trace), "application/vnd.sqlite3", _filename(lot, ".sqlite")
        )
    return app.html(404, "Not found", f"<p>No download {esc(what)}.</p>")


def _analysis_db(conn: sqlite3.Connection, trace: LotTrace) -> bytes:
    """``edge ledger export --format sqlite`` of this one lot, as the file's bytes.

    The same rows as the CLI's (the lot's trace over the shown feeds, the readings and summaries
    of its span), written to a private temporary directory, read back whole and removed:
    sqlite-utils writes a file, not a stream, and the response is sent from memory like the
    other downloads.
    """
    import tempfile
    from pathlib import Path

    from edge.errors import EdgeError
    from edge.ledger.export_sqlite import write_lots_sqlite

    try:
        with tempfile.TemporaryDirectory(prefix="edge-serve-") as folder:
            path = Path(folder) / "analysis.sqlite"
            write_lots_sqlite([trace], conn, path)
            return path.read_bytes()
    except OSError as exc:  # the temporary folder: full, or not writable
        raise EdgeError(f"cannot write the analysis database: {exc.strerror or exc}") from exc


def _lot_chart(app: WebApp, conn: sqlite3.Connection, trace: LotTrace, name: str) -> Response:
    point, dot, kind = name.rpartition(".")
    if not dot or kind not in ("svg", "json"):
        return app.html(
            404, "Not found", "<p>A chart is <code>POINT.svg</code> or <code>POINT.json</code>.</p>"
        )
    charts = app.lot_charts(conn, trace, [point])
    if not charts:
        return app.html(
            404, "No chart", f"<p>No readings of {esc(point)} in lot {esc(trace.lot)}.</p>"
        )
    if kind == "json":
        data = orjson.dumps(charts[0].data.to_json(), option=orjson.OPT_SERIALIZE_NUMPY)
        return Response(200, data, "application/json")
    return Response(200, app.svg(charts[0]).encode(), "image/svg+xml")


def _capability(app: WebApp, trace: LotTrace) -> dict[tuple[str, str], tuple[str, str]]:
    """(station, point) -> (Cp, Cpk) from the lot-end aggregates and the spec limits.

    Without spec limits (no node config given), the Cp/Cpk the lot's own checks recorded.
    """
    from edge.office import fmt_number
    from edge.rules.spc import capability

    specs = _specs(app)
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for visit in trace.visits:
        station = visit.name or visit.station.name
        recorded: dict[str, dict[str, Any]] = {}
        for c in visit.checks:
            if c.get("statistic") in ("cp", "cpk"):
                recorded.setdefault(str(c.get("point", "")), {})[str(c["statistic"])] = c.get(
                    "value"
                )
        for point, agg in visit.aggregates.items():
            spec = specs.get(point)
            cp: object = recorded.get(point, {}).get("cp")
            cpk: object = recorded.get(point, {}).get("cpk")
            try:
                mean, std = float(agg["mean"]), float(agg["std"])
            except (KeyError, TypeError, ValueError):
                mean, std = float("nan"), float("nan")
            if spec is not None and (spec.low is not None or spec.high is not None):
                cap = capability(mean, std if std > 0 else None, spec.low, spec.high)
                cp, cpk = cap.cp, cap.cpk
            out[(station, point)] = (fmt_number(cp, 0.01), fmt_number(cpk, 0.01))
    return out


def _lot_html(
    app: WebApp, conn: sqlite3.Connection, trace: LotTrace, hidden: int, report: LotReport
) -> Response:
    from edge.office.sources import lot_points

    site = app.site
    lot = trace.lot
    span = trace.span or ("", "")
    verdict_cls = {"pass": "pass", "fail": "fail"}.get(report.verdict, "open")
    downloads = " · ".join(
        f'<a href="{esc(url("lot", lot, name))}" class="download" data-kind="{name}" download>{label}</a>'
        for name, label in _DOWNLOADS
    )
    parts = [
        f'<p>Result: <span id="verdict" class="{verdict_cls}">{esc(report.verdict)}</span>; '
        f"from {site.tag(span[0])} to {site.tag(span[1])}; "
        f"{len({e.entry.feed for e in trace.events})} feed(s).</p>",
        f'<p id="downloads">Download: {downloads}</p>',
    ]
    if hidden:
        parts.append(
            f'<p class="note">{hidden} untrusted feed(s) also name this lot and are not shown.</p>'
        )
    parts.append("<h2>Stations</h2>")
    parts.append(
        table(
            ["Station", "Node", "Feed", "Start", "End", "Checks"],
            (
                [
                    esc(s["station"]),
                    esc(s["node"]),
                    esc(s["feed"]),
                    site.tag(s["start_utc"]) or esc(s["start"]),
                    site.tag(s["end_utc"]) or esc(s["end"]),
                    esc(s["checks"]),
                ]
                for s in report.stations
            ),
            cls="stations",
        )
    )
    parts.append("<h2>Checks</h2>")
    parts.append(
        table(
            ["Station", "Rule", "Point", "Check", "Value", "Limit", "Result"],
            (
                [
                    esc(c.station),
                    esc(c.rule),
                    esc(c.point),
                    esc(c.check),
                    f'<span class="num">{esc(c.value)}</span>',
                    f'<span class="num">{esc(c.limit)}</span>',
                    f'<span class="{"pass" if c.passed else "fail"}">{"pass" if c.passed else "FAIL: " + esc(c.statistic) + " = " + esc(c.value)}</span>',
                ]
                for c in report.checks
            ),
            cls="checks",
        )
    )
    caps = _capability(app, trace)
    parts.append("<h2>Aggregates at lot end</h2>")
    parts.append(
        table(
            ["Station", "Point", "Count", "Mean", "Min", "Max", "Std", "Unit", "Cp", "Cpk"],
            (
                [
                    esc(a["station"]),
                    esc(a["point"]),
                    *(
                        f'<span class="num">{esc(a[k])}</span>'
                        for k in ("count", "mean", "min", "max", "std")
                    ),
                    esc(a["unit"]),
                    *(
                        f'<span class="num">{esc(v)}</span>'
                        for v in caps.get((a["station"], a["point"]), ("", ""))
                    ),
                ]
                for a in report.aggregates
            ),
            cls="aggregates",
        )
    )
    parts.append("<h2>Timeline</h2>")
    parts.append(
        table(
            ["Time", "Node", "Entry", "What"],
            (
                [
                    site.tag(t["ts_utc"]),
                    esc(t["node"]),
                    f'<span class="etype" data-type="{esc(t["type"])}">{esc(t["type"])}</span>',
                    f'<span title="entry {esc(t["entry"])}">{esc(t["summary"])}</span>',
                ]
                for t in report.timeline
            ),
            cls="timeline",
        )
    )
    parts.append("<h2>Rule sets in force</h2>")
    parts.append(
        table(
            ["Node", "Since", "Rule set hash", "Rules"],
            (
                [
                    esc(r["node"]),
                    site.tag(r["since_utc"]),
                    f"<code>{esc(r['hash'][:16])}</code>",
                    esc(r["rules"]),
                ]
                for r in report.rule_sets
            ),
        )
    )
    parts.append("<h2>Verification</h2>")
    v = app.verification
    when = (
        f"last verified {site.tag(v.finished)}" if v.finished else "verification not finished yet"
    )
    parts.append(f"<p>{esc(report.verification)} ({when}).</p>")
    feed_rows = []
    for f in report.feeds:
        cls, text = app.feed_status(f.feed)
        feed_rows.append(
            [
                esc(f.name or app.feed_name(f.feed)),
                esc(f.station),
                f"<code>{esc(f.feed)}</code>",
                f'<span class="{cls} verify" data-feed="{esc(f.feed)}">{esc(text)}</span>',
            ]
        )
    parts.append(table(["Name", "Node", "Feed key", "Status"], feed_rows, cls="verification"))
    parts.append("<h2>Control charts</h2>")
    charts = app.lot_charts(conn, trace, lot_points(trace))
    if charts:
        svgs = [
            f'<figure id="chart-{esc(c.point)}">{app.svg(c)}'
            f"<figcaption>{link(url('lot', lot, 'chart', c.point + '.json'), 'chart data (JSON)')} · "
            f"{link(url('chart', point=c.point, since=c.data.first, until=_after(c.data.last)), 'this point over time')}"
            f" · {link(url('trend', point=c.point), 'over 90 days')}"
            "</figcaption></figure>"
            for c in charts
        ]
        parts.append('<div class="charts">' + "".join(svgs) + "</div>")
    else:
        parts.append("<p>No readings of this lot are stored on this node.</p>")
    return app.html(200, f"Lot {lot}", "".join(parts))


def _after(ts: str) -> str:
    """A moment just after ``ts`` (windows are half-open)."""
    try:
        at = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return ts
    return (at + timedelta(microseconds=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def point_chart(app: WebApp, request: Request, rest: list[str]) -> Response:
    """``/chart?point=P&since=..&until=..`` (``/chart/json?...``): one point over a time range."""
    from edge.ledger.query import EntryFilter, format_ts, query_entries
    from edge.office import alarm_periods, chart_data, chart_svg
    from edge.office.sources import point_series

    q = request.query
    point = form_value(q, "point")
    times, errors = parse_times(app.site, q, "since", "until")
    now = datetime.now(UTC)
    since = times["since"] or format_ts(now - timedelta(hours=8))
    until = times["until"] or format_ts(now)
    form = (
        '<form class="search" method="get" action="/chart" id="chart-form">'
        f'<label>Point <input name="point" value="{esc(point)}"></label>'
        f'<label>From <input name="since" value="{esc(form_value(q, "since"))}" placeholder="8h"></label>'
        f'<label>To <input name="until" value="{esc(form_value(q, "until"))}"></label>'
        '<button type="submit">Show</button></form>'
    )
    body = [form, *(f'<p class="error">{esc(e)}</p>' for e in errors)]
    if not point or errors:
        return app.html(400 if errors else 200, "Point chart", "".join(body))
    conn = app.conn()
    series = point_series(conn, point, since, until)
    if not series:
        body.append(
            f"<p>No readings of {esc(point)} from {app.site.tag(since)} to {app.site.tag(until)}.</p>"
        )
        return app.html(404 if rest else 200, "Point chart", "".join(body))
    alarms = query_entries(
        conn, EntryFilter(type="alarm", since=since, until=until, feeds=app.settings.feeds)
    )
    periods = [a for a in alarm_periods(alarms) if a.point == point]
    data = chart_data(series, point=point, spec=_specs(app).get(point), alarms=periods)
    if rest == ["json"]:
        return Response(
            200, orjson.dumps(data.to_json(), option=orjson.OPT_SERIALIZE_NUMPY), "application/json"
        )
    body.append(
        f"<p>{data.count} readings from {app.site.tag(data.first)} to {app.site.tag(data.last)}"
        f" · {link(url('trend', point=point), 'this point over 90 days (summaries)')}.</p>"
    )
    svg = chart_svg(data, resolution=app.settings.resolutions.get(point), tz=app.site.zone)
    body.append(f'<div class="charts">{svg}</div>')
    return app.html(200, f"Point {point}", "".join(body))
