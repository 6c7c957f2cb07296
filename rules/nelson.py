"""Nelson / Western Electric run rules 1-8, streaming (one point at a time) and vectorised.

Both forms return, per point, a bit mask: bit ``k - 1`` set when rule ``k`` signals on the
window that *ends* at that point. They compare each value against the same precomputed zone
lines (``center +- k * sigma``, computed once by :class:`Zones`), so they agree bit for bit.

Conventions (implementations disagree on these; ours, from ``shared/vectors/spc/SOURCE.md``):

1. one point beyond 3 sigma: ``x > center + 3s`` or ``x < center - 3s`` (exactly on the line
   is not beyond);
2. nine points in a row strictly on one side of the centre line; a point exactly on the centre
   line breaks the run;
3. six points in a row steadily rising or falling (five consecutive strict rises/falls); a tie
   breaks the run;
4. fourteen points in a row alternating up and down (thirteen consecutive differences with
   alternating sign); a tie breaks the run;
5. two of three consecutive points beyond 2 sigma on the same side (points beyond 3 sigma
   count);
6. four of five consecutive points beyond 1 sigma on the same side (points beyond 2 and 3 sigma
   count);
7. fifteen points in a row strictly within 1 sigma of the centre line (a point exactly at 1 sigma
   is not within);
8. eight points in a row strictly beyond 1 sigma, with points on both sides among them.

Before a window is full (fewer than 3 points for rule 5, 5 for rule 6) the window is the points
seen so far: two first points both beyond 2 sigma already signal rule 5.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the vectorised twin (replay, charts) imports numpy when it runs
    import numpy as np
    import numpy.typing as npt

    BoolArray = npt.NDArray[np.bool_]

__all__ = ["RULE_NAMES", "NelsonState", "Zones", "mask_of", "nelson_flags", "rules_in"]

RULE_NAMES: dict[int, str] = {
    1: "1 point beyond 3 sigma",
    2: "9 points on one side of the centre line",
    3: "6 points steadily rising or falling",
    4: "14 points alternating up and down",
    5: "2 of 3 points beyond 2 sigma on one side",
    6: "4 of 5 points beyond 1 sigma on one side",
    7: "15 points within 1 sigma",
    8: "8 points beyond 1 sigma on both sides",
}


def mask_of(rules: Iterable[int]) -> int:
    """Bit mask selecting the given rule numbers (1..8)."""
    mask = 0
    for k in rules:
        if not 1 <= k <= 8:
            raise ValueError(f"no Nelson rule {k}")
        mask |= 1 << (k - 1)
    return mask


def rules_in(mask: int) -> tuple[int, ...]:
    """Rule numbers whose bit is set in ``mask``."""
    return tuple(k for k in range(1, 9) if mask & (1 << (k - 1)))


@dataclass(frozen=True, slots=True)
class Zones:
    """The zone lines of a chart, computed once so both evaluation forms compare against them."""

    center: float
    lo1: float
    hi1: float
    lo2: float
    hi2: float
    lo3: float
    hi3: float

    @classmethod
    def of(cls, center: float, sigma: float) -> Zones:
        """Zones ``center +- k * sigma`` for k = 1, 2, 3."""
        return cls(
            center=center,
            lo1=center - 1 * sigma,
            hi1=center + 1 * sigma,
            lo2=center - 2 * sigma,
            hi2=center + 2 * sigma,
            lo3=center - 3 * sigma,
            hi3=center + 3 * sigma,
        )


class NelsonState:
    """Running counters for the streaming form (mutable; one per SPC rule).

    Attributes:
        prev: the previous value, None before the first.
        side, side_run: side of the centre line of the current run (+1/-1/0) and its length.
        dir, trend, alt: direction of the last difference (+1/-1/0), the length of the current
            same-direction run of differences, and of the current alternating run.
        h2, l2, h1, l1: the last 8 points' "beyond +2s / -2s / +1s / -1s" flags as bits
            (bit 0 = the newest point).
        within: length of the current run of points within 1 sigma.
        beyond: length of the current run of points beyond 1 sigma.
    """

    __slots__ = (
        "alt",
        "beyond",
        "dir",
        "h1",
        "h2",
        "l1",
        "l2",
        "prev",
        "side",
        "side_run",
        "trend",
        "within",
    )

    def __init__(self) -> None:
        self.prev: float | None = None
        self.side = 0
        self.side_run = 0
        self.dir = 0
        self.trend = 0
        self.alt = 0
        self.h2 = self.l2 = self.h1 = self.l1 = 0
        self.within = 0
        self.beyond = 0

    def to_list(self) -> list[float | int | None]:
        """Plain data for persistence."""
        return [getattr(self, name) for name in self.__slots__]

    @classmethod
    def from_list(cls, data: list[float | int | None]) -> NelsonState:
        """Inverse of :meth:`to_list`."""
        st = cls()
        for name, value in zip(cls.__slots__, data, strict=True):
            setattr(st, name, value)
        return st

    def push(self, x: float, z: Zones, select: int = 0xFF) -> int:
        """Add one point; return the mask of the rules in ``select`` signalling at it.

        Counters that only unselected rules read are not kept up to date (a rule's selection
        never changes during the life of its state).
        """
        mask = 0
        if select & 1 and (x > z.hi3 or x < z.lo3):
            mask = 1
        if select & 2:  # run on one side of the centre
            side = 1 if x > z.center else (-1 if x < z.center else 0)
            if side != 0 and side == self.side:
                self.side_run += 1
            else:
                self.side_run = 1 if side != 0 else 0
            self.side = side
            if self.side_run >= 9:
                mask |= 2
        if select & 12:  # rules 3 and 4: direction of the difference to the previous point
            prev = self.prev
            d = 0 if prev is None else (1 if x > prev else (-1 if x < prev else 0))
            if d != 0 and d == self.dir:
                self.trend += 1
            else:
                self.trend = 1 if d != 0 else 0
            if d != 0 and d == -self.dir:
                self.alt += 1
            else:
                self.alt = 1 if d != 0 else 0
            self.dir = d
            self.prev = x
            if self.trend >= 5 and select & 4:
                mask |= 4
            if self.alt >= 13 and select & 8:
                mask |= 8
        if select & 16:  # short windows kept as bit histories (bit 0 = newest point)
            h2 = self.h2 = ((self.h2 << 1) | (x > z.hi2)) & 0xFF
            l2 = self.l2 = ((self.l2 << 1) | (x < z.lo2)) & 0xFF
            if (h2 & 7).bit_count() >= 2 or (l2 & 7).bit_count() >= 2:
                mask |= 16
        if select & 224:  # rules 6, 7, 8: one-sigma zone
            h1 = self.h1 = ((self.h1 << 1) | (x > z.hi1)) & 0xFF
            l1 = self.l1 = ((self.l1 << 1) | (x < z.lo1)) & 0xFF
            if select & 32 and ((h1 & 31).bit_count() >= 4 or (l1 & 31).bit_count() >= 4):
                mask |= 32
            if z.lo1 < x < z.hi1:
                self.within += 1
                self.beyond = 0
            else:
                self.within = 0
                # exactly on a 1-sigma line is neither within nor beyond
                self.beyond = self.beyond + 1 if (h1 | l1) & 1 else 0
            if self.within >= 15 and select & 64:
                mask |= 64
            if self.beyond >= 8 and h1 and l1 and select & 128:
                mask |= 128
        return mask


def _run_length(b: BoolArray, idx: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """Length of the run of True ending at each index (0 where False)."""
    import numpy as np

    last_false = np.maximum.accumulate(np.where(b, np.int32(-1), idx))
    return idx - last_false


def _window_count(b: BoolArray, k: int) -> npt.NDArray[np.int32]:
    """Number of True among the last ``k`` entries ending at each index (shorter at the start)."""
    import numpy as np

    c = np.cumsum(b, dtype=np.int32)
    out = c.copy()
    out[k:] -= c[:-k]
    return out


def nelson_flags(values: npt.ArrayLike, zones: Zones, select: int = 0xFF) -> npt.NDArray[np.uint8]:
    """Masks of the rules in ``select`` at every point (vectorised twin of ``push``).

    Rules not selected are not computed (their bits stay 0).
    """
    import numpy as np

    x = np.asarray(values, dtype=np.float64)
    n = x.size
    out = np.zeros(n, dtype=np.uint8)
    if n == 0:
        return out
    idx = np.arange(n, dtype=np.int32)

    def put(rule: int, flags: BoolArray) -> None:
        out[:] |= flags.view(np.uint8) << np.uint8(rule - 1)

    if select & 1:
        put(1, (x > zones.hi3) | (x < zones.lo3))
    if select & 2:
        hi = x > zones.center
        lo = x < zones.center
        put(2, (_run_length(hi, idx) >= 9) | (_run_length(lo, idx) >= 9))
    if select & (4 | 8):
        up = np.zeros(n, dtype=np.bool_)
        down = np.zeros(n, dtype=np.bool_)
        up[1:] = x[1:] > x[:-1]
        down[1:] = x[1:] < x[:-1]
        if select & 4:
            put(3, (_run_length(up, idx) >= 5) | (_run_length(down, idx) >= 5))
        if select & 8:
            flip = np.zeros(n, dtype=np.bool_)
            flip[2:] = (up[2:] & down[1:-1]) | (down[2:] & up[1:-1])
            alt = np.where(up | down, 1 + _run_length(flip, idx), 0)
            put(4, alt >= 13)
    if select & 16:
        h2, l2 = x > zones.hi2, x < zones.lo2
        put(5, (_window_count(h2, 3) >= 2) | (_window_count(l2, 3) >= 2))
    if select & (32 | 128):
        h1, l1 = x > zones.hi1, x < zones.lo1
        if select & 32:
            put(6, (_window_count(h1, 5) >= 4) | (_window_count(l1, 5) >= 4))
        if select & 128:
            r8 = (
                (_run_length(h1 | l1, idx) >= 8)
                & (_window_count(h1, 8) > 0)
                & (_window_count(l1, 8) > 0)
            )
            put(8, r8)
    if select & 64:
        within = (x > zones.lo1) & (x < zones.hi1)
        put(7, _run_length(within, idx) >= 15)
    return out
