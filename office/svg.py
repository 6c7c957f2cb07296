"""Write a :class:`~edge.office.layout.Figure` as an SVG element (server-rendered, no script).

Every shape keeps its class and ``data-*`` attributes (``<g class="nelson-hit" data-rule="2">``,
``<line class="ucl" data-value="55.80">``), so a page test finds the limits and the signals in
the DOM, and a ``<title>`` child, which browsers show on hover. Presentation is written as
attributes, not a style sheet, so the SVG looks the same pasted anywhere (a report, an e-mail).
"""

from __future__ import annotations

from datetime import tzinfo
from html import escape

from edge.office.chart import ChartData
from edge.office.layout import Figure, Group, Shape, chart_figure

__all__ = ["chart_svg", "figure_svg"]


def _num(v: float) -> str:
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _quoted(v: str) -> str:
    # most values are numbers: escaping only what needs it halves the time of a large chart
    if "&" in v or "<" in v or ">" in v or '"' in v or "'" in v:
        return escape(v, quote=True)
    return v


def _attrs(pairs: list[tuple[str, str]]) -> str:
    return "".join([f' {k}="{_quoted(v)}"' for k, v in pairs])


def _shape(s: Shape) -> str:
    c = s.coords
    attrs: list[tuple[str, str]] = []
    if s.cls:
        attrs.append(("class", s.cls))
    attrs += [(f"data-{k}", v) for k, v in s.data]
    if s.kind == "line":
        tag = "line"
        attrs += [("x1", _num(c[0])), ("y1", _num(c[1])), ("x2", _num(c[2])), ("y2", _num(c[3]))]
    elif s.kind == "polyline":
        tag = "polyline"
        attrs.append(
            ("points", " ".join(f"{_num(c[i])},{_num(c[i + 1])}" for i in range(0, len(c), 2)))
        )
    elif s.kind == "rect":
        tag = "rect"
        attrs += [
            ("x", _num(c[0])),
            ("y", _num(c[1])),
            ("width", _num(c[2])),
            ("height", _num(c[3])),
        ]
    elif s.kind == "circle":
        tag = "circle"
        attrs += [("cx", _num(c[0])), ("cy", _num(c[1])), ("r", _num(c[2]))]
    else:
        tag = "text"
        attrs += [("x", _num(c[0])), ("y", _num(c[1])), ("font-size", _num(s.size))]
        if s.anchor != "start":
            attrs.append(("text-anchor", s.anchor))
    attrs.append(("fill", s.fill or "none"))
    if s.stroke:
        attrs += [("stroke", s.stroke), ("stroke-width", _num(s.width))]
        if s.dash:
            attrs.append(("stroke-dasharray", " ".join(_num(d) for d in s.dash)))
    if s.opacity != 1.0:
        attrs.append(("fill-opacity", _num(s.opacity)))
    body = escape(s.text, quote=False) if tag == "text" else ""
    if s.title:
        body += f"<title>{escape(s.title, quote=False)}</title>"
    return f"<{tag}{_attrs(attrs)}>{body}</{tag}>" if body else f"<{tag}{_attrs(attrs)}/>"


def _group(g: Group, out: list[str]) -> None:
    attrs = [("class", g.cls), *((f"data-{k}", v) for k, v in g.data)]
    out.append(f"<g{_attrs(attrs)}>")
    if g.title:
        out.append(f"<title>{escape(g.title, quote=False)}</title>")
    for child in g.children:
        if isinstance(child, Group):
            _group(child, out)
        else:
            out.append(_shape(child))
    out.append("</g>")


def figure_svg(figure: Figure, cls: str = "", data: tuple[tuple[str, str], ...] = ()) -> str:
    """``figure`` as one ``<svg>`` element (scales to its container's width)."""
    attrs = [
        ("xmlns", "http://www.w3.org/2000/svg"),
        ("class", cls),
        *((f"data-{k}", v) for k, v in data),
        ("viewBox", f"0 0 {_num(figure.width)} {_num(figure.height)}"),
        ("width", _num(figure.width)),
        ("height", _num(figure.height)),
        ("role", "img"),
        ("font-family", "DejaVu Sans, Helvetica, Arial, sans-serif"),
        ("style", "max-width: 100%; height: auto"),
    ]
    out = [f"<svg{_attrs(attrs)}>", f"<title>{escape(figure.title, quote=False)}</title>"]
    _group(figure.root, out)
    out.append("</svg>")
    return "\n".join(out)


def chart_svg(
    data: ChartData,
    *,
    resolution: float | None = None,
    width: int = 1000,
    tz: tzinfo | None = None,
) -> str:
    """The control chart of ``data`` as SVG: ``<svg class="control-chart" data-point="...">``.

    Inside: ``g.individuals`` (``line.center``/``ucl``/``lcl``/``usl``/``lsl`` with
    ``data-value``, ``polyline.series``, ``g.nelson-hit[data-rule]``, ``rect.alarm-period``),
    ``g.moving-range`` (``polyline.mr-series``, ``line.mr-center``, ``line.mr-ucl``) and
    ``g.histogram`` (``rect.bin``, ``text.capability[data-cp][data-cpk]``).
    """
    figure = chart_figure(data, resolution=resolution, width=width, tz=tz)
    meta = (("point", data.point), ("count", str(data.count)), ("hits", str(len(data.hits))))
    return figure_svg(figure, "control-chart", meta)
