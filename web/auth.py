"""Who may look: a shared token (or password), unless the view listens on localhost only.

The token is presented as ``Authorization: Bearer <token>`` (scripts, curl), or once through
the login form, which sets it as an HttpOnly, SameSite=Strict cookie for the browser. A
request without it is answered 401, one with a wrong one 403; each client address's first
refusal is logged (one line, not one per request: a browser retrying a page must not flood the
node's log), with the path it asked for. Comparison is constant-time.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
from dataclasses import dataclass, field

from edge.log import event
from edge.web.http import Request

__all__ = ["COOKIE", "Access", "is_loopback"]

COOKIE = "edge_serve_token"


def is_loopback(host: str) -> bool:
    """True when ``host`` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class Access:
    """The access rule of one server: ``token`` None means open (localhost only)."""

    token: str | None
    _refused: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, request: Request) -> int | None:
        """None when the request may proceed, else the status to refuse it with (401/403)."""
        if self.token is None:
            return None
        given = None
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        elif (cookie := request.cookie(COOKIE)) is not None:
            given = cookie
        if given is not None and hmac.compare_digest(given.encode(), self.token.encode()):
            return None
        status = 401 if given is None else 403
        with self._lock:
            first = request.client not in self._refused
            self._refused.add(request.client)
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
