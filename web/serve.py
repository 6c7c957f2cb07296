"""Running the web view: the HTTP server and the background verification, under one TaskGroup.

:func:`parse_listen` and :func:`check_access` hold the start-up rules (a token is required
unless the view listens on a loopback address); :func:`run_server` runs until ``stop`` is set.
The lot catalog is built before the port opens, so the first search is as fast as the rest;
the charts of the most recently ended lots are built in the background (and again every
:data:`WARM_EVERY` seconds for lots that end meanwhile), so opening a lot that just ended does
not wait for its charts.
The whole database is verified after start and then every ``verify_every`` seconds in a
daemon thread with one worker (a Raspberry Pi keeps a core for its node): a request never waits
for it, and stopping the server does not wait for a verification to finish.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable

from edge.errors import ConfigError, EdgeError
from edge.log import event
from edge.web.app import WebApp
from edge.web.auth import is_loopback
from edge.web.http import open_http, serve_http

__all__ = ["WARM_EVERY", "check_access", "parse_listen", "run_server"]

#: Seconds between two looks for newly ended lots whose charts to build in the background.
WARM_EVERY = 15.0


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6; ``:8080`` means 127.0.0.1) as (host, port).

    Raises:
        ConfigError: not HOST:PORT with a port 0..65535.
    """
    value = text.strip()
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
    else:
        host, sep, port = value.rpartition(":")
        sep = "" if ":" in host else sep
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(
            f"--listen: {text!r} is not HOST:PORT (127.0.0.1:8080, [::1]:8080, 0.0.0.0:8080)"
        )
    return host or "127.0.0.1", int(port)


def check_access(host: str, token: str | None) -> None:
    """Refuse to open the view beyond this machine without a token.

    Raises:
        ConfigError: ``host`` is not a loopback address and no token was given.
    """
    if token is not None and not token.strip():
        raise ConfigError(
            "--token: empty; give a long random string (or leave it out on localhost)"
        )
    if token is None and not is_loopback(host):
        raise ConfigError(
            f"--listen {host}: the view would be open to the network without a token; give "
            "--token (or EDGE_SERVE_TOKEN), or listen on 127.0.0.1 behind a TLS reverse proxy"
        )


def _verify_then(app: WebApp, loop: asyncio.AbstractEventLoop, done: asyncio.Event) -> None:
    try:
        app.verify()
    finally:
        loop.call_soon_threadsafe(done.set)


async def _verify_loop(app: WebApp, every: float, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        done = asyncio.Event()
        # a daemon thread, not the executor: stopping must not wait for a long verification
        threading.Thread(
            target=_verify_then, args=(app, loop, done), name="edge-serve-verify", daemon=True
        ).start()
        waiters = {asyncio.create_task(done.wait()), asyncio.create_task(stop.wait())}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        if every <= 0 or stop.is_set():
            return
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            continue


async def _warm_loop(app: WebApp, every: float, stop: asyncio.Event) -> None:
    """Build the charts of lots that just ended, every ``every`` seconds (see WebApp.warm)."""
    while not stop.is_set():
        try:
            built = await asyncio.to_thread(app.warm)
        except (EdgeError, sqlite3.Error) as exc:  # the next round tries again
            event("web.warm_failed", logging.WARNING, error=str(exc))
        else:
            if built:
                event("web.warmed", charts=built)
        try:
            await asyncio.wait_for(stop.wait(), every)
        except TimeoutError:
            continue


async def run_server(
    app: WebApp,
    host: str,
    port: int,
    *,
    verify_every: float = 3600.0,
    ready: Callable[[str, int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` until ``stop`` is set.

    Args:
        app: the application.
        host: address to listen on.
        port: the port (0: any free one).
        ready: called with the bound address and port once listening.
        stop: set it to stop.
        verify_every: seconds between verifications of the database; 0: once after start;
            negative: never (the pages then say so).
    """
    stop = stop or asyncio.Event()
    began = time.monotonic()
    count = await asyncio.to_thread(lambda: app.catalog.refresh(app.conn()))
    event(
        "web.catalog",
        entries=count,
        lots=len(app.catalog.lots),
        seconds=round(time.monotonic() - began, 3),
    )
    if not is_loopback(host):
        event(
            "web.plain_http",
            logging.WARNING,
            host=host,
            note="the token and the pages cross the network unencrypted: "
            "listen on 127.0.0.1 behind a TLS reverse proxy",
        )
    listener = await open_http(app, host, port)  # OSError: the port is taken, the host not ours
    async with asyncio.TaskGroup() as tg:
        tg.create_task(serve_http(listener, ready=ready, stop=stop))
        if verify_every >= 0:
            tg.create_task(_verify_loop(app, verify_every, stop))
        tg.create_task(_warm_loop(app, WARM_EVERY, stop))
