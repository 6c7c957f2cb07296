"""Catch-up planning: which range of which feed to ask which peer for, now (pure; ``now`` given).

The node knows how much of each feed it holds (``local``) and what peers announced (their
retained heads). :class:`Planner` turns the difference into range requests: at most
``in_flight`` outstanding at once over all feeds and one per feed, windows of ``window``
entries, each to a peer whose signed checkpoint says it holds the range, preferring the peer
with fewest requests outstanding. A request not answered within ``timeout`` is retried with another peer
(the one that failed waits ``penalty`` seconds before it is asked again); an answer that carries
less than was asked leaves the rest to be asked again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MAX_PEERS", "Ask", "Planner"]

#: peers remembered per feed
MAX_PEERS = 256


@dataclass(frozen=True, slots=True)
class Ask:
    """One range request to send: entries ``start`` .. ``end - 1`` of ``feed``, from ``peer``."""

    key: int
    feed: str
    start: int
    end: int
    peer: str


@dataclass(slots=True)
class _Outstanding:
    ask: Ask
    deadline: float


@dataclass(slots=True)
class Planner:
    """Range requests for catch-up (see the module docstring)."""

    window: int
    in_flight: int
    timeout: float
    penalty: float = 30.0
    #: feed -> entries held locally (contiguous from 0)
    local: dict[str, int] = field(default_factory=dict)
    #: feed -> peer -> size it announced
    peers: dict[str, dict[str, int]] = field(default_factory=dict)
    _out: dict[int, _Outstanding] = field(default_factory=dict)
    _bad: dict[str, float] = field(default_factory=dict)  # peer -> until when it is avoided
    _next_key: int = 1
    timeouts: int = 0
    retries: int = 0

    def announced(self, feed: str, peer: str, size: int) -> None:
        """``peer`` holds ``size`` entries of ``feed`` (at most ``MAX_PEERS`` peers per feed).

        Peer names are what topics say, not what anyone signed: a client inventing names must
        not grow this table without bound.
        """
        sizes = self.peers.setdefault(feed, {})
        if peer in sizes or len(sizes) < MAX_PEERS:
            sizes[peer] = size

    def forget_peer(self, peer: str) -> None:
        """``peer`` went away (its retained heads were cleared)."""
        for sizes in self.peers.values():
            sizes.pop(peer, None)

    def held(self, feed: str, size: int) -> None:
        """We now hold ``size`` entries of ``feed``."""
        self.local[feed] = size

    def outstanding(self) -> int:
        """Requests sent and not yet answered."""
        return len(self._out)

    def lag(self, feed: str) -> int:
        """Entries of ``feed`` some peer announced that we do not hold."""
        best = max(self.peers.get(feed, {}).values(), default=0)
        return max(0, best - self.local.get(feed, 0))

    def answered(self, key: int) -> Ask | None:
        """The request ``key`` was answered (or failed for good): it no longer counts."""
        out = self._out.pop(key, None)
        return out.ask if out is not None else None

    def failed(self, key: int, now: float) -> None:
        """The peer of request ``key`` could not serve it: ask another one next time."""
        out = self._out.pop(key, None)
        if out is not None:
            self._bad[out.ask.peer] = now + self.penalty
            self.retries += 1

    def progress(self, key: int, now: float) -> Ask | None:
        """Part of the answer to ``key`` arrived: its deadline moves on (a long answer streams)."""
        out = self._out.get(key)
        if out is None:
            return None
        out.deadline = now + self.timeout
        return out.ask

    def plan(self, now: float) -> list[Ask]:
        """Requests to send now (expired ones are retried elsewhere first).

        One request per feed at a time: its answer streams in seq order (docs/reference/sync.md),
        and the next is sent as soon as the last message of the answer arrived, while the caller
        still verifies and stores it.
        """
        for key, out in list(self._out.items()):
            if out.deadline <= now:
                self.timeouts += 1
                self.failed(key, now)
        busy = {o.ask.feed for o in self._out.values()}
        asks: list[Ask] = []
        for feed, sizes in self.peers.items():
            if len(self._out) >= self.in_flight:
                break
            if feed in busy:
                continue
            start = self.local.get(feed, 0)
            holders = [p for p, n in sizes.items() if n > start]
            if not holders:
                continue
            fresh = [p for p in holders if self._bad.get(p, 0.0) <= now] or holders
            load = dict.fromkeys(fresh, 0)
            for o in self._out.values():
                if o.ask.peer in load:
                    load[o.ask.peer] += 1
            peer = min(fresh, key=lambda p: (load[p], -sizes[p], p))
            ask = Ask(self._next_key, feed, start, min(start + self.window, sizes[peer]), peer)
            self._next_key += 1
            self._out[ask.key] = _Outstanding(ask, now + self.timeout)
            asks.append(ask)
        return asks

    def reset(self) -> None:
        """Forget every outstanding request (the session that sent them ended)."""
        self._out.clear()
