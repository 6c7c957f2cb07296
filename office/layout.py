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


def chart_figure(
    data: ChartData,
    *,
    resolution: float | None = None,
    width: int = 1000,
    tz: tzinfo | None = None,
) -> Figure:
    """Lay out ``data`` as an individuals chart, a moving-range chart and a histogram."""
    left, right = 64.0, float(width) - 96.0
    n = data.count
    lim = data.limits
    spec = data.spec

    def val(v: float) -> str:
        return fmt_number(v, resolution)

    def stat(v: float) -> str:
        return fmt_number(v, resolution, stat=True)

    def xi(i: float) -> float:
        return left + (right - left) * (i / (n - 1) if n > 1 else 0.5)

    unit = f" {data.unit}" if data.unit else ""
    head = (
        f"{data.point or 'readings'}{f' ({data.unit})' if data.unit else ''}: {n:,} readings, "
        f"{local_time(data.first, tz)} .. {local_time(data.last, tz)}"
    )
    if lim is not None:
        head += f"; limits {data.limits_source}"
    shapes: list[Shape | Group] = [
        Shape("text", (left, 16), "chart-title", None, INK, text=head, size=11)
    ]

    # --- individuals ---------------------------------------------------------------------
    top, bottom = 28.0, 288.0
    bounds: list[float | None] = [data.minimum, data.maximum, spec.low, spec.high]
    if lim is not None:
        bounds += [lim.ucl, lim.lcl]
    lo, hi = _range(bounds)
    y = _scale(lo, hi, bottom, top)
    ind: list[Shape | Group] = [
        Shape("rect", (left, top, right - left, bottom - top), "frame", "#999999", None, 0.8)
    ]
    ind += _y_axis(nice_ticks(lo, hi), y, left, right, val)
    for alarm, (i0, i1) in zip(data.alarms, data.alarm_spans, strict=True):
        x0, x1 = xi(i0), xi(i1)
        ind.append(
            Shape(
                "rect",
                (x0, top, max(2.0, x1 - x0), bottom - top),
                "alarm-period",
                None,
                ALARM,
                opacity=0.55,
                data=(("rule", alarm.rule), ("start", alarm.start), ("end", alarm.end or "")),
                title=f"alarm {alarm.rule} ({alarm.severity}): {alarm.start} .. {alarm.end or 'still active'}",
            )
        )
    if lim is not None:
        for k in (1, 2):
            for v in lim.zone(k):
                ind.append(
                    Shape("line", (left, y(v), right, y(v)), "zone", GRID, None, 0.8, (2, 3))
                )
        for cls, v, colour, dash, name in (
            ("ucl", lim.ucl, CONTROL, (5.0, 3.0), "UCL"),
            ("center", lim.center, CENTER, (), "CL"),
            ("lcl", lim.lcl, CONTROL, (5.0, 3.0), "LCL"),
        ):
            ind.append(_hline(y(v), left, right, cls, colour, v, dash))
            ind.append(_label(right + 4, y(v), f"{name} {stat(v)}", colour))
    for cls, sv, name in (("usl", spec.high, "USL"), ("lsl", spec.low, "LSL")):
        if sv is not None:
            v = sv
            ind.append(_hline(y(v), left, right, cls, SPEC, v, (8.0, 2.0, 2.0, 2.0)))
            ind.append(
                _label(right + 4, y(v) + (10 if cls == "lsl" else -10), f"{name} {val(v)}", SPEC)
            )
    coords: list[float] = []
    for i in data.shown:
        coords += (round(xi(float(i)), 2), round(y(float(data.values[i])), 2))
    ind.append(
        Shape(
            "polyline",
            tuple(coords),
            "series",
            DATA,
            None,
            1.0,
            data=(("count", str(len(data.shown))),),
        )
    )
    if n <= 200:  # few points: a dot each, as on paper
        for i in data.shown:
            ind.append(
                Shape(
                    "circle", (xi(float(i)), y(float(data.values[i])), 1.8), "reading", None, DATA
                )
            )
    last_hit: dict[int, int] = {}  # rule -> index of its previous hit
    for hit in data.hits:
        cx, cy = xi(hit.index), y(hit.value)
        for k, rule in enumerate(hit.rules):
            marks: tuple[Shape, ...] = (Shape("circle", (cx, cy, 4.0), "", SIGNAL, None, 1.3),)
            # a run signals at each of its points: its number once, at the run's first point
            if last_hit.get(rule) != hit.index - 1:
                label = str(rule)
                at = (cx, cy - 7 - 9 * k)
                marks += (
                    Shape("text", at, "", None, SIGNAL, text=label, anchor="middle", size=8.5),
                )
            last_hit[rule] = hit.index
            ind.append(
                Group(
                    "nelson-hit",
                    marks,
                    (
                        ("rule", str(rule)),
                        ("index", str(hit.index)),
                        ("ts", hit.ts),
                        ("value", repr(hit.value)),
                    ),
                    f"{rule_title(rule)} at {hit.ts} ({val(hit.value)}{unit})",
                )
            )
    shapes.append(Group("individuals", tuple(ind)))

    # --- moving range ----------------------------------------------------------------------
    top, bottom = 312.0, 432.0
    mr_values = [data.moving_range(int(i)) for i in data.mr_shown]
    mr_hi = max([*mr_values, lim.mr_ucl if lim is not None else 0.0, 0.0])
    _, mr_top = _range([0.0, mr_hi or 1.0], pad=0.08)
    ym = _scale(0.0, mr_top, bottom, top)
    mr: list[Shape | Group] = [
        Shape("rect", (left, top, right - left, bottom - top), "frame", "#999999", None, 0.8),
        Shape("text", (left, top - 6), "panel-title", None, INK, text="moving range", size=9.5),
    ]
    mr += _y_axis(nice_ticks(0.0, mr_top, 3), ym, left, right, stat)
    if lim is not None:
        mr.append(_hline(ym(lim.mr_bar), left, right, "mr-center", CENTER, lim.mr_bar, ()))
        mr.append(_label(right + 4, ym(lim.mr_bar), f"MR {stat(lim.mr_bar)}", CENTER))
        mr.append(_hline(ym(lim.mr_ucl), left, right, "mr-ucl", CONTROL, lim.mr_ucl, (5.0, 3.0)))
        mr.append(_label(right + 4, ym(lim.mr_ucl), f"UCL {stat(lim.mr_ucl)}", CONTROL))
    coords = []
    for i, v in zip(data.mr_shown, mr_values, strict=True):
        coords += (round(xi(float(i)), 2), round(ym(v), 2))
    if coords:
        mr.append(Shape("polyline", tuple(coords), "mr-series", DATA, None, 1.0))
    for k in range(6 if n > 1 else 1):
        i = round(k * (n - 1) / 5) if n > 1 else 0
        anchor = "start" if k == 0 else ("end" if k == 5 else "middle")
        mr.append(Shape("line", (xi(i), bottom, xi(i), bottom + 4), "tick", INK, None, 0.8))
        mr.append(
            Shape(
                "text",
                (xi(i), bottom + 15),
                "time",
                None,
                INK,
                text=local_time(data.timestamps[i], tz, "%m-%d %H:%M:%S"),
                anchor=anchor,
                size=9.0,
                title=data.timestamps[i],
            )
        )
    shapes.append(Group("moving-range", tuple(mr)))

    # --- histogram -------------------------------------------------------------------------
    top, bottom = 470.0, 640.0
    edges, counts = data.histogram.edges, data.histogram.counts
    hx_lo, hx_hi = _range([edges[0], edges[-1], spec.low, spec.high], pad=0.04)
    hx = _scale(hx_lo, hx_hi, left, right)
    hy = _scale(0.0, max(counts) * 1.1 or 1.0, bottom, top)
    hist: list[Shape | Group] = [
        Shape("rect", (left, top, right - left, bottom - top), "frame", "#999999", None, 0.8),
        Shape("text", (left, top - 6), "panel-title", None, INK, text="histogram", size=9.5),
    ]
    for t in nice_ticks(hx_lo, hx_hi, 8):
        hist.append(Shape("line", (hx(t), bottom, hx(t), bottom + 4), "tick", INK, None, 0.8))
        hist.append(
            Shape(
                "text",
                (hx(t), bottom + 15),
                "label",
                None,
                INK,
                text=val(t),
                anchor="middle",
                size=9.0,
            )
        )
    for a, b, c in zip(edges, edges[1:], counts, strict=False):
        hist.append(
            Shape(
                "rect",
                (hx(a), hy(c), max(0.5, hx(b) - hx(a) - 0.5), bottom - hy(c)),
                "bin",
                "#ffffff",
                "#7fa7c9",
                0.5,
                data=(("count", str(c)), ("low", repr(a)), ("high", repr(b))),
                title=f"{val(a)} .. {val(b)}: {c}",
            )
        )
    for cls, sv, name in (("usl", spec.high, "USL"), ("lsl", spec.low, "LSL")):
        if sv is not None:
            v = sv
            hist.append(
                Shape(
                    "line",
                    (hx(v), top, hx(v), bottom),
                    cls,
                    SPEC,
                    None,
                    1.4,
                    (8.0, 2.0, 2.0, 2.0),
                    data=(("value", repr(v)),),
                )
            )
            hist.append(
                Shape(
                    "text",
                    (hx(v), top + 11),
                    "label",
                    None,
                    SPEC,
                    text=f"{name} {val(v)}",
                    anchor="middle",
                    size=9.0,
                )
            )
    hist.append(
        Shape(
            "line",
            (hx(data.mean), top, hx(data.mean), bottom),
            "mean",
            CENTER,
            None,
            1.2,
            data=(("value", repr(data.mean)),),
        )
    )
    cap = data.capability
    cap_text = " · ".join(
        (
            f"n = {n:,}",
            f"mean = {stat(data.mean)}{unit}",
            f"s = {'-' if data.std is None else stat(data.std)}{unit}",
            f"Cp = {'-' if cap.cp is None else fmt_number(cap.cp, 0.01)}",
            f"Cpk = {'-' if cap.cpk is None else fmt_number(cap.cpk, 0.01)}",
        )
    )
    hist.append(
        Shape(
            "text",
            (left, bottom + 34),
            "capability",
            None,
            INK,
            text=cap_text,
            size=10.5,
            data=(
                ("cp", "" if cap.cp is None else repr(cap.cp)),
                ("cpk", "" if cap.cpk is None else repr(cap.cpk)),
            ),
        )
    )
    shapes.append(Group("histogram", tuple(hist)))
    return Figure(float(width), 690.0, Group("chart", tuple(shapes)), head)
