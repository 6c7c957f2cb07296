"""How long the event loop could not run: for timing assertions on a shared, loaded machine.

A poller keeps its deadlines only while its process gets the CPU. On a loaded machine (or with
the simulator thread holding the GIL) the whole event loop stalls now and then, and every task in
it is late by the same amount; that is not the poller serving one device at the cost of another.
:class:`StallMonitor` runs beside the poller, sleeps ``tick`` seconds at a time and records each
wake-up that came later than ``slack`` past its due time. A timing bound is then checked on the
time the loop *could* run: an interval minus the stalls inside it.

It cannot hide what the tests look for: a poller that waits out a dead device's backoff, or serves
one device while another is due, waits with the loop free to run, so this monitor sees no stall.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from dataclasses import dataclass, field


@dataclass
class StallMonitor:
    tick: float = 0.01
    slack: float = 0.002
    #: (monotonic time the loop ran again, seconds it was late), in time order
    stalls: list[tuple[float, float]] = field(default_factory=list)
    _ends: list[float] = field(default_factory=list)

    async def run(self) -> None:
        """Record stalls until cancelled."""
        while True:
            due = time.monotonic() + self.tick
            await asyncio.sleep(self.tick)
            now = time.monotonic()
            if now - due > self.slack:
                self.stalls.append((now, now - due))
                self._ends.append(now)

    def within(self, start: float, end: float) -> float:
        """Seconds of stall that ended in ``(start, end]``."""
        lo = bisect.bisect_right(self._ends, start)
        hi = bisect.bisect_right(self._ends, end)
        return sum(lag for _, lag in self.stalls[lo:hi])

    def total(self) -> float:
        return sum(lag for _, lag in self.stalls)
