"""Back-off for wrong access tokens: the pure core of ``edge serve``'s guessing limit.

Per client address, :data:`LIMIT` *different* wrong tokens within :data:`WINDOW` seconds start a
back-off of :data:`BACKOFF` seconds, during which :class:`edge.web.auth.Access` answers every
request from that address 429 with ``Retry-After`` (the right token too: otherwise the back-off
would not slow a guesser down, who would just learn of a hit later). Different tokens, because
guessing sends a new one each time, while a browser with a stale cookie or a script with an old
token sends the same wrong one again on every request and every image of a page: those keep
getting 403, which tells them what is wrong, and never lock their address out. The numbers and
why: docs/design.md ("The quality office web view").

Pure: every method takes ``now`` (monotonic seconds); not thread-safe (Access holds a lock).
The memory is bounded: at most :data:`MAX_CLIENTS` addresses are remembered; beyond that the
ones with nothing current are forgotten first, then the oldest, counted in ``forgotten``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "BACKOFF", "LIMIT", "MAX_CLIENTS", "WINDOW", "Throttle", "ThrottlePolicy", "retry_after"
]  # fmt: skip

_V = TypeVar("_V")

#: Different wrong tokens from one address that start a back-off ...
LIMIT = 10
#: ... when they fall within this many seconds;
WINDOW = 600.0
#: the back-off then lasts this many seconds.
BACKOFF = 600.0
#: Addresses remembered at most (a guesser with many addresses must not grow the memory).
MAX_CLIENTS = 4096


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """The limit's numbers (the defaults are ``edge serve``'s)."""

    limit: int = LIMIT
    window: float = WINDOW
    backoff: float = BACKOFF
    max_clients: int = MAX_CLIENTS


class Throttle:
    """Wrong tokens per client address, and the addresses backed off."""

    __slots__ = ("_until", "_wrong", "backoffs", "forgotten", "policy")

    def __init__(self, policy: ThrottlePolicy | None = None) -> None:
        self.policy = policy or ThrottlePolicy()
        #: address -> digest of each different wrong token -> when it was last sent
        self._wrong: dict[str, dict[bytes, float]] = {}
        #: address -> end of its back-off
        self._until: dict[str, float] = {}
        self.backoffs = 0  #: back-offs started since the start
        self.forgotten = 0  #: addresses dropped to stay within max_clients

    def wait(self, client: str, now: float) -> float:
        """Seconds ``client`` must still wait (0.0: it is not backed off)."""
        until = self._until.get(client)
        if until is None:
            return 0.0
        if now >= until:
            del self._until[client]
            return 0.0
        return until - now

    def wrong(self, client: str, token: str, now: float) -> bool:
        """``client`` sent the wrong ``token``; True when this starts its back-off."""
        p = self.policy
        seen = self._wrong.get(client)
        if seen is None:
            self._make_room(self._wrong, now, lambda s: max(s.values()) + p.window)
            seen = self._wrong[client] = {}
        seen[hashlib.sha256(token.encode()).digest()[:16]] = now
        for digest in [d for d, at in seen.items() if now - at > p.window]:
            del seen[digest]
        if len(seen) < p.limit:
            return False
        del self._wrong[client]
        self._make_room(self._until, now, lambda until: until)
        self._until[client] = now + p.backoff
        self.backoffs += 1
        return True

    def _make_room(self, table: dict[str, _V], now: float, expiry: Callable[[_V], float]) -> None:
        """Forget an address of ``table`` when it is full: expired ones first, else the oldest."""
        if len(table) < self.policy.max_clients:
            return
        for key in [k for k, v in table.items() if expiry(v) <= now]:
            del table[key]
        while len(table) >= self.policy.max_clients:
            del table[next(iter(table))]  # the longest remembered
            self.forgotten += 1


def retry_after(wait: float) -> str:
    """``Retry-After`` for a wait of ``wait`` seconds (whole seconds, at least 1)."""
    return str(max(1, math.ceil(wait)))
