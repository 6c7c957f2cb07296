"""The guessing limit of ``edge serve``: the pure core with a chosen clock, then a real server.

Over HTTP the requests come from 127.0.0.1 and name their client in ``X-Forwarded-For`` (as a
reverse proxy on the same machine does), so one test shows several addresses apart.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request

import web_scenario as ws
from web_server import TOKEN, start_server, stop_server

from edge.web.auth import Access, client_address
from edge.web.http import Request
from edge.web.throttle import BACKOFF, LIMIT, WINDOW, Throttle, ThrottlePolicy, retry_after


def test_different_wrong_tokens_start_a_backoff_that_ends() -> None:
    t = Throttle()
    for i in range(LIMIT - 1):
        assert not t.wrong("10.0.0.7", f"guess-{i}", 100.0 + i)
        assert t.wait("10.0.0.7", 100.0 + i) == 0.0
    assert t.wrong("10.0.0.7", "guess-last", 120.0)
    assert t.backoffs == 1
    assert t.wait("10.0.0.7", 120.0) == BACKOFF
    assert t.wait("10.0.0.7", 120.0 + BACKOFF - 1) == 1.0
    assert t.wait("10.0.0.8", 121.0) == 0.0  # per address
    assert t.wait("10.0.0.7", 120.0 + BACKOFF) == 0.0
    # after the back-off the count starts again from nothing
    assert not t.wrong("10.0.0.7", "again", 120.0 + BACKOFF + 1)


def test_the_same_wrong_token_again_never_backs_off() -> None:
    t = Throttle()
    for i in range(10 * LIMIT):
        assert not t.wrong("10.0.0.7", "stale-cookie", float(i))
    assert t.wait("10.0.0.7", 10.0 * LIMIT) == 0.0
    assert t.backoffs == 0


def test_wrong_tokens_older_than_the_window_do_not_count() -> None:
    t = Throttle()
    step = WINDOW / (LIMIT - 1) + 1  # the first has left the window when the LIMIT-th comes
    for i in range(3 * LIMIT):
        assert not t.wrong("10.0.0.7", f"guess-{i}", i * step)
    assert t.backoffs == 0


def test_memory_is_bounded_expired_addresses_go_first() -> None:
    t = Throttle(ThrottlePolicy(limit=2, window=10.0, backoff=100.0, max_clients=3))
    assert t.wrong("a", "x", 0.0) is False
    assert t.wrong("b", "x", 50.0) is False
    assert t.wrong("c", "x", 50.0) is False
    assert t.wrong("d", "x", 51.0) is False  # full: "a" (nothing within its window) goes
    assert t.forgotten == 0
    assert t.wrong("e", "x", 52.0) is False  # full, nothing expired: the oldest ("b") goes
    assert t.forgotten == 1
    assert t.wrong("b", "y", 53.0) is False  # "b" was forgotten: one wrong token, not two
    assert t.wrong("e", "y", 53.0) is True  # "e" was kept: its second different token


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after(599.2) == "600"
    assert retry_after(0.01) == "1"


def test_the_forwarded_address_counts_only_from_a_local_proxy() -> None:
    def req(client: str, forwarded: str) -> Request:
        return Request("GET", "/lots", {}, {"x-forwarded-for": forwarded}, client)

    assert client_address(req("127.0.0.1", "198.51.100.9, 203.0.113.7")) == "203.0.113.7"
    assert client_address(req("::1", "2001:db8::1")) == "2001:db8::1"
    assert client_address(req("192.0.2.1", "203.0.113.7")) == "192.0.2.1"  # not our proxy
    assert client_address(req("127.0.0.1", "unknown")) == "127.0.0.1"


def test_access_answers_429_whatever_the_token_during_a_backoff() -> None:
    access = Access("tok")

    def req(token: str) -> Request:
        return Request("GET", "/lots", {}, {"authorization": f"Bearer {token}"}, "10.0.0.7")

    for i in range(LIMIT):
        assert access.check(req(f"guess-{i}"), now=1.0) == 403
    assert access.check(req("tok"), now=2.0) == 429
    assert access.check(Request("GET", "/lots", {}, {}, "10.0.0.7"), now=2.0) == 429
    assert access.wait(req("tok"), now=2.0) == BACKOFF - 1
    assert access.check(req("tok"), now=1.0 + BACKOFF) is None
    assert Access(None).wait(req("x"), now=2.0) == 0.0


def _get(
    url: str, token: str | None, client: str | None = None, data: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=data)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    if client is not None:
        req.add_header("X-Forwarded-For", client)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_a_real_server_backs_off_a_guessing_address(scenario: ws.WebScenario) -> None:
    srv = start_server(scenario.db, "--token", TOKEN, "--verify-every", "0")
    try:
        lots = srv.url + "/lots"
        guesser, colleague, script = "203.0.113.7", "203.0.113.8", "198.51.100.4"
        for i in range(LIMIT - 1):
            assert _get(lots, f"guess-{i}", guesser)[0] == 403
        # the last guess goes through the login form: it counts as well
        form = urllib.parse.urlencode({"token": "guess-form"}).encode()
        assert _get(srv.url + "/login", None, guesser, form)[0] == 403
        began = time.monotonic()
        status, headers, body = _get(lots, TOKEN, guesser)  # even the right token now
        assert status == 429
        assert BACKOFF - 60 <= int(headers["Retry-After"]) <= BACKOFF
        assert b"too many wrong access tokens" in body
        assert _get(srv.url + "/login", None, guesser, b"token=" + TOKEN.encode())[0] == 429
        assert _get(lots + "?q=x", None, guesser)[0] == 429
        # other addresses are not affected, nor is the proxy's own
        assert _get(lots, TOKEN, colleague)[0] == 200
        assert _get(lots, TOKEN)[0] == 200
        # a script repeating one stale token is told 403 every time, never locked out
        for _ in range(3 * LIMIT):
            assert _get(lots, "old-token", script)[0] == 403
        assert _get(lots, TOKEN, script)[0] == 200
        # logged once for the back-off, however many 429s followed
        deadline = time.monotonic() + 30
        while not srv.log_lines("event=web.throttled") and time.monotonic() < deadline:
            time.sleep(0.1)
        throttled = srv.log_lines("event=web.throttled")
        assert len(throttled) == 1, throttled
        assert f"client={guesser}" in throttled[0]
        assert "backoffs=1" in throttled[0]
        assert time.monotonic() - began < BACKOFF  # the 429s above were inside the back-off
    finally:
        stop_server(srv)


def test_localhost_without_token_is_not_throttled(scenario: ws.WebScenario) -> None:
    srv = start_server(scenario.db, "--verify-every", "0")
    try:
        for i in range(2 * LIMIT):
            assert _get(srv.url + "/lots", f"anything-{i}", "203.0.113.7")[0] == 200
        assert _get(srv.url + "/lots", None)[0] == 200
        assert not srv.log_lines("event=web.throttled")
    finally:
        stop_server(srv)
