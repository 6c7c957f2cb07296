"""A small HTTP/1.1 server on asyncio streams: what ``edge serve`` needs and nothing more.

Why our own (docs/design.md, "The quality office web view"): the view serves a handful of GET
routes to a few people in an office; a framework (Starlette + uvicorn, Datasette) would add
five to fifteen packages to a Raspberry Pi's install for routing we write in forty lines. The
server reads one request per connection (``Connection: close``: a page and its downloads are a
few requests, keep-alive buys nothing here), with a timeout on every read and write and a cap
on the request head, hands it to a synchronous handler in a worker thread (SQLite reads block),
and writes the response. Only GET and HEAD reach the application, plus POST for the login form:
nothing over the web changes the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from edge.log import event

__all__ = ["Request", "Response", "open_http", "serve_http"]

#: Longest request head (request line and headers) accepted.
MAX_HEAD = 16 * 1024
#: Longest request body accepted (the login form).
MAX_BODY = 4 * 1024
#: Seconds a client may take to send its request, and to take the response.
IO_TIMEOUT = 30.0
#: Requests handled at once; more wait (bounded: a browser opens six connections at most).
MAX_CONCURRENT = 8

_REASONS = {
    200: "OK",
    303: "See Other",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed request. ``path`` is percent-decoded; ``query`` keeps the first value of each."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  #: lower-case names
    client: str
    body: bytes = b""

    def cookie(self, name: str) -> str | None:
        """The value of cookie ``name``, if the request carries it."""
        for part in self.headers.get("cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None

    def form(self) -> dict[str, str]:
        """The urlencoded form in the body (first value of each field)."""
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}


@dataclass(frozen=True, slots=True)
class Response:
    """What a handler returns; ``body`` is sent as is (HEAD: headers only)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)

    def encode(self, head_only: bool = False) -> bytes:
        """The response as bytes on the wire."""
        lines = [
            f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Status')}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "Connection: close",
            "X-Content-Type-Options: nosniff",
            "Referrer-Policy: same-origin",
            *(f"{k}: {v}" for k, v in self.headers.items()),
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + self.body


def parse_head(data: bytes, client: str) -> Request:
    """Parse a request head (without its body).

    Raises:
        ValueError: not an HTTP/1.x request line or a malformed header.
    """
    text = data.decode("latin-1")
    line, *header_lines = text.split("\r\n")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise ValueError(f"bad request line {line[:80]!r}")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for h in header_lines:
        if not h:
            continue
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"bad header line {h[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    split = urlsplit(target)
    query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
    return Request(method.upper(), unquote(split.path) or "/", query, headers, client)


Handler = Callable[[Request], Response]


async def _read_request(reader: asyncio.StreamReader, client: str) -> Request:
    data = await reader.readuntil(b"\r\n\r\n")
    request = parse_head(data[:-4], client)
    length = int(request.headers.get("content-length", "0") or 0)
    if length > MAX_BODY or length < 0:
        raise OverflowError("body too large")
    if length:
        body = await reader.readexactly(length)
        request = Request(
            request.method, request.path, request.query, request.headers, client, body
        )
    return request


async def _serve_one(
    handler: Handler,
    slots: asyncio.Semaphore,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    peer = writer.get_extra_info("peername")
    client = str(peer[0]) if isinstance(peer, tuple) else "local"
    head_only = False
    try:
        try:
            request = await asyncio.wait_for(_read_request(reader, client), IO_TIMEOUT)
        except (asyncio.LimitOverrunError, OverflowError):
            response = Response(413, b"request too large\n", "text/plain; charset=utf-8")
        except (ValueError, asyncio.IncompleteReadError):
            response = Response(400, b"bad request\n", "text/plain; charset=utf-8")
        else:
            head_only = request.method == "HEAD"
            async with slots:
                response = await asyncio.to_thread(handler, request)
        writer.write(response.encode(head_only))
        await asyncio.wait_for(writer.drain(), IO_TIMEOUT)
    except (TimeoutError, ConnectionError):
        pass  # the client went away or stalled: nothing to answer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), IO_TIMEOUT)


async def open_http(handler: Handler, host: str, port: int) -> asyncio.Server:
    """Bind ``host:port`` (port 0: any free one) for ``handler``; serve it with :func:`serve_http`.

    Binding comes first, on its own, so a port already taken is an ``OSError`` of its own.

    Args:
        handler: called in a worker thread with each request; must not raise (it answers 500).
        host: address to listen on.
        port: its port.
    """
    slots = asyncio.Semaphore(MAX_CONCURRENT)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_one(handler, slots, reader, writer)

    return await asyncio.start_server(client, host, port, limit=MAX_HEAD)


async def serve_http(
    server: asyncio.Server,
    *,
    ready: Callable[[str, int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve on ``server`` (from :func:`open_http`) until ``stop`` is set (or forever).

    Args:
        server: the bound listener.
        ready: called with the bound address and port once listening.
        stop: set it to close the listener and return.
    """
    async with server:
        sock = server.sockets[0].getsockname()
        event("web.listening", host=str(sock[0]), port=int(sock[1]))
        if ready is not None:
            ready(str(sock[0]), int(sock[1]))
        await (stop or asyncio.Event()).wait()
