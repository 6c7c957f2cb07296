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
#: The summary periods, in seconds: a minute and an hour.
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
    """The summary rows of one block's readings (Welford's update per point and period)."""
    acc: dict[tuple[str, int, int], list[float]] = {}
    for point, _unit, micros, value, quality in items:
        kind = type(value)
        if quality != "good" or (kind is not float and kind is not int):
            continue
        x = float(value)
        second = micros // 1_000_000
        for period in PERIODS:
            key = (point, period, second - second % period)
            a = acc.get(key)
            if a is None:
                acc[key] = [1.0, x, x, x, 0.0]
                continue
            n = a[0] + 1.0
            delta = x - a[3]
            mean = a[3] + delta / n
            a[0] = n
            a[1] = min(a[1], x)
            a[2] = max(a[2], x)
            a[4] += delta * (x - mean)
            a[3] = mean
    return tuple(
        (point, period, start, int(a[0]), a[1], a[2], a[3], a[4])
        for (point, period, start), a in sorted(acc.items())
    )
