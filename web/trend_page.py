"""``/trend``: a point over months, from its summaries, with X-bar/S control limits.

``/trend?point=P&since=90d&until=&per=auto|hour|minute`` draws :mod:`edge.office.trend`'s chart
from the point's per-hour summaries (per-minute ones for a span of two days or less, or when
asked): the summaries outlive the raw readings, so the chart needs none. ``/trend/json`` gives
its data and limits. Without a point, the page lists the points that have summaries.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import orjson

from edge.web.html import esc, form_value, link, parse_times, url
from edge.web.http import Request, Response

if TYPE_CHECKING:
    from edge.web.app import WebApp

__all__ = ["MINUTES_AT_MOST", "MINUTES_UP_TO", "trend_page"]

#: Spans up to this are drawn from minute summaries by default (2,880 subgroups at most).
MINUTES_UP_TO = timedelta(days=2)
#: The longest span drawn per minute on request (10,080 subgroups: a page of a few MB).
MINUTES_AT_MOST = timedelta(days=7)
_PERIODS = {"hour": 3600, "minute": 60}


def _form(point: str, since: str, until: str, per: str) -> str:
    choices = "".join(
        f'<option value="{p}"{" selected" if p == per else ""}>{p}</option>'
        for p in ("auto", "hour", "minute")
    )
    return (
        '<form class="search" method="get" action="/trend" id="trend-form">'
        f'<label>Point <input name="point" value="{esc(point)}"></label>'
        f'<label>From <input name="since" value="{esc(since)}" placeholder="90d"></label>'
        f'<label>To <input name="until" value="{esc(until)}"></label>'
        f'<label>Per <select name="per">{choices}</select></label>'
        '<button type="submit">Show</button></form>'
    )


def trend_page(app: WebApp, request: Request, rest: list[str]) -> Response:
    """``/trend`` and ``/trend/json``."""
    from edge.ledger.query import format_ts
    from edge.ledger.readings_read import read_summaries
    from edge.ledger.summary_retention import summary_points
    from edge.office.trend import trend_data
    from edge.office.trend_layout import trend_svg

    q = request.query
    point = form_value(q, "point")
    per = form_value(q, "per") or "auto"
    times, errors = parse_times(app.site, q, "since", "until")
    if per not in ("auto", *_PERIODS):
        errors.append(f"per: {per!r} is not auto, hour or minute")
    now = datetime.now(UTC)
    since = times["since"] or format_ts(now - timedelta(days=90))
    until = times["until"] or format_ts(now)
    body = [
        _form(point, form_value(q, "since"), form_value(q, "until"), per),
        *(f'<p class="error">{esc(e)}</p>' for e in errors),
    ]
    conn = app.conn()
    if not point or errors:
        if not errors:
            names = summary_points(conn)
            items = "".join(f"<li>{link(url('trend', point=n), n)}</li>" for n in names)
            body.append(
                f'<ul class="trend-points">{items}</ul>' if names else "<p>No summaries stored.</p>"
            )
        return app.html(400 if errors else 200, "Trend", "".join(body))
    lo = datetime.fromisoformat(since.replace("Z", "+00:00"))
    hi = datetime.fromisoformat(until.replace("Z", "+00:00"))
    if per == "auto":
        per = "minute" if hi - lo <= MINUTES_UP_TO else "hour"
    elif per == "minute" and hi - lo > MINUTES_AT_MOST:
        body.append(
            f'<p class="error">per minute: at most {MINUTES_AT_MOST.days} days at a time; '
            "choose a shorter span, or per hour</p>"
        )
        return app.html(400, f"Trend of {point}", "".join(body))
    seconds = _PERIODS[per]
    summaries = list(
        read_summaries(conn, seconds=seconds, points=[point], since=since, until=until)
    )
    data = trend_data(summaries)
    if data is None:
        body.append(
            f"<p>No {per} summaries of {esc(point)} from {app.site.tag(since)} to "
            f"{app.site.tag(until)}.</p>"
        )
        return app.html(404 if rest else 200, f"Trend of {point}", "".join(body))
    if rest == ["json"]:
        return Response(200, orjson.dumps(data.to_json()), "application/json")
    body.append(
        f"<p>{len(data.starts):,} {per}s ({data.readings:,} readings) from {app.site.tag(since)} "
        f"to {app.site.tag(until)}; {len(data.beyond)} {per} means beyond their X-bar limits. "
        f"Limits from the spread within each {per} (X-bar/S, Montgomery 6.3.2): "
        f"{link(url('trend', 'json', point=point, since=since, until=until, per=per), 'data and limits (JSON)')}"
        f" · {link(url('chart', point=point, since=format_ts(max(lo, hi - timedelta(hours=8))), until=until), 'raw readings (last 8 h of the span)')}</p>"
    )
    svg = trend_svg(
        data,
        lo.timestamp(),
        hi.timestamp(),
        resolution=app.settings.resolutions.get(point),
        tz=app.site.zone,
    )
    body.append(f'<div class="charts">{svg}</div>')
    return app.html(200, f"Trend of {point}", "".join(body))
