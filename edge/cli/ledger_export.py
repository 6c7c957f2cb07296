"""``edge ledger export``: one lot as CSV, GS1 EPCIS 2.0, a proof bundle or an analysis database.

Split from :mod:`edge.cli.ledger_query` (query and trace), whose options and helpers it shares.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import click
import orjson

from edge.cli.ledger_query import (
    _all_feeds_option,
    _BadOption,
    _load_trace,
    _one_line_errors,
    db_for,
)
from edge.cli.options import DB_OPTION, OUTPUT_OPTION
from edge.ledger.epcis import epcis_document, valid_gtin
from edge.ledger.export_csv import write_lot_csv
from edge.ledger.query import (
    open_ledger_db,
)
from edge.ledger.trace import LotTrace

__all__ = ["export_command"]


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    """``-o FILE`` (written whole: a temp file renamed at the end) or stdout."""
    if path is None:
        yield sys.stdout
        return
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as out:
            yield out
        tmp.replace(path)
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot write: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


@click.command("export")
@click.option(
    "--lot", "lots", required=True, multiple=True, metavar="L",
    help="The lot to export (sqlite: repeat for several lots in one file).",
)  # fmt: skip
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("csv", "epcis", "proof", "sqlite")),
    required=True,
    help="csv: sortable spreadsheet (FSMA 204 style); epcis: GS1 EPCIS 2.0; "
    "proof: zip an auditor checks with the verify_proof.py inside it; "
    "sqlite: analysis database (lots, events with full-text search, measurements, readings,"
    " minute/hour summaries).",
)
@DB_OPTION
@_all_feeds_option
@OUTPUT_OPTION
@click.option(
    "--gtin",
    metavar="GTIN",
    help="The product's GTIN-14 (EPCIS lot id becomes a GS1 Digital Link).",
)
@click.option(
    "--through-head",
    is_flag=True,
    help="proof: cover each feed up to its latest checkpoint (no later correction left out).",
)
def export_command(
    lots: tuple[str, ...],
    fmt: str,
    db: Path,
    trust_keys: tuple[str, ...],
    config_path: Path | None,
    all_feeds: bool,
    output: Path | None,
    gtin: str | None,
    through_head: bool,
) -> None:
    """Export a lot's records from trusted feeds for customers, auditors and quality engineers."""
    if gtin is not None and not valid_gtin(gtin):
        raise _BadOption(f"--gtin: {gtin!r} is not a GTIN-14 (14 digits ending in a check digit)")
    if fmt == "sqlite":
        if output is None:
            raise _BadOption("--format sqlite writes a database file: give -o FILE")
        traces = [
            _load_trace(db, lot, trust_keys, config_path, all_feeds)[0]
            for lot in dict.fromkeys(lots)
        ]
        _export_sqlite(db_for(db, config_path), traces, output)
        return
    if len(lots) > 1:
        raise _BadOption(f"--format {fmt} exports one lot: give --lot once")
    trace, _ = _load_trace(db, lots[0], trust_keys, config_path, all_feeds)
    if fmt == "proof":  # a zip: to FILE or a pipe, never to a terminal
        from edge.ledger.proof import export_proof

        if output is None and sys.stdout.isatty():
            raise _BadOption("--format proof writes a zip: give -o FILE or redirect stdout")
        with _one_line_errors():
            out = output or sys.stdout.buffer
            summary = export_proof(db_for(db, config_path), trace, out, through_head=through_head)
            click.echo(summary, err=True)
        return
    with _output(output) as out:
        if fmt == "csv":
            write_lot_csv(trace, out)
        else:
            document = epcis_document(trace, now=datetime.now(UTC), gtin=gtin)
            out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")


def _export_sqlite(db: Path, traces: list[LotTrace], output: Path) -> None:
    """Write the analysis database whole: a temp file beside ``output``, renamed at the end."""
    from edge.errors import ReadingsDamaged
    from edge.ledger.export_sqlite import write_lots_sqlite

    tmp = output.with_name(output.name + ".tmp")
    try:
        if not output.parent.is_dir():  # sqlite says only "unable to open database file"
            raise click.ClickException(f"{output}: cannot write: No such directory")
        tmp.unlink(missing_ok=True)
        with _one_line_errors():
            conn = open_ledger_db(db)
        try:
            counts = write_lots_sqlite(traces, conn, tmp)
        finally:
            conn.close()
        tmp.replace(output)
    except OSError as exc:
        raise click.ClickException(f"{output}: cannot write: {exc.strerror or exc}") from exc
    except sqlite3.Error as exc:
        raise click.ClickException(f"{output}: cannot write: {exc}") from exc
    except ReadingsDamaged as exc:
        raise click.ClickException(f"{db}: cannot read readings: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    click.echo(
        f"exported {counts['lots']} lot(s) to {output}: {counts['events']} events, "
        f"{counts['measurements']} measurements, {counts['readings']} readings, "
        f"{counts['summaries']} summaries",
        err=True,
    )
