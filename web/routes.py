"""The pages that list: lots (search, sort, pages), open alarms, feeds; and the route table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from edge.web.catalog import RESULTS, SORTS, LotFilter
from edge.web.html import esc, form_value, link, options, parse_times, table, url
from edge.web.http import Request, Response

if TYPE_CHECKING:
    from edge.web.app import WebApp

__all__ = ["ROUTES"]

_SORT_LABELS = {
    "lot": "Lot",
    "start": "Start",
    "end": "End",
    "station": "Stations",
    "product": "Product",
    "result": "Result",
}


def _home(app: WebApp, request: Request, rest: list[str]) -> Response:
    return Response(303, b"", headers={"Location": "/lots"})


def lots_page(app: WebApp, request: Request, rest: list[str]) -> Response:
    """``/lots``: search by lot code, time range, station, product, result; sortable; paged."""
    if rest:
        return app.html(404, "Not found", "<p>No such page.</p>")
    q = request.query
    times, errors = parse_times(app.site, q, "since", "until")
    result = form_value(q, "result")
    if result and result not in RESULTS:
        errors.append(f"result: {result!r} is not one of {', '.join(RESULTS)}")
        result = ""
    sort = form_value(q, "sort") or "start"
    if sort not in SORTS:
        errors.append(f"sort: {sort!r} is not one of {', '.join(SORTS)}")
        sort = "start"
    order = form_value(q, "order") or "desc"
    try:
        page_no = int(form_value(q, "page") or 1)
    except ValueError:
        errors.append(f"page: {form_value(q, 'page')!r} is not a number")
        page_no = 1
    flt = LotFilter(
        text=form_value(q, "q"),
        since=times["since"],
        until=times["until"],
        station=form_value(q, "station"),
        product=form_value(q, "product"),
        result=result,
        sort=sort,
        descending=order != "asc",
        page=page_no,
    )
    app.catalog.refresh(app.conn())
    found = app.catalog.search(flt)
    keep = {k: form_value(q, k) for k in ("q", "since", "until", "station", "product", "result")}

    def head(key: str) -> str:
        flip = "asc" if key == sort and order != "asc" else "desc"
        arrow = (" ▼" if order != "asc" else " ▲") if key == sort else ""
        href = url("lots", **keep, sort=key, order=flip)
        return (
            f'<a href="{esc(href)}" class="sort" data-sort="{key}">{_SORT_LABELS[key]}{arrow}</a>'
        )

    rows = []
    for r in found.lots:
        title = "; ".join(r.failed)
        rows.append(
            [
                link(url("lot", r.lot), r.lot, "lot"),
                app.site.tag(r.start),
                app.site.tag(r.end),
                esc(", ".join(sorted(r.stations))),
                esc(", ".join(sorted(r.products))),
                f'<span class="{r.result}" title="{esc(title)}">{r.result}</span>',
            ]
        )
    form = (
        '<form class="search" method="get" action="/lots" id="search">'
        f'<label>Lot <input name="q" id="q" value="{esc(keep["q"])}"></label>'
        f'<label>From <input name="since" value="{esc(keep["since"])}" placeholder="2026-11-23 or 8h"></label>'
        f'<label>To <input name="until" value="{esc(keep["until"])}"></label>'
        f'<label>Station <input name="station" value="{esc(keep["station"])}"></label>'
        f'<label>Product <input name="product" value="{esc(keep["product"])}"></label>'
        f'<label>Result <select name="result">{options(RESULTS, result, "any")}</select></label>'
        '<button type="submit" id="go">Search</button></form>'
    )
    problems = "".join(f'<p class="error">{esc(e)}</p>' for e in errors)
    pager = []
    if found.page > 1:
        pager.append(
            link(
                url("lots", **keep, sort=sort, order=order, page=found.page - 1),
                "← newer" if order != "asc" else "← previous",
                "prev",
            )
        )
    if found.page < found.pages:
        pager.append(
            link(
                url("lots", **keep, sort=sort, order=order, page=found.page + 1),
                "older →" if order != "asc" else "next →",
                "next",
            )
        )
    summary = (
        f'<p id="count" data-total="{found.total}">{found.total} lot(s); page {found.page} '
        f"of {found.pages}</p>"
    )
    body = (
        form
        + problems
        + summary
        + table([head(k) for k in _SORT_LABELS], rows, cls="lots")
        + " ".join(pager)
    )
    return app.html(400 if errors else 200, "Lots", body)


def alarms_page(app: WebApp, request: Request, rest: list[str]) -> Response:
    """``/alarms``: every alarm not normal, its ISA-18.2 state, since when, shelved until, by whom."""
    from edge.alarm_words import STATE_LABEL
    from edge.office import fmt_number

    app.catalog.refresh(app.conn())
    rows = []
    for a in app.catalog.open_alarms():
        shelved = (
            f"{app.site.tag(a.shelved_until) if a.shelved_until[:1].isdigit() else esc(a.shelved_until)}"
            f" by {esc(a.shelved_by)}"
            if a.shelved_until
            else ""
        )
        acked = f"{esc(a.acked_by)} at {app.site.tag(a.acked_at)}" if a.acked_by else ""
        rows.append(
            [
                esc(a.rule),
                esc(app.feed_name(a.feed)),
                f'<span class="state-{esc(a.state)}" data-state="{esc(a.state)}">'
                f"{esc(STATE_LABEL.get(a.state, a.state))}</span>",
                app.site.tag(a.since),
                esc(
                    f"{fmt_number(a.value, app.settings.resolutions.get(a.point))} {a.unit}".strip()
                ),
                esc(a.severity),
                acked,
                shelved,
                " ".join(link(url("lot", lot), lot) for lot in a.lots),
                esc(a.message),
            ]
        )
    headers = [
        "Rule",
        "Node",
        "State",
        "Since",
        "Value",
        "Severity",
        "Acknowledged",
        "Shelved until",
        "Lot",
        "Message",
    ]
    body = (
        f'<p id="count" data-total="{len(rows)}">{len(rows)} alarm(s) not normal, as the ledger '
        "records them (a node's live state may be newer by its commit interval).</p>"
        + table(headers, rows, cls="alarms")
    )
    return app.html(200, "Open alarms", body)


def feeds_page(app: WebApp, request: Request, rest: list[str]) -> Response:
    """``/feeds``: every feed held or announced: head, lag, cosigners, forks, verification.

    Head, lag (entries behind the most any peer announced), cosigners and forks are
    ``edge ledger status``'s (:func:`edge.ledger.replica_status.feed_status`); the time since
    the feed's last entry and the background verification's result are added here.
    """
    from edge.ledger.replica_status import feed_status

    conn = app.conn()
    app.catalog.refresh(conn)
    now = datetime.now(UTC)
    rows = []
    for st in feed_status(conn, app.settings.names, own=app.settings.node_feed):
        feed = st.feed
        last = conn.execute(
            "SELECT ts FROM entries WHERE feed = ? ORDER BY seq DESC LIMIT 1", (feed,)
        ).fetchone()
        last_ts = str(last[0]) if last else ""
        age = ""
        if last_ts:
            at = datetime.fromisoformat(last_ts.replace("Z", "+00:00"))
            age = _ago((now - at).total_seconds())
        shown = app.settings.feeds is None or feed in app.settings.feeds
        if st.name is not None:
            trust = f"trusted as {st.name}"
        else:
            trust = "shown (no trust list)" if shown else "untrusted (not shown)"
        cls, status = app.feed_status(feed)
        if st.forked_at is not None:
            cls, status = "bad", f"FORKED at seq {st.forked_at}; {status}"
        peers = ", ".join(f"{p.peer}: {p.end}" for p in st.peers)
        signed = "" if st.checkpoint_size is None else str(st.checkpoint_size)
        rows.append(
            [
                esc(app.feed_name(feed)),
                f'<code title="{esc(feed)}">{esc(feed[:16])}…</code>',
                esc(trust),
                f'<span class="num">{st.end}</span> (<code>{esc(st.head[:12])}</code>)',
                f'<span class="num">{signed}</span>',
                esc(peers),
                f'<span class="num lag" data-feed="{esc(feed)}">{st.lag}</span>',
                f"{app.site.tag(last_ts)} ({esc(age)} ago)" if last_ts else "",
                esc(", ".join(st.cosigners)),
                f'<span class="{cls}" data-feed="{esc(feed)}">{esc(status)}</span>',
            ]
        )
    v = app.verification
    when = (
        f"last verified {app.site.tag(v.finished)} in {v.seconds:.1f} s"
        if v.finished
        else "verification has not finished yet"
    )
    headers = [
        "Node",
        "Feed key",
        "Trust",
        "Head (entries, hash)",
        "Last checkpoint at seq",
        "Peers announced",
        "Lag (entries)",
        "Last entry",
        "Cosigned by",
        "Verification",
    ]
    body = (
        f"<p>{when}; trust list: {esc(app.settings.trust_source or 'none')}. Lag: entries a peer "
        "announced that this database does not hold yet.</p>" + table(headers, rows, cls="feeds")
    )
    return app.html(200, "Feeds", body)


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _lot(app: WebApp, request: Request, rest: list[str]) -> Response:
    from edge.web import lot_page

    return lot_page.lot_route(app, request, rest)


def _chart(app: WebApp, request: Request, rest: list[str]) -> Response:
    from edge.web import lot_page

    return lot_page.point_chart(app, request, rest)


def _trend(app: WebApp, request: Request, rest: list[str]) -> Response:
    from edge.web import trend_page

    return trend_page.trend_page(app, request, rest)


ROUTES: list[tuple[str, Callable[[WebApp, Request, list[str]], Response]]] = [
    ("lots", lots_page),
    ("lot", _lot),
    ("alarms", alarms_page),
    ("feeds", feeds_page),
    ("chart", _chart),
    ("trend", _trend),
    ("", _home),
]
