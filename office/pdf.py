"""A lot report as PDF, drawn with ReportLab (pure Python; see docs/design.md, "Quality office").

The route was chosen for a Raspberry Pi gateway: ReportLab installs from a wheel with no system
libraries (WeasyPrint needs Pango, Cairo and GDK-Pixbuf; headless Chromium is a 300 MB browser
to print one page). Charts are not converted from SVG: the same :mod:`edge.office.layout`
shapes the SVG is written from are drawn as ReportLab vector graphics, so the PDF chart is the
web chart, sharp at any zoom.

Text uses the PDF base fonts (Helvetica, Courier), which every reader has, so nothing is
embedded; they cover Latin-1 and Windows-1252 (``N·m``, ``°C``, ``µm``), and any other character
prints as ``?`` rather than as an empty box.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

from edge.office.layout import Figure, Group, Shape, chart_figure
from edge.office.report import LotReport

__all__ = ["lot_report_pdf"]


def _latin(text: object) -> str:
    return str(text).encode("cp1252", "replace").decode("cp1252")


def _drawing(figure: Figure, width: float, height: float) -> Any:
    """``figure`` as a ReportLab Drawing fitting ``width`` x ``height`` points (y flipped)."""
    from reportlab.graphics import shapes as rl
    from reportlab.lib import colors

    scale = min(width / figure.width, height / figure.height)
    height = figure.height

    def colour(c: str | None) -> Any:
        return colors.HexColor(c) if c else None

    def draw(s: Shape) -> Any:
        c = s.coords
        stroke = colour(s.stroke)
        common: dict[str, Any] = {"strokeColor": stroke, "strokeWidth": s.width}
        if s.dash:
            common["strokeDashArray"] = list(s.dash)
        if s.kind == "line":
            return rl.Line(c[0], height - c[1], c[2], height - c[3], **common)
        if s.kind == "polyline":
            pts: list[float] = []
            for i in range(0, len(c), 2):
                pts += (c[i], height - c[i + 1])
            return rl.PolyLine(pts, **common)
        if s.kind == "rect":
            return rl.Rect(
                c[0], height - c[1] - c[3], c[2], c[3],
                fillColor=colour(s.fill), fillOpacity=s.opacity,
                **(common if stroke else {"strokeColor": None}),
            )  # fmt: skip
        if s.kind == "circle":
            return rl.Circle(
                c[0], height - c[1], c[2], fillColor=colour(s.fill),
                **(common if stroke else {"strokeColor": None}),
            )  # fmt: skip
        return rl.String(
            c[0], height - c[1], _latin(s.text), fontName="Helvetica", fontSize=s.size,
            fillColor=colour(s.fill), textAnchor=s.anchor,
        )  # fmt: skip

    def group(g: Group) -> Any:
        out = rl.Group()
        for child in g.children:
            out.add(group(child) if isinstance(child, Group) else draw(child))
        return out

    drawing = rl.Drawing(figure.width * scale, height * scale)
    root = group(figure.root)
    root.scale(scale, scale)
    drawing.add(root)
    return drawing


def lot_report_pdf(report: LotReport) -> bytes:
    """The report as PDF bytes (A4 landscape): verdict, checks, aggregates, charts, feeds, timeline."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import (
        KeepTogether,
        Paragraph,
        SimpleDocTemplate,
        Spacer,
        Table,
        TableStyle,
    )

    r = report
    styles = getSampleStyleSheet()
    body = styles["BodyText"]
    cell = ParagraphStyle("cell", parent=body, fontSize=7.5, leading=9)
    mono = ParagraphStyle("mono", parent=cell, fontName="Courier", fontSize=7, leading=8.5)
    h1, h2 = styles["Heading1"], styles["Heading2"]
    green, red = colors.HexColor("#1e7b34"), colors.HexColor("#b3261e")

    def p(text: object, style: ParagraphStyle = cell) -> Paragraph:
        return Paragraph(escape(_latin(text)), style)

    def table(head: Sequence[str], rows: list[list[Any]], widths: Sequence[float]) -> Table:
        data = [[p(h) for h in head], *rows]
        t = Table(data, colWidths=[w * mm for w in widths], repeatRows=1)
        t.setStyle(
            TableStyle(
                [
                    ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#bbbbbb")),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        return t

    def verdict(ok: bool | None, text: str, style: ParagraphStyle = cell) -> Paragraph:
        colour = green if ok else (red if ok is False else colors.black)
        return Paragraph(
            f'<font color="{colour.hexval()}"><b>{escape(_latin(text))}</b></font>', style
        )

    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=landscape(A4),
        leftMargin=12 * mm,
        rightMargin=12 * mm,
        topMargin=12 * mm,
        bottomMargin=12 * mm,
        title=_latin(f"Lot report {r.lot}"),
        author="edge-qc",
        subject=_latin(f"Lot {r.lot}: {r.verdict}"),
    )
    story: list[Any] = [
        p(f"Lot report: {r.lot}", h1),
        p(f"From {r.first} to {r.last} ({r.timezone}); generated {r.generated}.", body),
        verdict(
            r.verdict == "pass" if r.verdict != "no checks" else None,
            f"Result: {r.verdict.upper()}",
            ParagraphStyle("verdict", parent=body, fontSize=16, leading=22, spaceBefore=4),
        ),
    ]
    for c in r.failed:
        story.append(
            p(
                f"Failed: {c.station}: {c.rule}: {c.check} ({c.statistic} = {c.value or 'no value'})",
                body,
            )
        )
    story += [Spacer(1, 3 * mm), p("Stations", h2)]
    story.append(
        table(
            ("station", "node/site", "feed", "start", "end", "checks"),
            [
                [
                    p(s["station"]),
                    p(s["node"]),
                    p(s["feed"], mono),
                    p(s["start"]),
                    p(s["end"]),
                    p(s["checks"]),
                ]
                for s in r.stations
            ],
            (30, 35, 95, 40, 40, 30),
        )
    )
    story.append(p("Checks at lot end", h2))
    if r.checks:
        story.append(
            table(
                ("station", "rule", "point", "check", "measured", "limit", "result"),
                [
                    [
                        p(c.station),
                        p(c.rule),
                        p(c.point),
                        p(c.check),
                        p(f"{c.statistic} = {c.value or 'no value'}"),
                        p(c.limit),
                        verdict(c.passed, "pass" if c.passed else "FAIL"),
                    ]
                    for c in r.checks
                ],
                (35, 50, 35, 40, 45, 25, 20),
            )
        )
    else:
        story.append(p("No lot-end checks recorded.", body))
    if r.aggregates:
        head = ("station", "point", "count", "mean", "min", "max", "std", "unit")
        story.append(p("Aggregates at lot end", h2))
        story.append(
            table(
                head,
                [[p(a[k]) for k in head] for a in r.aggregates],
                (40, 40, 25, 30, 30, 30, 30, 20),
            )
        )
    width = doc.width
    if r.chart_note:
        story += [p("Control charts", h2), p(r.chart_note, body)]
    for chart in r.charts:
        figure = chart_figure(chart.data, resolution=chart.resolution, width=1000, tz=r.tz)
        story.append(
            KeepTogether(
                [p(f"Control chart: {chart.point}", h2), _drawing(figure, width, doc.height - 40)]
            )
        )
    story.append(p("Verification", h2))
    ok = all(f.ok for f in r.feeds) if r.feeds and all(f.ok is not None for f in r.feeds) else None
    story.append(verdict(ok, r.verification))
    story.append(
        table(
            ("feed key (Ed25519, hex)", "trust-list name", "node/site", "verification"),
            [
                [p(f.feed, mono), p(f.name or "-"), p(f.station), verdict(f.ok, f.verdict)]
                for f in r.feeds
            ],
            (100, 40, 45, 85),
        )
    )
    if r.rule_sets:
        story.append(p("Rule sets in force", h2))
        story.append(
            table(
                ("node/site", "since", "hash", "rules"),
                [
                    [p(s["node"]), p(s["since"]), p(s["hash"], mono), p(s["rules"])]
                    for s in r.rule_sets
                ],
                (40, 40, 100, 90),
            )
        )
    story.append(p("Timeline", h2))
    story.append(
        table(
            ("time", "node/site", "type", "what happened", "entry"),
            [
                [p(t["ts"]), p(t["node"]), p(t["type"]), p(t["summary"]), p(t["entry"][:16], mono)]
                for t in r.timeline
            ],
            (35, 35, 25, 140, 35),
        )
    )
    doc.build(story)
    return out.getvalue()
