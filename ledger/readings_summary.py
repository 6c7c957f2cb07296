"""Per-point summaries of raw readings per minute and per hour, kept when the raw data is gone.

Raw readings are pruned by retention and by the disk budget; a control chart over months needs
only, per point and period, how many readings there were and their minimum, maximum, mean and
spread. Each closed block adds its numeric readings of quality ``good`` (ints and floats; bits,
text and readings without a value are not summarised) to the rows of table
``reading_summaries`` (point, seconds, start) -- ``seconds`` 60 or 3600, ``start`` the start of
the period in whole seconds since the epoch (UTC; an integer keeps the row small) -- in the transaction that stores the block, merging with what
earlier blocks put in the same period. A row holds count, min, max, mean and ``m2`` (the sum of
squared differences from the mean), merged by Chan et al.'s pairwise update, which stays exact
where sums of squares cancel (a 500 g fill weight varying by 0.1 g). Pruning never touches
them. Pure here: :func:`summarize` takes the items; the SQL is :data:`UPSERT`.
"""

from __future__ import annotations

from collections.abc import Iterable

from edge.ledger.readings_codec import Item

__all__ = ["PERIODS", "UPSERT", "SummaryRow", "summarize"]

#: (point, seconds, start in epoch seconds, count, min, max, mean, m2)
SummaryRow = tuple[str, int, int, int, float, float, float, float]
#: The summary periods, in seconds: a minute and an hour (each a multiple of the first:
#: summarize() relies on it).
PERIODS = (60, 3600)

#: Merge one block's summary row into the stored one (SET reads the row's old values).
UPSERT = """
INSERT INTO reading_summaries(point, seconds, start, count, vmin, vmax, mean, m2)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(point, seconds, start) DO UPDATE SET
    count = count + excluded.count,
    vmin = min(vmin, excluded.vmin),
    vmax = max(vmax, excluded.vmax),
    mean = mean + (excluded.mean - mean) * excluded.count / (count + excluded.count),
    m2 = m2 + excluded.m2
        + (excluded.mean - mean) * (excluded.mean - mean) * count * excluded.count
          / (count + excluded.count)
"""


def summarize(items: Iterable[Item]) -> tuple[SummaryRow, ...]:
    """The summary rows of one block's readings (Welford's update per point and period).

    Each row's updates run in arrival order, as one loop over the block would run them, so the
    floats are the same to the bit; but per point, with the running figures in locals while a
    point stays in one period (the common case: a block covers seconds), not a dictionary
    look-up per reading and period.
    """
    by_point: dict[str, list[tuple[int, float]]] = {}
    for point, _unit, micros, value, quality in items:
        kind = type(value)
        if quality != "good" or (kind is not float and kind is not int):
            continue
        samples = by_point.get(point)
        if samples is None:
            samples = by_point[point] = []
        samples.append((micros // 1_000_000, float(value)))
    acc: dict[tuple[str, int, int], list[float]] = {}
    for point, samples in by_point.items():
        moved = True  # did the readings of the point leave the first period (a minute)?
        first: list[float] = []
        for period in PERIODS:
            key: tuple[str, int, int] | None = None
            a: list[float] = []
            n = low = high = mean = m2 = 0.0
            if period != PERIODS[0] and not moved:
                # Every reading of the point fell in one minute, so in one hour too (each
                # period a multiple of the first): the hour's run would repeat the minute's
                # updates in the same order from the same fresh start, the same floats. Most
                # blocks (seconds long) are such; half the cost of summarising them.
                second = samples[0][0]
                acc[(point, period, second - second % period)] = list(first)
                continue
            moved = period != PERIODS[0]
            for second, x in samples:
                start = second - second % period
                if key is None or start != key[2]:
                    if key is not None:  # leaving a period: keep its figures
                        moved = True
                        a[:] = (n, low, high, mean, m2)
                    key = (point, period, start)
                    found = acc.get(key)
                    if found is None:  # the period's first reading
                        acc[key] = a = [1.0, x, x, x, 0.0]
                        n, low, high, mean, m2 = a
                        continue
                    a = found
                    n, low, high, mean, m2 = a
                n += 1.0
                delta = x - mean
                mean += delta / n
                if x < low:
                    low = x
                if x > high:
                    high = x
                m2 += delta * (x - mean)
            if key is not None:
                a[:] = (n, low, high, mean, m2)
            if period == PERIODS[0]:
                first = a
    return tuple(
        (point, period, start, int(a[0]), a[1], a[2], a[3], a[4])
        for (point, period, start), a in sorted(acc.items())
    )
