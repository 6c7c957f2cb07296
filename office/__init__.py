"""The quality office: control charts, lot reports and numbers as people read them.

Pure functions from data to chart data, SVG, HTML and PDF bytes, used by ``edge ledger
report``, ``edge serve`` and the CLI's tables. Nothing here writes to a ledger.

The names below load on first use (PEP 562): ``from edge.office import fmt_number`` in a CLI
table must not pull in numpy for the charts, nor ReportLab for the PDF.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.office.chart import (
        AlarmPeriod,
        ChartData,
        Histogram,
        NelsonHit,
        Series,
        SpcSettings,
        SpecLimits,
        alarm_periods,
        chart_data,
        decimate,
        spc_settings,
        spec_limits,
    )
    from edge.office.numbers import (
        DIGITS,
        decimals_for,
        fmt_against,
        fmt_number,
        point_resolutions,
        summary_numbers,
    )
    from edge.office.pdf import lot_report_pdf
    from edge.office.report import LotReport, build_lot_report
    from edge.office.report_html import lot_report_html
    from edge.office.svg import chart_svg
    from edge.office.trend import TrendData, trend_data
    from edge.office.trend_layout import trend_svg

_WHERE = {
    "AlarmPeriod": "chart",
    "ChartData": "chart",
    "Histogram": "chart",
    "NelsonHit": "chart",
    "Series": "chart",
    "SpcSettings": "chart",
    "SpecLimits": "chart",
    "alarm_periods": "chart",
    "chart_data": "chart",
    "decimate": "chart",
    "spc_settings": "chart",
    "spec_limits": "chart",
    "DIGITS": "numbers",
    "decimals_for": "numbers",
    "fmt_against": "numbers",
    "fmt_number": "numbers",
    "point_resolutions": "numbers",
    "summary_numbers": "numbers",
    "lot_report_pdf": "pdf",
    "LotReport": "report",
    "build_lot_report": "report",
    "lot_report_html": "report_html",
    "chart_svg": "svg",
    "TrendData": "trend",
    "trend_data": "trend",
    "trend_svg": "trend_layout",
}

__all__ = [
    "DIGITS",
    "AlarmPeriod",
    "ChartData",
    "Histogram",
    "LotReport",
    "NelsonHit",
    "Series",
    "SpcSettings",
    "SpecLimits",
    "TrendData",
    "alarm_periods",
    "build_lot_report",
    "chart_data",
    "chart_svg",
    "decimals_for",
    "decimate",
    "fmt_against",
    "fmt_number",
    "lot_report_html",
    "lot_report_pdf",
    "point_resolutions",
    "spc_settings",
    "spec_limits",
    "summary_numbers",
    "trend_data",
    "trend_svg",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'edge.office' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"edge.office.{module}"), name)
    globals()[name] = value
    return value
