"""A lot report as one self-contained HTML page: inline CSS and SVG, no script, no links out.

It opens from an e-mail attachment or a USB stick, prints on paper, and shows the same thing in
ten years: nothing is fetched. Times are in the report's time zone, each with its UTC time as a
hover title (``<time datetime="...Z" title="...Z">``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from edge.office.report import LotReport
from edge.office.svg import chart_svg

__all__ = ["lot_report_html"]

_CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; color: #222; margin: 2em;
       max-width: 1100px; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; border-bottom: 1px solid #bbb; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; width: 100%; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.mono { font-family: "DejaVu Sans Mono", monospace; font-size: 0.9em; word-break: break-all; }
.pass { color: #1e7b34; font-weight: bold; }
.fail { color: #b3261e; font-weight: bold; }
.verdict { font-size: 1.3em; padding: 0.3em 0.7em; display: inline-block; border: 2px solid; }
.meta { color: #555; font-size: 0.9em; }
figure { margin: 1em 0; page-break-inside: avoid; }
@media print { body { margin: 0; } }
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _time(local: str, utc: str) -> str:
    if not utc:
        return _e(local)
    return f'<time datetime="{_e(utc)}" title="{_e(utc)}">{_e(local)}</time>'


def _table(
    cls: str, head: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = ()
) -> str:
    nums = set(numeric)
    out = [f'<table class="{cls}"><thead><tr>']
    out += [f"<th>{_e(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for row in rows:
        cells = "".join(
            f'<td class="num">{c}</td>' if i in nums else f"<td>{c}</td>" for i, c in enumerate(row)
        )
        out.append(f"<tr>{cells}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _verdict(ok: bool | None, text: str) -> str:
    cls = "pass" if ok else ("fail" if ok is False else "")
    return f'<span class="{cls}">{_e(text)}</span>'


def lot_report_html(report: LotReport) -> str:
    """The report as a complete HTML document (UTF-8 text)."""
    r = report
    verdict_cls = {"pass": "pass", "fail": "fail"}.get(r.verdict, "")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Lot {_e(r.lot)}: {_e(r.verdict)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<h1>Lot report: <span class="lot">{_e(r.lot)}</span></h1>',
        f'<p class="meta">From {_e(r.first)} to {_e(r.last)} ({_e(r.timezone)}); '
        f"generated {_e(r.generated)} by edge-qc from its hash-chained ledger.</p>",
        f'<p>Result: <span class="verdict {verdict_cls}" data-verdict="{_e(r.verdict)}">'
        f"{_e(r.verdict.upper())}</span></p>",
    ]
    if r.failed:
        items = "".join(
            f"<li>{_e(c.station)}: <b>{_e(c.rule)}</b> {_e(c.check)} — "
            f"{_e(c.statistic)} = {_e(c.value or 'no value')}</li>"
            for c in r.failed
        )
        parts.append(f'<ul class="failed-checks">{items}</ul>')
    parts.append("<h2>Stations</h2>")
    parts.append(
        _table(
            "stations",
            ("station", "node/site", "feed", "start", "end", "checks"),
            (
                (
                    _e(s["station"]),
                    _e(s["node"]),
                    f'<span class="mono">{_e(s["feed"])}</span>',
                    _time(s["start"], s["start_utc"]),
                    _time(s["end"], s["end_utc"]),
                    _e(s["checks"]),
                )
                for s in r.stations
            ),
        )
    )
    parts.append("<h2>Checks at lot end</h2>")
    if r.checks:
        parts.append(
            _table(
                "checks",
                ("station", "rule", "point", "check", "measured", "limit", "result"),
                (
                    (
                        _e(c.station),
                        _e(c.rule),
                        _e(c.point),
                        _e(c.check),
                        _e(f"{c.statistic} = {c.value or 'no value'}"),
                        _e(c.limit),
                        _verdict(c.passed, "pass" if c.passed else "FAIL"),
                    )
                    for c in r.checks
                ),
            )
        )
    else:
        parts.append("<p>No lot-end checks recorded (no lot rule, or the lot has no end yet).</p>")
    if r.aggregates:
        parts.append("<h2>Aggregates at lot end</h2>")
        head = ("station", "point", "count", "mean", "min", "max", "std", "unit")
        parts.append(
            _table(
                "aggregates",
                head,
                ([_e(a[k]) for k in head] for a in r.aggregates),
                numeric=(2, 3, 4, 5, 6),
            )
        )
    if r.charts or r.chart_note:
        parts.append("<h2>Control charts</h2>")
        for chart in r.charts:
            svg = chart_svg(chart.data, resolution=chart.resolution, tz=r.tz)
            parts.append(f'<figure class="chart" data-point="{_e(chart.point)}">{svg}</figure>')
        if r.chart_note:
            parts.append(f'<p class="chart-note">{_e(r.chart_note)}</p>')
    parts.append("<h2>Verification</h2>")
    ok = all(f.ok for f in r.feeds) if r.feeds and all(f.ok is not None for f in r.feeds) else None
    parts.append(f'<p class="verification">{_verdict(ok, r.verification)}</p>')
    parts.append(
        _table(
            "feeds",
            ("feed key (Ed25519, hex)", "trust-list name", "node/site", "verification"),
            (
                (
                    f'<span class="mono feed-key">{_e(f.feed)}</span>',
                    _e(f.name or "-"),
                    _e(f.station),
                    _verdict(f.ok, f.verdict),
                )
                for f in r.feeds
            ),
        )
    )
    if r.rule_sets:
        parts.append("<h2>Rule sets in force</h2>")
        parts.append(
            _table(
                "rule-sets",
                ("node/site", "since", "hash", "rules", "entry"),
                (
                    (
                        _e(s["node"]),
                        _time(s["since"], s["since_utc"]),
                        f'<span class="mono">{_e(s["hash"])}</span>',
                        _e(s["rules"]),
                        f'<span class="mono">{_e(s["entry"][:16])}</span>',
                    )
                    for s in r.rule_sets
                ),
            )
        )
    parts.append("<h2>Timeline</h2>")
    parts.append(
        _table(
            "timeline",
            ("time", "node/site", "type", "what happened", "entry"),
            (
                (
                    _time(t["ts"], t["ts_utc"]),
                    _e(t["node"]),
                    _e(t["type"]),
                    _e(t["summary"]),
                    f'<span class="mono" title="{_e(t["entry"])}">{_e(t["entry"][:16])}</span>',
                )
                for t in r.timeline
            ),
        )
    )
    parts.append(
        '<p class="meta">Every row above is an entry of the ledger; <code>edge ledger verify'
        "</code> checks its hash chain and checkpoint signatures, and <code>edge ledger export "
        f"--lot {_e(r.lot)} --format proof</code> gives an auditor the proof without our "
        "software.</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
