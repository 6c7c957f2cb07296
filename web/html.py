"""HTML building blocks of the web view: escaping, the page frame, tables, site-time tags.

Pages are rendered on the server with f-strings through :func:`esc` (every value from the
ledger is escaped; nothing from it is ever marked safe). No template engine: the pages are a
few tables and forms, and one dependency fewer matters on a gateway.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from urllib.parse import quote, urlencode

from edge.errors import ConfigError
from edge.ledger.query import format_in_range, parse_time

__all__ = ["SiteTime", "esc", "link", "page", "table", "url"]


def esc(value: object) -> str:
    """``value`` as HTML text (quotes escaped too: safe inside attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def url(*parts: str, **query: str | int) -> str:
    """A path from percent-encoded ``parts`` plus a query of the non-empty ``query`` values."""
    path = "/" + "/".join(quote(p, safe="") for p in parts)
    kept = {k: v for k, v in query.items() if v not in ("", None)}
    return path + ("?" + urlencode(kept) if kept else "")


def link(href: str, text: object, cls: str = "") -> str:
    """An ``<a>`` element."""
    attr = f' class="{esc(cls)}"' if cls else ""
    return f'<a href="{esc(href)}"{attr}>{esc(text)}</a>'


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], *, cls: str = "", raw: bool = True
) -> str:
    """A table; cells are HTML already (``raw``) or escaped here."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if raw else esc(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    attr = f' class="{esc(cls)}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass(frozen=True, slots=True)
class SiteTime:
    """Times for people in the site's zone; the UTC time on hover (``title``) and in exports."""

    zone: tzinfo | None  #: None: the machine's local zone

    def local(self, ts: str) -> datetime | None:
        """A stored RFC 3339 UTC time in the site zone (None when not a time)."""
        try:
            at = datetime.fromisoformat(ts.replace("Z", "+00:00"))
            return at.astimezone(self.zone) if self.zone is not None else at.astimezone()
        except (ValueError, OverflowError):  # OverflowError: year 1 (or 9999) west (east) of UTC
            return None

    def tag(self, ts: str) -> str:
        """``<time datetime=UTC title="UTC ...">2026-11-23 09:01:40</time>`` in the site zone."""
        if not ts:
            return ""
        at = self.local(ts)
        if at is None:
            return esc(ts)
        return (
            f'<time datetime="{esc(ts)}" title="UTC {esc(ts)}">'
            f"{at.strftime('%Y-%m-%d %H:%M:%S')}</time>"
        )

    def zone_name(self) -> str:
        """``Europe/Berlin (UTC+01:00)``: what the pages say their times are in."""
        now = datetime.now(UTC)
        at = now.astimezone(self.zone) if self.zone is not None else now.astimezone()
        offset = at.strftime("%z")
        name = str(self.zone) if self.zone is not None else (at.tzname() or "local")
        return f"{name} (UTC{offset[:3]}:{offset[3:]})"

    def parse(self, text: str, field: str) -> str:
        """A time typed into a form (site zone unless it says otherwise, or ``2h`` ago) as UTC.

        Raises:
            ConfigError: not a time (the message names ``field``).
        """
        value = text.strip()
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return parse_time(value, datetime.now(UTC), field)
        if moment.tzinfo is None:
            naive = moment
            return format_in_range(
                lambda: (
                    naive.replace(tzinfo=self.zone) if self.zone is not None else naive.astimezone()
                ),
                field,
                text,
            )
        return format_in_range(lambda: moment, field, text)


_CSS = """
body{font-family:system-ui,sans-serif;margin:0;color:#222}
header{background:#234;color:#fff;padding:.5em 1em}header a{color:#fff;margin-right:1.2em}
main{padding:1em}table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.fail,.bad{color:#b00;font-weight:600}.pass,.ok{color:#070}.open{color:#a60}
.note{color:#666;font-size:.9em}form.search input,form.search select{margin-right:.6em}
.charts svg{max-width:100%;height:auto;border:1px solid #eee;margin-bottom:1em}
code{font-size:.85em}.error{background:#fee;border:1px solid #b00;padding:.5em}
"""


def page(title: str, body: str, *, zone: str = "", status_line: str = "") -> str:
    """The frame every page shares: navigation, title, the zone times are shown in."""
    nav = "".join(
        link(href, text)
        for href, text in (
            ("/lots", "Lots"),
            ("/alarms", "Open alarms"),
            ("/feeds", "Feeds"),
            ("/chart", "Point chart"),
            ("/trend", "Trends"),
        )
    )
    foot = f'<p class="note">Times in {esc(zone)}; hover a time for UTC.</p>' if zone else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)} · edge-qc</title><style>{_CSS}</style></head><body>"
        f"<header><nav>{nav}</nav></header><main><h1>{esc(title)}</h1>{status_line}"
        f"{body}{foot}</main></body></html>"
    )


def options(values: Iterable[str], chosen: str, blank: str = "") -> str:
    """``<option>`` elements, ``chosen`` selected, a first blank one labelled ``blank``."""
    out = [f'<option value="">{esc(blank)}</option>'] if blank is not None else []
    for v in values:
        sel = " selected" if v == chosen else ""
        out.append(f'<option value="{esc(v)}"{sel}>{esc(v)}</option>')
    return "".join(out)


def form_value(query: Mapping[str, str], key: str) -> str:
    """The stripped value of a query field ("" when absent)."""
    return query.get(key, "").strip()


def parse_times(
    site: SiteTime, query: Mapping[str, str], *fields: str
) -> tuple[dict[str, str], list[str]]:
    """Each time field of the query as UTC, and one message per field that is not a time."""
    out: dict[str, str] = {}
    errors: list[str] = []
    for name in fields:
        text = form_value(query, name)
        if not text:
            out[name] = ""
            continue
        try:
            out[name] = site.parse(text, name)
        except ConfigError as exc:
            out[name] = ""
            errors.append(str(exc))
    return out, errors
