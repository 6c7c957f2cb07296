"""Drawing a control chart as plain shapes, once, for every output (SVG in pages, PDF).

:func:`chart_figure` lays out the individuals chart, the moving-range chart under it and the
histogram as :class:`Shape` and :class:`Group` values in pixel coordinates (y down, as in SVG).
:mod:`edge.office.svg` writes them as SVG elements (classes and ``data-*`` attributes a browser
test can find); :mod:`edge.office.pdf` draws the same shapes with ReportLab. One layout, two
renderers: the PDF shows exactly the chart the web page shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from edge.office.chart import ChartData, rule_title
from edge.office.numbers import fmt_number

__all__ = ["Figure", "Group", "Shape", "chart_figure", "local_time", "nice_ticks"]

# colours (also used by the PDF renderer): data, centre, control limits, spec limits, signals
DATA = "#1f4e79"
CENTER = "#2e7d32"
CONTROL = "#d35400"
SPEC = "#b03a2e"
SIGNAL = "#c0392b"
ALARM = "#f5b7b1"
GRID = "#dddddd"
INK = "#333333"


@dataclass(frozen=True, slots=True)
class Shape:
    """One drawn element.

    ``coords``: line ``x1 y1 x2 y2``; polyline ``x y x y ...``; rect ``x y w h``; circle
    ``cx cy r``; text ``x y``. ``data`` becomes ``data-*`` attributes in SVG.
    """

    kind: str
    coords: tuple[float, ...]
    cls: str = ""
    stroke: str | None = None
    fill: str | None = None
    width: float = 1.0
    dash: tuple[float, ...] = ()
    text: str = ""
    anchor: str = "start"
    size: float = 10.0
    opacity: float = 1.0
    data: tuple[tuple[str, str], ...] = ()
    title: str = ""


@dataclass(frozen=True, slots=True)
class Group:
    """Shapes that belong together (a chart panel, one Nelson hit)."""

    cls: str
    children: tuple[Shape | Group, ...]
    data: tuple[tuple[str, str], ...] = ()
    title: str = ""


@dataclass(frozen=True, slots=True)
class Figure:
    """A whole chart: its size in pixels and its shapes."""

    width: float
    height: float
    root: Group
    title: str


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round values (1, 2, 5 times a power of ten) spanning ``lo``..``hi``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    k = 0
    while first + k * step <= hi + step * 1e-9:
        ticks.append(round(first + k * step, 12))
        k += 1
    return ticks


def local_time(ts: str, tz: tzinfo | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A stored UTC time (``2026-11-23T10:00:00.000000Z``) in ``tz`` (None: UTC), as ``fmt``."""
    try:
        when = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return ts
    if tz is not None:
        when = when.astimezone(tz)
    return when.strftime(fmt)


Scale = Callable[[float], float]


def _scale(lo: float, hi: float, a: float, b: float) -> Scale:
    """Map ``lo..hi`` onto ``a..b`` (pixels; ``b < a`` for a y axis)."""
    span = hi - lo or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _range(values: Sequence[float | None], pad: float = 0.06) -> tuple[float, float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    lo, hi = min(finite), max(finite)
    if lo == hi:
        lo, hi = lo - (abs(lo) * 0.05 or 1.0), hi + (abs(hi) * 0.05 or 1.0)
    margin = (hi - lo) * pad
    return lo - margin, hi + margin


def _hline(
    y: float, x0: float, x1: float, cls: str, colour: str, value: float, dash: tuple[float, ...]
) -> Shape:
    return Shape(
        "line", (x0, y, x1, y), cls, colour, None, 1.2, dash, data=(("value", repr(value)),)
    )


def _label(x: float, y: float, text: str, colour: str = INK, anchor: str = "start") -> Shape:
    return Shape("text", (x, y + 3.5), "label", None, colour, text=text, anchor=anchor, size=9.5)


def _y_axis(
    ticks: list[float], y: Scale, x0: float, x1: float, fmt: Callable[[float], str]
) -> list[Shape]:
    out: list[Shape] = []
    for t in ticks:
        out.append(Shape("line", (x0, y(t), x1, y(t)), "grid", GRID, None, 0.5))
        out.append(_label(x0 - 4, y(t), fmt(t), INK, "end"))
    return out


@dataclass(frozen=True, slots=True)
class _Plot:
    """What every panel of one chart shares: the data, the x axis, how numbers are written."""

    data: ChartData
    left: float
    right: float
    resolution: float | None
    tz: tzinfo | None

    def x(self, index: float) -> float:
        """The x of reading ``index`` (readings are spaced evenly, as on a run chart)."""
        n = self.data.count
        return self.left + (self.right - self.left) * (index / (n - 1) if n > 1 else 0.5)

    def val(self, v: float) -> str:
        """A reading, to the point's resolution."""
        return fmt_number(v, self.resolution)

    def stat(self, v: float) -> str:
        """A statistic of the point (limit, mean, sigma): one decimal more."""
        return fmt_number(v, self.resolution, stat=True)

    @property
    def unit(self) -> str:
        """`` g`` (a space and the unit), or nothing."""
        return f" {self.data.unit}" if self.data.unit else ""

    def frame(self, top: float, bottom: float, title: str = "") -> list[Shape | Group]:
        """A panel's border and, above it, its title."""
        out: list[Shape | Group] = [
            Shape("rect", (self.left, top, self.right - self.left, bottom - top), "frame",
                  "#999999", None, 0.8)
        ]  # fmt: skip
        if title:
            out.append(Shape("text", (self.left, top - 6), "panel-title", None, INK, text=title,
                             size=9.5))  # fmt: skip
        return out


def _nelson_marks(plot: _Plot, y: Scale) -> list[Shape | Group]:
    """One ``g.nelson-hit`` per rule per signalling reading; a run's number at its start only."""
    out: list[Shape | Group] = []
    last_hit: dict[int, int] = {}  # rule -> index of its previous hit
    for hit in plot.data.hits:
        cx, cy = plot.x(hit.index), y(hit.value)
        for k, rule in enumerate(hit.rules):
            marks: tuple[Shape, ...] = (Shape("circle", (cx, cy, 4.0), "", SIGNAL, None, 1.3),)
            # a run signals at each of its points: its number once, at the run's first point
            if last_hit.get(rule) != hit.index - 1:
                at = (cx, cy - 7 - 9 * k)
                marks += (Shape("text", at, "", None, SIGNAL, text=str(rule), anchor="middle",
                                size=8.5),)  # fmt: skip
            last_hit[rule] = hit.index
            data = (("rule", str(rule)), ("index", str(hit.index)), ("ts", hit.ts),
                    ("value", repr(hit.value)))  # fmt: skip
            title = f"{rule_title(rule)} at {hit.ts} ({plot.val(hit.value)}{plot.unit})"
            out.append(Group("nelson-hit", marks, data, title))
    return out


def _individuals(plot: _Plot, top: float, bottom: float) -> Group:
    """The individuals chart: readings, zones, control and spec limits, signals, alarms."""
    data, lim, spec = plot.data, plot.data.limits, plot.data.spec
    left, right = plot.left, plot.right
    bounds: list[float | None] = [data.minimum, data.maximum, spec.low, spec.high]
    if lim is not None:
        bounds += [lim.ucl, lim.lcl]
    lo, hi = _range(bounds)
    y = _scale(lo, hi, bottom, top)
    out = plot.frame(top, bottom)
    out += _y_axis(nice_ticks(lo, hi), y, left, right, plot.val)
    for alarm, (i0, i1) in zip(data.alarms, data.alarm_spans, strict=True):
        x0, x1 = plot.x(i0), plot.x(i1)
        out.append(
            Shape(
                "rect",
                (x0, top, max(2.0, x1 - x0), bottom - top),
                "alarm-period",
                None,
                ALARM,
                opacity=0.55,
                data=(("rule", alarm.rule), ("start", alarm.start), ("end", alarm.end or "")),
                title=f"alarm {alarm.rule} ({alarm.severity}): "
                f"{alarm.start} .. {alarm.end or 'still active'}",
            )
        )
    if lim is not None:
        for k in (1, 2):
            for v in lim.zone(k):
                out.append(
                    Shape("line", (left, y(v), right, y(v)), "zone", GRID, None, 0.8, (2, 3))
                )
        for cls, v, colour, dash, name in (
            ("ucl", lim.ucl, CONTROL, (5.0, 3.0), "UCL"),
            ("center", lim.center, CENTER, (), "CL"),
            ("lcl", lim.lcl, CONTROL, (5.0, 3.0), "LCL"),
        ):
            out.append(_hline(y(v), left, right, cls, colour, v, dash))
            out.append(_label(right + 4, y(v), f"{name} {plot.stat(v)}", colour))
    for cls, limit, name in (("usl", spec.high, "USL"), ("lsl", spec.low, "LSL")):
        if limit is not None:
            out.append(_hline(y(limit), left, right, cls, SPEC, limit, (8.0, 2.0, 2.0, 2.0)))
            shift = 10 if cls == "lsl" else -10  # clear of a control limit close by
            out.append(_label(right + 4, y(limit) + shift, f"{name} {plot.val(limit)}", SPEC))
    coords: list[float] = []
    for i in data.shown:
        coords += (round(plot.x(float(i)), 2), round(y(float(data.values[i])), 2))
    out.append(Shape("polyline", tuple(coords), "series", DATA, None, 1.0,
                     data=(("count", str(len(data.shown))),)))  # fmt: skip
    if data.count <= 200:  # few points: a dot each, as on paper
        for i in data.shown:
            at = (plot.x(float(i)), y(float(data.values[i])), 1.8)
            out.append(Shape("circle", at, "reading", None, DATA))
    out += _nelson_marks(plot, y)
    return Group("individuals", tuple(out))


def _moving_range(plot: _Plot, top: float, bottom: float) -> Group:
    """The moving-range chart under it, with MR-bar, its UCL and the time axis."""
    data, lim = plot.data, plot.data.limits
    left, right = plot.left, plot.right
    mr_values = [data.moving_range(int(i)) for i in data.mr_shown]
    mr_hi = max([*mr_values, lim.mr_ucl if lim is not None else 0.0, 0.0])
    _, mr_top = _range([0.0, mr_hi or 1.0], pad=0.08)
    y = _scale(0.0, mr_top, bottom, top)
    out = plot.frame(top, bottom, "moving range")
    out += _y_axis(nice_ticks(0.0, mr_top, 3), y, left, right, plot.stat)
    if lim is not None:
        out.append(_hline(y(lim.mr_bar), left, right, "mr-center", CENTER, lim.mr_bar, ()))
        out.append(_label(right + 4, y(lim.mr_bar), f"MR {plot.stat(lim.mr_bar)}", CENTER))
        out.append(_hline(y(lim.mr_ucl), left, right, "mr-ucl", CONTROL, lim.mr_ucl, (5.0, 3.0)))
        out.append(_label(right + 4, y(lim.mr_ucl), f"UCL {plot.stat(lim.mr_ucl)}", CONTROL))
    coords: list[float] = []
    for i, v in zip(data.mr_shown, mr_values, strict=True):
        coords += (round(plot.x(float(i)), 2), round(y(v), 2))
    if coords:
        out.append(Shape("polyline", tuple(coords), "mr-series", DATA, None, 1.0))
    n = data.count
    for k in range(6 if n > 1 else 1):
        i = round(k * (n - 1) / 5) if n > 1 else 0
        anchor = "start" if k == 0 else ("end" if k == 5 else "middle")
        out.append(
            Shape("line", (plot.x(i), bottom, plot.x(i), bottom + 4), "tick", INK, None, 0.8)
        )
        text = local_time(data.timestamps[i], plot.tz, "%m-%d %H:%M:%S")
        out.append(Shape("text", (plot.x(i), bottom + 15), "time", None, INK, text=text,
                         anchor=anchor, size=9.0, title=data.timestamps[i]))  # fmt: skip
    return Group("moving-range", tuple(out))


def _histogram(plot: _Plot, top: float, bottom: float) -> Group:
    """The histogram with the spec limits, the mean and n, mean, s, Cp, Cpk under it."""
    data, spec = plot.data, plot.data.spec
    edges, counts = data.histogram.edges, data.histogram.counts
    lo, hi = _range([edges[0], edges[-1], spec.low, spec.high], pad=0.04)
    x = _scale(lo, hi, plot.left, plot.right)
    y = _scale(0.0, max(counts) * 1.1 or 1.0, bottom, top)
    out = plot.frame(top, bottom, "histogram")
    for t in nice_ticks(lo, hi, 8):
        out.append(Shape("line", (x(t), bottom, x(t), bottom + 4), "tick", INK, None, 0.8))
        out.append(Shape("text", (x(t), bottom + 15), "label", None, INK, text=plot.val(t),
                         anchor="middle", size=9.0))  # fmt: skip
    for a, b, c in zip(edges, edges[1:], counts, strict=False):
        out.append(
            Shape(
                "rect",
                (x(a), y(c), max(0.5, x(b) - x(a) - 0.5), bottom - y(c)),
                "bin",
                "#ffffff",
                "#7fa7c9",
                0.5,
                data=(("count", str(c)), ("low", repr(a)), ("high", repr(b))),
                title=f"{plot.val(a)} .. {plot.val(b)}: {c}",
            )
        )
    for cls, limit, name in (("usl", spec.high, "USL"), ("lsl", spec.low, "LSL")):
        if limit is not None:
            out.append(Shape("line", (x(limit), top, x(limit), bottom), cls, SPEC, None, 1.4,
                             (8.0, 2.0, 2.0, 2.0), data=(("value", repr(limit)),)))  # fmt: skip
            out.append(Shape("text", (x(limit), top + 11), "label", None, SPEC,
                             text=f"{name} {plot.val(limit)}", anchor="middle", size=9.0))  # fmt: skip
    out.append(Shape("line", (x(data.mean), top, x(data.mean), bottom), "mean", CENTER, None, 1.2,
                     data=(("value", repr(data.mean)),)))  # fmt: skip
    cap = data.capability
    text = " · ".join(
        (
            f"n = {data.count:,}",
            f"mean = {plot.stat(data.mean)}{plot.unit}",
            f"s = {'-' if data.std is None else plot.stat(data.std)}{plot.unit}",
            f"Cp = {'-' if cap.cp is None else fmt_number(cap.cp, 0.01)}",
            f"Cpk = {'-' if cap.cpk is None else fmt_number(cap.cpk, 0.01)}",
        )
    )
    out.append(
        Shape(
            "text",
            (plot.left, bottom + 34),
            "capability",
            None,
            INK,
            text=text,
            size=10.5,
            data=(
                ("cp", "" if cap.cp is None else repr(cap.cp)),
                ("cpk", "" if cap.cpk is None else repr(cap.cpk)),
            ),
        )
    )
    return Group("histogram", tuple(out))


def chart_figure(
    data: ChartData,
    *,
    resolution: float | None = None,
    width: int = 1000,
    tz: tzinfo | None = None,
) -> Figure:
    """Lay out ``data`` as an individuals chart, a moving-range chart under it and a histogram."""
    plot = _Plot(data, 64.0, float(width) - 96.0, resolution, tz)
    head = (
        f"{data.point or 'readings'}{f' ({data.unit})' if data.unit else ''}: "
        f"{data.count:,} readings, {local_time(data.first, tz)} .. {local_time(data.last, tz)}"
    )
    if data.limits is not None:
        head += f"; limits {data.limits_source}"
    title = Shape("text", (plot.left, 16), "chart-title", None, INK, text=head, size=11)
    panels = (
        title,
        _individuals(plot, 28.0, 288.0),
        _moving_range(plot, 312.0, 432.0),
        _histogram(plot, 470.0, 640.0),
    )
    return Figure(float(width), 690.0, Group("chart", panels), head)
