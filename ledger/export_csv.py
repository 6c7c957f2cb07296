"""A lot's history as a sortable spreadsheet (FSMA 204 style).

One row per critical tracking event (lot start/end, alarm transition, acknowledgement,
shelving, correction, rule change, node start or stop inside the lot, readings digest naming the
lot), each with its key data
elements: what happened, when (ISO 8601 UTC, fixed width, so sorting the column as text sorts
it in time), where (site, node, station), which traceability lot code, which product and
quantity where the ledger records them, and the reference record: the ledger entry id, feed and
seq an auditor checks with ``edge ledger verify``. ``refers_to`` names the alarm activation an
operator action acts on; ``note`` says what the entry alone does not: why the lot's start or end
at a station is missing (on the row of the one that is there), how long the node was down
before a ``node start``.

The lot-end row's ``result`` is ``pass`` or ``fail`` (to filter on), and ``failed_checks`` names
every check that failed with the statistic it failed on, as recorded (``case_weight: min >= 5.95
(min = 5.91)``; several joined by ``; ``). The file starts with a UTF-8 byte-order mark: without
it, a spreadsheet on Windows reads the file as its legacy code page and garbles ``N·m`` and
``°C``.

Cells that a spreadsheet would run as a formula (text starting with ``=``, ``+``, ``@``, a tab
or carriage return, or ``-`` not followed by a number) are prefixed with ``'``: comments typed by
operators end up here, and an export must not execute them.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from typing import IO, Any

from edge.ledger.trace import LotTrace, TraceEvent

__all__ = ["CSV_COLUMNS", "csv_rows", "event_rows", "failing_checks", "write_lot_csv"]

#: Header row, in order.
CSV_COLUMNS: tuple[str, ...] = (
    "event_time",
    "event",
    "entry_type",
    "traceability_lot_code",
    "product",
    "quantity",
    "unit_of_measure",
    "location",
    "node",
    "station",
    "point",
    "value",
    "limit",
    "unit",
    "result",
    "failed_checks",
    "actor",
    "comment",
    "description",
    "measurements",
    "rule_set",
    "reference_document_type",
    "reference_document_number",
    "feed",
    "seq",
    "corrected_by",
    "refers_to",
    "note",
)

_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


def _event_name(entry_type: str, body: Mapping[str, Any]) -> str:
    match entry_type:
        case "lot.start":
            return "lot start"
        case "lot.end":
            return "lot end (inspection)"
        case "alarm":
            return f"alarm {body.get('event', '')}".strip()
        case "alarm.ack":
            return "alarm acknowledged"
        case "alarm.shelve":
            return "alarm shelved"
        case "alarm.unshelve":
            return "alarm unshelved"
        case "rules.change":
            return "rule set change"
        case "config.change":
            return "configuration change"
        case "readings.digest":
            return "readings digest"
        case "node.start":
            return "node start"
        case "node.stop":
            return "node stop"
        case _:
            return entry_type


def _safe(cell: object) -> str:
    text = "" if cell is None else str(cell)
    if text[:1] in ("=", "+", "@", "\t", "\r") or (
        text.startswith("-") and not _NUMBER.fullmatch(text)
    ):
        return "'" + text
    return text


def _measurements(aggregates: Mapping[str, Any]) -> str:
    parts = []
    for point in sorted(aggregates):
        agg = aggregates[point]
        if not isinstance(agg, dict):
            continue
        stats = " ".join(
            f"{k}={agg[k]}" for k in ("count", "mean", "min", "max", "std") if k in agg
        )
        parts.append(f"{point}: {stats} {agg.get('unit', '')}".strip())
    return "; ".join(parts)


def failing_checks(checks: Iterable[Mapping[str, Any]]) -> list[str]:
    """Each failed check of a ``lot.end`` as ``rule: check (statistic = value)``, as recorded.

    ``case_weight: min >= 5.95 (min = 5.91)``; a check without a value (no readings) says
    ``min: no value``.
    """
    out = []
    for c in checks:
        if c.get("passed") is True:
            continue
        stat = str(c.get("statistic", ""))
        value = c.get("value")
        measured = f"{stat} = {value}" if value is not None else f"{stat}: no value"
        out.append(f"{c.get('rule', '')}: {c.get('check') or stat} ({measured})")
    return out


def _lot_facts(trace: LotTrace) -> dict[str, Any]:
    """Product and quantity as any of the lot's entries records them (first one wins)."""
    facts: dict[str, Any] = {}
    for event in trace.events:
        body = event.entry.body
        for key in ("product", "gtin", "quantity", "quantity_unit"):
            if body.get(key) is not None and key not in facts:
                facts[key] = body[key]
    return facts


def _rule_set_at(trace: LotTrace, event: TraceEvent) -> str:
    chosen = ""
    for rule_set in trace.rule_sets:
        if rule_set.entry.feed == event.entry.feed and rule_set.entry.ts <= event.entry.ts:
            chosen = rule_set.hash
    return chosen


def _notes(trace: LotTrace) -> dict[str, str]:
    """Per entry id, what the trace says beyond the entry itself.

    Why a visit's other end is missing (on the ``lot.start`` or ``lot.end`` that is there), how
    long the node was down (on a ``node.start``).
    """
    notes = {e.entry.id: e.note for e in trace.events if e.note}
    for visit in trace.visits:
        if visit.start is not None and visit.end_note:
            notes[visit.start.id] = visit.end_note
        if visit.end is not None and visit.start_note:
            notes[visit.end.id] = visit.start_note
    return notes


def event_rows(trace: LotTrace) -> list[dict[str, Any]]:
    """One row per event of ``trace``, keyed by :data:`CSV_COLUMNS`, in time order, as recorded.

    What a row holds, said once for every export: the CSV writes each cell as text (formulas
    neutralised, :func:`csv_rows`); the analysis database (:mod:`.export_sqlite`) keeps numbers
    as numbers: ``seq`` an int, ``value``, ``limit`` and ``quantity`` as the entry recorded
    them (None where absent); every other cell is text.
    """
    facts = _lot_facts(trace)
    notes = _notes(trace)
    product = str(facts.get("product", facts.get("gtin", "")))
    rows: list[dict[str, Any]] = []
    for event in trace.events:
        entry, body = event.entry, event.entry.body
        station = event.station
        result = failed = ""
        if entry.type == "lot.end":
            checks = [c for c in body.get("checks") or () if isinstance(c, dict)]
            result = "pass" if all(c.get("passed") is True for c in checks) else "fail"
            failed = "; ".join(failing_checks(checks))
        elif entry.type == "alarm":
            result = str(body.get("severity", ""))
        aggregates = body.get("aggregates") if entry.type == "lot.end" else None
        row = {
            "event_time": entry.ts,
            "event": _event_name(entry.type, body),
            "entry_type": entry.type,
            "traceability_lot_code": trace.lot,
            "product": product,
            "quantity": body.get("quantity", facts.get("quantity")),
            "unit_of_measure": str(body.get("quantity_unit", facts.get("quantity_unit", ""))),
            "location": station.site,
            "node": station.node_id or station.feed[:12],
            "station": str(body.get("station", "")),
            "point": str(body.get("point", "")) if entry.type == "alarm" else "",
            "value": body.get("value"),
            "limit": body.get("limit"),
            "unit": str(body.get("unit", "")) if entry.type == "alarm" else "",
            "result": result,
            "failed_checks": failed,
            "actor": entry.actor,
            "comment": str(body.get("comment", "")),
            "description": event.summary,
            "measurements": _measurements(aggregates) if isinstance(aggregates, dict) else "",
            "rule_set": _rule_set_at(trace, event),
            "reference_document_type": "edge-qc ledger entry",
            "reference_document_number": entry.id,
            "feed": entry.feed,
            "seq": entry.seq,
            "corrected_by": " ".join(event.corrected_by),
            "refers_to": event.refers_to or "",
            "note": notes.get(entry.id, ""),
        }
        rows.append(row)
    return rows


def csv_rows(trace: LotTrace) -> list[dict[str, str]]:
    """The spreadsheet rows of ``trace`` (:func:`event_rows` as text), in time order."""
    return [{k: _safe(v) for k, v in row.items()} for row in event_rows(trace)]


def write_lot_csv(trace: LotTrace, out: IO[str], *, bom: bool = True) -> int:
    r"""Write ``trace`` as CSV (header + one row per event) to ``out``; returns the row count.

    ``out`` should be opened with ``newline=""`` (the csv module writes ``\\r\\n`` itself) and
    encoding UTF-8. ``bom``: start with the byte-order mark (U+FEFF) spreadsheets look for.
    """
    if bom:
        out.write("\ufeff")
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    rows = csv_rows(trace)
    writer.writerows(rows)
    return len(rows)
