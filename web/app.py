"""The web view's application: routing, access, read-only connections, the shared state.

Every request gets a read-only connection of its worker thread (``mode=ro`` URI and
``query_only``: :func:`edge.ledger.database.connect` with ``readonly=True``), so no route can
change the ledger even through a bug. Routes are GET (and HEAD); the login form alone is POSTed,
and it sets a cookie, nothing else. The lot catalog (:mod:`edge.web.catalog`) is refreshed at
the start of each page that shows lots or alarms; the verification report is renewed in the
background (:meth:`WebApp.verify`), never on a request.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import EdgeError, StorageError
from edge.log import event
from edge.web.auth import COOKIE, Access
from edge.web.catalog import Catalog
from edge.web.charts import ChartCache
from edge.web.html import SiteTime, esc, page
from edge.web.http import Request, Response
from edge.web.routes import ROUTES
from edge.web.throttle import retry_after

if TYPE_CHECKING:
    from edge.ledger.trace import LotTrace
    from edge.ledger.verify_report import Report
    from edge.office import SpecLimits
    from edge.rules.model import RuleSet
    from edge.web.charts import LotChart

__all__ = ["Settings", "Verification", "WebApp"]


@dataclass(frozen=True, slots=True)
class Settings:
    """What ``edge serve`` was started with.

    Attributes:
        feeds: the feeds shown (trusted), None for every feed in the file.
        names: feed id -> name from the trust list.
        node_feed: the serving node's own feed, when known.
        ruleset: the node's rules (spec limits for Cp/Cpk and the charts), when a config was given.
        resolutions: point -> display resolution, from the node config.
    """

    db: Path
    token: str | None
    zone: tzinfo | None = None
    feeds: frozenset[str] | None = None
    names: Mapping[str, str] = field(default_factory=dict)
    node_feed: str | None = None
    ruleset: RuleSet | None = None
    resolutions: Mapping[str, float] = field(default_factory=dict)
    trust_source: str = ""
    #: the control socket of the node writing ``db`` (asked to move its commit journal)
    control_socket: Path | None = None


@dataclass(slots=True)
class Verification:
    """The latest verification of the database, and when it ran."""

    report: Report | None = None
    finished: str = ""  #: RFC 3339 UTC
    seconds: float = 0.0
    running: bool = False
    error: str = ""


#: Seconds between two requests to a running node to move its commit journal (see :meth:`fresh`).
SYNC_EVERY = 2.0
#: How long a page waits for the node to move its journal before showing the database as it is.
SYNC_PATIENCE = 5.0
#: Most recently ended lots whose charts are built in the background (see :meth:`WebApp.warm`).
WARM_LOTS = 3


class WebApp:
    """Handles requests (called from worker threads; see :func:`edge.web.http.serve_http`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.site = SiteTime(settings.zone)
        self.access = Access(settings.token)
        self.catalog = Catalog(settings.feeds)
        self.charts = ChartCache()
        self.verification = Verification()
        self._local = threading.local()
        self._synced = -SYNC_EVERY
        self._warmed: set[tuple[str, str]] = set()
        self._syncing = threading.Lock()

    def conn(self) -> sqlite3.Connection:
        """This thread's read-only connection to the ledger."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            from edge.ledger.database import connect

            conn = connect(self.settings.db, readonly=True)
            self._local.conn = conn
        return conn

    def feed_name(self, feed: str) -> str:
        """A feed's node (``node_id/site``), else its trust-list name, else its short key.

        The node first: the trust list names the serving node's own key ``self``.
        """
        station = self.catalog.stations.at(feed)
        if station.node_id or station.site:
            return station.name
        return self.settings.names.get(feed) or station.name

    def __call__(self, request: Request) -> Response:
        """Answer one request (never raises: failures are a 503/500 page and a log line)."""
        try:
            return self._answer(request)
        except (
            sqlite3.Error,
            StorageError,
        ) as exc:  # locked, gone or damaged: say so, keep serving
            event("web.ledger_unreadable", logging.WARNING, path=request.path, error=str(exc))
            body = f'<p class="error">The ledger cannot be read now: {esc(exc)}</p>'
            return self.html(503, "Ledger unreadable", body)
        except EdgeError as exc:
            event("web.error", logging.WARNING, path=request.path, error=str(exc))
            return self.html(500, "Cannot show this", f'<p class="error">{esc(exc)}</p>')
        except Exception as exc:  # a bug: the server keeps serving, the log says where
            logging.getLogger("edge.web").exception("request %s failed", request.path)
            return self.html(
                500, "Internal error", f'<p class="error">{esc(type(exc).__name__)}</p>'
            )

    def _answer(self, request: Request) -> Response:
        wait = self.access.wait(request)
        if wait > 0:  # the login form too: it is the other way to guess
            return self._throttled(request, wait)
        if request.path == "/login":
            return self._login(request)
        refused = self.access.check(request)
        if refused is not None:
            return self._refuse(request, refused)
        self.fresh()
        if request.method not in ("GET", "HEAD"):
            return Response(
                405, b"read-only: GET only\n", "text/plain; charset=utf-8", {"Allow": "GET, HEAD"}
            )
        parts = [p for p in request.path.split("/") if p]
        for prefix, route in ROUTES:
            words = prefix.split("/") if prefix else []
            if parts[: len(words)] == words and (words or not parts):
                return route(self, request, parts[len(words) :])
        return self.html(404, "Not found", f"<p>No page at {esc(request.path)}.</p>")

    def _throttled(self, request: Request, wait: float) -> Response:
        minutes = max(1, math.ceil(wait / 60))
        headers = {"Retry-After": retry_after(wait)}
        if "text/html" in request.headers.get("accept", ""):
            body = (
                "<p>Too many wrong access tokens from this address. "
                f"Try again in {minutes} minute{'s' if minutes > 1 else ''}.</p>"
            )
            return self.html(429, "Too many wrong tokens", body, headers)
        text = f"too many wrong access tokens; retry after {headers['Retry-After']} s\n"
        return Response(429, text.encode(), "text/plain; charset=utf-8", headers)

    def _refuse(self, request: Request, status: int) -> Response:
        if status == 429:  # the back-off began after this request's first look
            return self._throttled(request, self.access.wait(request))
        if "text/html" in request.headers.get("accept", ""):
            body = (
                "<p>This view needs the access token. "
                '<a href="/login">Log in</a>, or send <code>Authorization: Bearer TOKEN</code>.</p>'
            )
            return self.html(status, "Access refused", body, {"WWW-Authenticate": "Bearer"})
        text = b"access token required\n" if status == 401 else b"wrong access token\n"
        return Response(status, text, "text/plain; charset=utf-8", {"WWW-Authenticate": "Bearer"})

    def _login(self, request: Request) -> Response:
        message = ""
        if request.method == "POST":
            token = request.form().get("token", "")
            if self.access.accepts(token):
                cookie = f"{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
                return Response(303, b"", headers={"Location": "/lots", "Set-Cookie": cookie})
            # counted and logged as a wrong Bearer token from this client would be
            headers = {k: v for k, v in request.headers.items() if k != "cookie"}
            headers["authorization"] = f"Bearer {token}"
            self.access.check(Request("POST", "/login", {}, headers, request.client))
            message = '<p class="error">Wrong token.</p>'
            status = 403
        elif self.settings.token is None:
            return Response(303, b"", headers={"Location": "/lots"})
        else:
            status = 200
        form = (
            f'{message}<form method="post" action="/login" class="search">'
            '<label>Access token <input type="password" name="token" id="token" autofocus></label>'
            '<button type="submit" id="login">Log in</button></form>'
        )
        return self.html(status, "Log in", form)

    def fresh(self) -> None:
        """Ask a running node to sign and move its commit journal, as ``edge ledger`` readers do.

        A running node's small commits wait in its journal (``<db>.eqj``), unsigned, up to
        ``journal_age`` before they reach the database: without this a page would lag the node
        by up to two minutes. Asked at most every :data:`SYNC_EVERY` seconds, by one request at
        a time (the others show the database as it is), and only when the journal holds records
        and the node's socket is there; a node that does not answer within
        :data:`SYNC_PATIENCE` leaves the page as the database has it.
        """
        socket = self.settings.control_socket
        if socket is None or time.monotonic() - self._synced < SYNC_EVERY:
            return
        if not self._syncing.acquire(blocking=False):
            return
        try:
            self._synced = time.monotonic()
            from edge.ledger.journal import journal_path

            try:
                if journal_path(self.settings.db).stat().st_size == 0 or not socket.exists():
                    return
            except OSError:
                return
            import asyncio

            from edge.control import send_command

            try:
                asyncio.run(send_command(socket, {"action": "sync"}, patience=SYNC_PATIENCE))
            except EdgeError as exc:
                event("web.sync_skipped", logging.DEBUG, error=str(exc))
        finally:
            self._syncing.release()

    def html(
        self, status: int, title: str, body: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        """A page in the common frame."""
        text = page(title, body, zone=self.site.zone_name())
        return Response(status, text.encode(), headers=dict(headers or {}))

    def warm(self, count: int = WARM_LOTS) -> int:
        """Build the charts of the ``count`` most recently ended lots not built yet.

        Run in the background (:func:`edge.web.serve.run_server`), so that opening a lot that
        just ended does not wait for its charts. Returns how many charts were built.
        """
        from edge.office.sources import lot_points
        from edge.web.lot_page import load_trace

        conn = self.conn()
        self.catalog.refresh(conn)
        built = 0
        for lot, end in self.catalog.recently_ended(count):
            if (lot, end) in self._warmed:
                continue
            self._warmed.add((lot, end))
            trace, _ = load_trace(self, lot)
            for chart in self.lot_charts(conn, trace, lot_points(trace)):
                self.svg(chart)
                built += 1
        return built

    def lot_charts(
        self, conn: sqlite3.Connection, trace: LotTrace, points: Iterable[str]
    ) -> list[LotChart]:
        """The charts of ``points`` in ``trace``'s lot (kept ones when they cannot have changed)."""
        self.catalog.refresh(conn)  # a prune since a chart was kept makes it stale
        specs: dict[str, SpecLimits] = {}
        if self.settings.ruleset is not None:
            from edge.office import spec_limits

            specs = spec_limits(self.settings.ruleset)
        out = []
        for point in points:
            spec = specs.get(point)
            chart = self.charts.chart(conn, trace, point, spec=spec, prunes=self.catalog.prunes)
            if chart is not None:
                out.append(chart)
        return out

    def svg(self, chart: LotChart) -> str:
        """The chart's SVG, drawn once per kept chart."""
        if chart.svg is None:
            from edge.office import chart_svg

            resolution = self.settings.resolutions.get(chart.point)
            chart.svg = chart_svg(chart.data, resolution=resolution, tz=self.site.zone)
        return chart.svg

    def verify(self) -> None:
        """Verify the whole database now (blocking; the server runs it in a thread)."""
        from edge.ledger.database import connect
        from edge.ledger.query import format_ts
        from edge.ledger.verify import verify_db

        self.verification.running = True
        began = time.monotonic()
        try:
            conn = connect(self.settings.db, readonly=True)
            try:
                trusted = dict(self.settings.names) if self.settings.feeds is not None else None
                report = verify_db(
                    conn, workers=1, trusted=trusted, node_feed=self.settings.node_feed
                )
            finally:
                conn.close()
        except EdgeError as exc:
            self.verification.error = str(exc)
            event("web.verify_failed", logging.WARNING, error=str(exc))
        else:
            from datetime import UTC, datetime

            self.verification.report = report
            self.verification.error = ""
            self.verification.finished = format_ts(datetime.now(UTC))
            self.verification.seconds = time.monotonic() - began
            event(
                "web.verified",
                ok=report.ok,
                entries=report.entries,
                problems=len(report.problems),
                seconds=round(self.verification.seconds, 2),
            )
        finally:
            self.verification.running = False

    def feed_status(self, feed: str) -> tuple[str, str]:
        """(css class, text) of a feed's verification result, for people."""
        v = self.verification
        if v.report is None:
            return ("open", "verification running" if v.running else v.error or "not verified yet")
        for fr in v.report.feeds:
            if fr.feed == feed:
                if fr.ok:
                    return ("ok", f"verified: {fr.entries} entries, {fr.signed} signed")
                first = fr.problems[0]
                return ("bad", f"FAILED: {len(fr.problems)} problem(s), first: {first}")
        return ("open", "not in the last verification (newer than it)")
