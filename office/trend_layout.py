"""Drawing a :class:`~edge.office.trend.TrendData` as SVG: the X-bar panel over the S panel.

The X-bar panel: the min/max band of each stretch of consecutive subgroups (a filled polygon,
``polyline.band``), the means (``polyline.means``), the centre line (``line.center``) and the
X-bar limits as one horizontal segment per run of subgroups of equal size
(``line.ucl``/``line.lcl`` with ``data-value`` and ``data-n``: one segment when every hour holds
as many readings), and each mean beyond its limits as ``circle.beyond`` (``data-start``,
``data-mean``). The S panel: the standard deviations (``polyline.stds``) and
``line.s-center``/``line.s-ucl``/``line.s-lcl``, per run the same way. The x axis is time (a gap in the data is a gap in
the lines), labelled in the site's zone. Shapes come from :mod:`edge.office.layout`, written by
:mod:`edge.office.svg`, like the lot charts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import tzinfo

from edge.office.layout import (
    CENTER,
    CONTROL,
    DATA,
    GRID,
    INK,
    SIGNAL,
    Figure,
    Group,
    Shape,
    local_time,
    nice_ticks,
)
from edge.office.numbers import fmt_number
from edge.office.svg import figure_svg
from edge.office.trend import TrendData

__all__ = ["trend_figure", "trend_svg"]

_BAND = "#aec7e8"
_LEFT, _RIGHT_PAD = 64.0, 40.0


def _scale(lo: float, hi: float, a: float, b: float) -> Callable[[float], float]:
    span = hi - lo or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _bounds(values: Sequence[float | None]) -> tuple[float, float]:
    finite = [v for v in values if v is not None]
    lo, hi = min(finite), max(finite)
    if lo == hi:
        lo, hi = lo - (abs(lo) * 0.05 or 1.0), hi + (abs(hi) * 0.05 or 1.0)
    pad = (hi - lo) * 0.06
    return lo - pad, hi + pad


def _stretches(data: TrendData) -> list[range]:
    """Runs of subgroups without a gap (a missing period breaks the line)."""
    out: list[range] = []
    first = 0
    for i in range(1, len(data.epochs) + 1):
        if i == len(data.epochs) or data.epochs[i] - data.epochs[i - 1] > 1.5 * data.seconds:
            out.append(range(first, i))
            first = i
    return out


def _limit_runs(
    data: TrendData, limits: tuple[float | None, ...], x: Callable[[float], float],
    y: Callable[[float], float], cls: str, colour: str,
) -> list[Shape]:  # fmt: skip
    """One horizontal segment per run of subgroups with the same size (hence the same limit)."""
    out: list[Shape] = []
    i, n = 0, len(limits)
    while i < n:
        value = limits[i]
        if value is None:
            i += 1
            continue
        j = i
        while j + 1 < n and data.counts[j + 1] == data.counts[i] and limits[j + 1] is not None:
            j += 1
        x0, x1 = x(data.epochs[i]), x(data.epochs[j] + data.seconds)
        out.append(
            Shape("line", (x0, y(value), x1, y(value)), cls, colour, None, 1.2, (6.0, 3.0),
                  data=(("value", repr(value)), ("n", str(data.counts[i]))))
        )  # fmt: skip
        i = j + 1
    return out


def _time_axis(
    lo: float, hi: float, x: Callable[[float], float], top: float, bottom: float,
    tz: tzinfo | None,
) -> list[Shape]:  # fmt: skip
    from edge.ledger.readings_codec import format_micros

    out: list[Shape] = []
    day = hi - lo > 3 * 86400
    for k in range(6):
        t = lo + (hi - lo) * k / 5
        px = x(t)
        out.append(Shape("line", (px, top, px, bottom), "grid", GRID, None, 0.5))
        ts = format_micros(round(t * 1e6))
        label = local_time(ts, tz, "%Y-%m-%d" if day else "%m-%d %H:%M")
        out.append(Shape("text", (px, bottom + 14), "label", None, INK, text=label,
                         anchor="middle", size=9.5))  # fmt: skip
    return out


def _y_axis(
    lo: float, hi: float, y: Callable[[float], float], left: float, right: float,
    fmt: Callable[[float], str],
) -> list[Shape]:  # fmt: skip
    out: list[Shape] = []
    for t in nice_ticks(lo, hi):
        out.append(Shape("line", (left, y(t), right, y(t)), "grid", GRID, None, 0.5))
        out.append(Shape("text", (left - 4, y(t) + 3.5), "label", None, INK, text=fmt(t),
                         anchor="end", size=9.5))  # fmt: skip
    return out


def _frame(left: float, right: float, top: float, bottom: float, title: str) -> list[Shape]:
    return [
        Shape("rect", (left, top, right - left, bottom - top), "frame", "#999999", None, 0.8),
        Shape("text", (left, top - 6), "panel-title", None, INK, text=title, size=9.5),
    ]


def trend_figure(
    data: TrendData,
    since: float,
    until: float,
    *,
    resolution: float | None = None,
    width: int = 1000,
    tz: tzinfo | None = None,
) -> Figure:
    """Lay out ``data`` over ``[since, until)`` (epoch s): X-bar panel, S panel under it."""
    left, right = _LEFT, float(width) - _RIGHT_PAD
    x = _scale(since, until, left, right)
    stat: Callable[[float], str] = lambda v: fmt_number(v, resolution, stat=True)  # noqa: E731
    period = "hour" if data.seconds == 3600 else "minute"
    head = (
        f"{data.point}: {len(data.starts):,} {period}s, {data.readings:,} readings; "
        f"centre {stat(data.grand_mean)}"
        + (f", sigma within {stat(data.sigma)}" if data.sigma is not None else ", no spread")
    )
    title = Shape("text", (left, 16), "chart-title", None, INK, text=head, size=11)

    top, bottom = 40.0, 300.0
    lo, hi = _bounds([*data.mins, *data.maxs, *data.ucl, *data.lcl])
    y = _scale(lo, hi, bottom, top)
    xbar: list[Shape | Group] = [
        *_frame(left, right, top, bottom, f"{period} means, min-max band, X-bar limits")
    ]
    xbar += _y_axis(lo, hi, y, left, right, stat)
    xbar += _time_axis(since, until, x, top, bottom, tz)
    for run in _stretches(data):
        upper = [c for i in run for c in (x(data.epochs[i] + data.seconds / 2), y(data.maxs[i]))]
        lower = [
            c
            for i in reversed(run)
            for c in (x(data.epochs[i] + data.seconds / 2), y(data.mins[i]))
        ]
        xbar.append(Shape("polyline", (*upper, *lower), "band", None, _BAND, opacity=0.6))
        means = [c for i in run for c in (x(data.epochs[i] + data.seconds / 2), y(data.means[i]))]
        if len(run) == 1:  # a lone subgroup: a dot, a polyline of one point draws nothing
            xbar.append(Shape("circle", (means[0], means[1], 2.0), "means", None, DATA))
        else:
            xbar.append(Shape("polyline", tuple(means), "means", DATA, None, 1.2))
    xbar.append(
        Shape("line", (left, y(data.grand_mean), right, y(data.grand_mean)), "center", CENTER,
              None, 1.2, data=(("value", repr(data.grand_mean)),))
    )  # fmt: skip
    xbar += _limit_runs(data, data.ucl, x, y, "ucl", CONTROL)
    xbar += _limit_runs(data, data.lcl, x, y, "lcl", CONTROL)
    for i in data.beyond:
        xbar.append(
            Shape("circle", (x(data.epochs[i] + data.seconds / 2), y(data.means[i]), 3.0),
                  "beyond", None, SIGNAL, data=(("start", data.starts[i]),
                                                ("mean", repr(data.means[i]))),
                  title=f"{data.starts[i]}: mean {stat(data.means[i])} beyond its limits")
        )  # fmt: skip

    s_top, s_bottom = 340.0, 460.0
    s_values = [*data.stds, *(v for v in data.s_ucl if v is not None)]
    s_lo, s_hi = _bounds([0.0, *s_values])
    sy = _scale(s_lo, s_hi, s_bottom, s_top)
    spanel: list[Shape | Group] = [
        *_frame(left, right, s_top, s_bottom, f"{period} standard deviations, S limits")
    ]
    spanel += _y_axis(s_lo, s_hi, sy, left, right, stat)
    for run in _stretches(data):
        pts = [c for i in run for c in (x(data.epochs[i] + data.seconds / 2), sy(data.stds[i]))]
        if len(run) > 1:
            spanel.append(Shape("polyline", tuple(pts), "stds", DATA, None, 1.0))
    spanel += _limit_runs(data, data.s_center, x, sy, "s-center", CENTER)
    spanel += _limit_runs(data, data.s_ucl, x, sy, "s-ucl", CONTROL)
    spanel += _limit_runs(data, data.s_lcl, x, sy, "s-lcl", CONTROL)
    root = Group("trend", (title, Group("xbar", tuple(xbar)), Group("s-chart", tuple(spanel))))
    return Figure(float(width), 490.0, root, head)


def trend_svg(
    data: TrendData,
    since: float,
    until: float,
    *,
    resolution: float | None = None,
    width: int = 1000,
    tz: tzinfo | None = None,
) -> str:
    """The trend chart as ``<svg class="trend-chart" data-point data-grand-mean data-sigma>``."""
    figure = trend_figure(data, since, until, resolution=resolution, width=width, tz=tz)
    meta = (
        ("point", data.point),
        ("seconds", str(data.seconds)),
        ("subgroups", str(len(data.starts))),
        ("grand-mean", repr(data.grand_mean)),
        ("sigma", "" if data.sigma is None else repr(data.sigma)),
        ("beyond", str(len(data.beyond))),
    )
    return figure_svg(figure, "trend-chart", meta)
