"""``edge ledger report``: a lot report (HTML or PDF) to hand a customer or an auditor.

The report is what ``edge ledger trace`` shows, for people who do not use a terminal: the
verdict and the failing checks first, aggregates, control charts of the lot's readings, the
verification of every feed it touches with the feeds' full keys and trust-list names, the rule
sets in force and the timeline. Built by :mod:`edge.office` (pure functions); this module only
gathers its inputs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

import click

from edge.cli.ledger_query import _all_feeds_option, _BadOption, _load_trace, db_for
from edge.cli.options import DB_OPTION, OUTPUT_OPTION, tz_option

if TYPE_CHECKING:
    from edge.office.chart import SpcSettings, SpecLimits

__all__ = ["report_command"]


def _zone(name: str | None) -> tzinfo:
    """``--tz``: an IANA zone name, ``UTC``, or (None) this machine's local zone."""
    if name is None:
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC
    if name.upper() == "UTC":
        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _BadOption(f"--tz {name!r}: not a time zone name (e.g. Europe/Berlin, UTC)") from exc


@dataclass(frozen=True, slots=True)
class _Site:
    """What ``-c node.toml`` tells a report: resolutions, spec limits, SPC rules, time zone."""

    resolutions: dict[str, float] = field(default_factory=dict)
    spec: dict[str, SpecLimits] = field(default_factory=dict)
    spc: dict[str, SpcSettings] = field(default_factory=dict)
    zone: str | None = None


def _from_config(config_path: Path | None) -> _Site:
    """Point resolutions, spec limits, SPC rules and the site's time zone from ``-c``."""
    if config_path is None:
        return _Site()
    from edge.config import load_config
    from edge.errors import EdgeError
    from edge.office.chart import spc_settings, spec_limits
    from edge.office.numbers import point_resolutions

    config = load_config(config_path)  # trust resolution already loaded it: errors were said
    resolutions = point_resolutions(config)
    zone = config.timezone or None
    try:
        from edge.rules.loader import load_rules

        ruleset = load_rules(config.rules.files)
    except (EdgeError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        click.echo(f"note: rules not loaded, charts without spec limits: {first}", err=True)
        return _Site(resolutions, zone=zone)
    return _Site(resolutions, spec_limits(ruleset), spc_settings(ruleset), zone)


@click.command("report")
@click.option("--lot", required=True, metavar="L", help="The lot to report.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("html", "pdf")),
    default="html",
    show_default=True,
    help="html: one self-contained page (inline SVG charts); pdf: A4 landscape.",
)
@DB_OPTION
@_all_feeds_option
@OUTPUT_OPTION
@tz_option(
    "Show times in this time zone (IANA name, e.g. Europe/Berlin) "
    "[-c's [node] timezone, else this machine's]."
)
@click.option(
    "--point",
    "points",
    metavar="P",
    multiple=True,
    help="Chart this point (repeatable) [every point the lot end aggregates].",
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Verify the database's feeds and print each one's result in the report.",
)
def report_command(
    lot: str,
    fmt: str,
    db: Path,
    trust_keys: tuple[str, ...],
    config_path: Path | None,
    all_feeds: bool,
    output: Path | None,
    tz_name: str | None,
    points: tuple[str, ...],
    verify: bool,
) -> None:
    """Write LOT's report: verdict, checks, aggregates, control charts, feeds, timeline.

    With -c, numbers are rounded to each point's resolution (integer registers: their scale)
    and the charts show the spec limits of the node's rules; without, numbers get 4
    significant digits and the charts no spec limits. Exit status 1 when the lot is unknown
    or the database cannot be read; the report itself says pass or fail.
    """
    from edge.cli.ledger_query import _one_line_errors
    from edge.cli.trust import resolve_trust
    from edge.ledger.query import open_ledger_db
    from edge.office.report import build_lot_report
    from edge.office.sources import lot_series

    if tz_name:
        _zone(tz_name)  # a wrong name fails before any work
    if output is None and fmt == "pdf" and sys.stdout.isatty():
        raise _BadOption("--format pdf writes binary: give -o FILE or redirect stdout")
    trace, shown = _load_trace(db, lot, trust_keys, config_path, all_feeds)
    with _one_line_errors():
        path = db_for(db, config_path)
        site = _from_config(config_path)
        zone = _zone(tz_name or site.zone)
        conn = open_ledger_db(path)
        try:
            series = lot_series(conn, trace, points or None)
            verification = None
            if verify:
                from edge.ledger.verify import verify_db

                names = resolve_trust(path, trust_keys, config_path).names
                verification = verify_db(conn, trusted=names)
        finally:
            conn.close()
    missing = sorted(set(points) - series.keys())
    if missing:
        click.echo(f"note: no numeric readings of {', '.join(missing)} in the lot", err=True)
    report = build_lot_report(
        trace,
        now=datetime.now(zone),
        series=series,
        spec=site.spec,
        spc=site.spc,
        resolutions=site.resolutions,
        feed_names=shown.names,
        verification=verification,
        tz=zone,
    )
    if fmt == "pdf":
        from edge.office.pdf import lot_report_pdf

        data = lot_report_pdf(report)
    else:
        from edge.office.report_html import lot_report_html

        data = lot_report_html(report).encode("utf-8")
    _write(output, data)
    click.echo(
        f"lot {lot}: {report.verdict}; {len(report.charts)} chart(s), "
        f"{len(report.timeline)} timeline entries -> {output or 'stdout'}",
        err=True,
    )


def _write(path: Path | None, data: bytes) -> None:
    """To ``path`` whole (a temp file renamed at the end), or to stdout."""
    if path is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot write: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
