"""Catch-up planning: ranges asked of peers that hold them, bounded, retried elsewhere on timeout."""

from __future__ import annotations

from edge.sync.catchup import Planner

A, B = "a" * 64, "b" * 64


def test_asks_the_peer_that_holds_the_range_in_windows() -> None:
    p = Planner(window=100, in_flight=4, timeout=5.0)
    p.held(A, 10)
    p.announced(A, "gw1", 5)
    p.announced(A, "gw2", 250)
    (ask,) = p.plan(0.0)
    assert (ask.feed, ask.start, ask.end, ask.peer) == (A, 10, 110, "gw2")
    assert p.plan(0.0) == []  # one request per feed at a time
    p.answered(ask.key)
    p.held(A, 110)
    (nxt,) = p.plan(0.1)
    assert (nxt.start, nxt.end) == (110, 210)
    assert p.lag(A) == 140


def test_in_flight_is_bounded_over_feeds() -> None:
    p = Planner(window=10, in_flight=1, timeout=5.0)
    p.announced(A, "gw1", 50)
    p.announced(B, "gw1", 50)
    assert len(p.plan(0.0)) == 1
    assert p.outstanding() == 1


def test_a_timed_out_request_goes_to_another_peer() -> None:
    p = Planner(window=100, in_flight=2, timeout=5.0)
    p.announced(A, "gw1", 50)
    p.announced(A, "gw2", 50)
    (first,) = p.plan(0.0)
    assert p.plan(4.9) == []
    (retry,) = p.plan(5.0)
    assert retry.peer != first.peer
    assert (p.timeouts, p.retries) == (1, 1)
    assert p.answered(first.key) is None  # a late answer to the first is not expected any more


def test_progress_moves_the_deadline_and_nothing_is_asked_when_current() -> None:
    p = Planner(window=100, in_flight=2, timeout=5.0)
    p.announced(A, "gw1", 50)
    (ask,) = p.plan(0.0)
    assert p.progress(ask.key, 4.0) == ask
    assert p.plan(8.0) == []  # deadline is 9.0 now
    p.answered(ask.key)
    p.held(A, 50)
    assert p.plan(10.0) == []
    assert p.lag(A) == 0


def test_peers_per_feed_are_bounded() -> None:
    from edge.sync.catchup import MAX_PEERS

    p = Planner(window=10, in_flight=1, timeout=5.0)
    for i in range(MAX_PEERS + 50):
        p.announced(A, f"made-up-{i}", 5)
    assert len(p.peers[A]) == MAX_PEERS
    p.announced(A, "made-up-0", 9)  # a known peer still moves
    assert p.peers[A]["made-up-0"] == 9
