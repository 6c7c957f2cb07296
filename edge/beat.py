"""Housekeeping that rides on the wake-ups a node has anyway.

At a slow poll a gateway's CPU goes less to the node's code than to waking up: each time the
event loop leaves ``epoll_wait`` the kernel switches to it and the interpreter's code and data
come back into the caches, a few hundred microseconds on the build machine's virtual cores
for a wake-up that then runs a 20 microsecond callback (docs/design.md, "Where the CPU goes").
Housekeeping that must run about once a second but not at an exact moment -- the rule-file
watch, the MQTT client's keepalive check -- therefore waits on a :class:`Beat`: the rules task
calls :meth:`Beat.pulse` after each poll's readings, and a waiter whose ``earliest`` time has
passed runs in that burst. Its own timer (``latest``) only fires when no poll comes in time
(the buses are down or poll slowly).
"""

from __future__ import annotations

import asyncio
import math

__all__ = ["Beat"]


def _release(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Beat:
    """Wake waiters in a burst the node is awake for anyway, or at their latest time.

    One per event loop; not thread-safe (every method runs on the loop).
    """

    __slots__ = ("_next", "_waiters")

    def __init__(self) -> None:
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []
        self._next = math.inf  # the earliest loop time at which a waiter may go

    def pulse(self, now: float) -> None:
        """The node is awake (``now``: the loop's time): release the waiters that may go."""
        if now < self._next:
            return
        keep: list[tuple[float, asyncio.Future[None]]] = []
        for at, future in self._waiters:
            if at <= now:
                _release(future)
            elif not future.done():
                keep.append((at, future))
        self._waiters = keep
        self._next = min((at for at, _ in keep), default=math.inf)

    async def sleep(self, earliest: float, latest: float) -> None:
        """Return at the first pulse ``earliest`` seconds from now or later; at most ``latest``."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        future: asyncio.Future[None] = loop.create_future()
        at = now + earliest
        self._waiters.append((at, future))
        self._next = min(self._next, at)
        handle = loop.call_at(now + max(earliest, latest), _release, future)
        try:
            await future
        finally:
            handle.cancel()
            if not future.done():  # cancelled: forget it (pulse drops done ones too)
                future.cancel()
