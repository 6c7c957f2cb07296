"""Who may look: a shared token (or password), unless the view listens on localhost only.

The token is presented as ``Authorization: Bearer <token>`` (scripts, curl), or once through
the login form, which sets it as an HttpOnly, SameSite=Strict cookie for the browser. A
request without it is answered 401, one with a wrong one 403; each client address's first
refusal is logged (one line, not one per request: a browser retrying a page must not flood the
node's log), with the path it asked for. Comparison is constant-time.

Guessing is slowed down (:mod:`edge.web.throttle`): an address that sent too many different
wrong tokens is answered 429 with ``Retry-After`` for a while, whatever it sends; the start of
each back-off is logged once (``web.throttled``). The address is the connection's peer; behind
a reverse proxy on this machine (a loopback peer) it is the last ``X-Forwarded-For`` address,
the one the proxy appended, so that one person's typos do not lock out the whole office.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
import time
from dataclasses import dataclass, field

from edge.log import event
from edge.web.http import Request
from edge.web.throttle import Throttle

__all__ = ["COOKIE", "Access", "client_address", "is_loopback"]

COOKIE = "edge_serve_token"


def is_loopback(host: str) -> bool:
    """True when ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def client_address(request: Request) -> str:
    """The address the guessing limit counts ``request`` under (see the module's doc)."""
    forwarded = request.headers.get("x-forwarded-for", "")
    if forwarded and is_loopback(request.client):
        last = forwarded.rsplit(",", 1)[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            pass  # not an address: a proxy we do not understand; count the peer
    return request.client


@dataclass
class Access:
    """The access rule of one server: ``token`` None means open (localhost only)."""

    token: str | None
    throttle: Throttle = field(default_factory=Throttle)
    _refused: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, request: Request, now: float | None = None) -> float:
        """Seconds the request's address is still backed off (0.0: none; always 0 without token)."""
        if self.token is None:
            return 0.0
        with self._lock:
            return self.throttle.wait(client_address(request), _now(now))

    def check(self, request: Request, now: float | None = None) -> int | None:
        """None when the request may proceed, else the status to refuse it with (401/403/429)."""
        if self.token is None:
            return None
        if self.wait(request, now) > 0:
            return 429
        given = None
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        elif (cookie := request.cookie(COOKIE)) is not None:
            given = cookie
        if given is not None and hmac.compare_digest(given.encode(), self.token.encode()):
            return None
        status = 401 if given is None else 403
        address = client_address(request)
        with self._lock:
            first = request.client not in self._refused
            self._refused.add(request.client)
            backed_off = given is not None and self.throttle.wrong(address, given, _now(now))
            backoffs = self.throttle.backoffs
        if backed_off:
            p = self.throttle.policy
            event(
                "web.throttled",
                logging.WARNING,
                client=address,
                wrong_tokens=p.limit,
                window_s=p.window,
                backoff_s=p.backoff,
                backoffs=backoffs,
            )
        if first:
            event(
                "web.refused",
                logging.WARNING,
                client=request.client,
                path=request.path,
                status=status,
                reason="no token" if given is None else "wrong token",
            )
        return status

    def accepts(self, token: str) -> bool:
        """True when ``token`` (typed into the login form) is the right one."""
        return self.token is not None and hmac.compare_digest(token.encode(), self.token.encode())


def _now(now: float | None) -> float:
    return time.monotonic() if now is None else now
