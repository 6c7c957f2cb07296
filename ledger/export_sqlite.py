"""Lots as an analysis database for quality engineers (``edge ledger export --format sqlite``).

One SQLite file that Datasette, DB Browser, an ODBC driver or pandas open as it is:

* ``lots``: one row per lot (primary key ``lot``): product, quantity, the lot's span over every
  feed (``first``, ``last``), how many stations, events and alarm activations, the ``result``
  (``fail`` when any station's lot end failed a check, ``pass`` when every one passed, NULL when
  no station ended the lot) and every failed check.
* ``events``: the rows of the CSV export (:func:`edge.ledger.export_csv.event_rows`, the same
  columns), one per event per lot (primary key lot + entry id, foreign key to ``lots``), numbers
  kept as numbers and NULL where the CSV has an empty cell; full-text searchable
  (``events_fts``) on description, comment, failed checks and note.
* ``measurements``: each lot end's per-point aggregates (count, mean, min, max, std, unit), as
  recorded, one row per lot, station and point.
* ``readings``: the raw readings this database stores (:mod:`edge.ledger.readings_read`) in the
  selected lots' time span; a reading belongs to a lot when its ``ts`` lies between the lot's
  ``first`` and ``last``. A hub's database holds none (sync does not carry raw readings).
* ``summaries``: the per-minute and per-hour summaries (:mod:`edge.ledger.readings_summary`) of
  the periods overlapping that span: point, seconds (60 or 3600), start, count, min, max, mean,
  std. They outlive the raw readings (minutes for ``minute_summary_retention``, hours for
  ever), so a lot whose raw readings were pruned still has its spread hour by hour.

Times are the ledger's fixed-width UTC text, so they sort and compare as text in SQL.
sqlite-utils creates the tables from the rows (types inferred; the numeric columns of events
declared, since their first rows may all be NULL), the indexes and the FTS table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from edge.ledger.export_csv import event_rows
from edge.ledger.readings_codec import format_micros, parse_micros
from edge.ledger.trace import LotTrace

__all__ = ["FTS_COLUMNS", "lot_row", "measurement_rows", "write_lots_sqlite"]

#: The events columns full-text search covers: what people wrote or the ledger says in words.
FTS_COLUMNS: tuple[str, ...] = ("description", "comment", "failed_checks", "note")

_EVENT_PK = ("traceability_lot_code", "reference_document_number")
_LOT_FK = ("lots", "lot")


def _null_empty(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if v == "" else v) for k, v in row.items()}


def lot_row(trace: LotTrace, events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``lots`` row of ``trace``, from its event rows (what the CSV says, summed up)."""
    ends = [e for e in events if e["entry_type"] == "lot.end"]
    results = {e["result"] for e in ends}
    span = trace.span
    first = events[0] if events else {}
    return {
        "lot": trace.lot,
        "product": first.get("product") or None,
        "quantity": first.get("quantity"),
        "unit_of_measure": first.get("unit_of_measure") or None,
        "first": span[0] if span else None,
        "last": span[1] if span else None,
        "stations": len(trace.visits),
        "events": len(events),
        "alarms": sum(1 for e in events if e["event"] == "alarm activated"),
        "result": ("fail" if "fail" in results else "pass") if ends else None,
        "failed_checks": "; ".join(
            f"{e['station'] or e['node']}: {e['failed_checks']}" for e in ends if e["failed_checks"]
        )
        or None,
    }


def _number(value: Any) -> Any:
    """A recorded statistic as a number when it is one (lot ends record some as decimals)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def measurement_rows(trace: LotTrace) -> Iterator[dict[str, Any]]:
    """Each lot end's per-point aggregates, one row per station and point, as recorded."""
    for event in trace.events:
        entry = event.entry
        aggregates = entry.body.get("aggregates") if entry.type == "lot.end" else None
        if not isinstance(aggregates, dict):
            continue
        for point in sorted(aggregates):
            agg = aggregates[point]
            if not isinstance(agg, dict):
                continue
            yield {
                "lot": trace.lot,
                "station": str(entry.body.get("station", "")) or None,
                "feed": entry.feed,
                "entry": entry.id,
                "point": point,
                **{k: _number(agg.get(k)) for k in ("count", "mean", "min", "max", "std")},
                "unit": str(agg.get("unit", "")) or None,
            }


def _window(traces: Iterable[LotTrace]) -> tuple[str, str] | None:
    """From the earliest lot start to just after the latest lot end (read windows exclude it)."""
    spans = [t.span for t in traces if t.span is not None]
    if not spans:
        return None
    last = max(s[1] for s in spans)
    return min(s[0] for s in spans), format_micros(parse_micros(last) + 1)


def _reading_rows(conn: sqlite3.Connection, window: tuple[str, str]) -> Iterator[dict[str, Any]]:
    from edge.ledger.readings_read import read_readings

    tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "reading_blocks" not in tables:
        return
    for r in read_readings(conn, since=window[0], until=window[1]):
        value = int(r.value) if isinstance(r.value, bool) else r.value
        yield {"point": r.point, "ts": r.ts, "value": value, "quality": r.quality,
               "unit": r.unit or None, "block": r.block}  # fmt: skip


def _summary_rows(conn: sqlite3.Connection, window: tuple[str, str]) -> Iterator[dict[str, Any]]:
    """Minute and hour summaries of the periods overlapping ``window`` (half-open)."""
    from edge.ledger.readings_read import read_summaries

    lo = parse_micros(window[0])
    for seconds in (60, 3600):
        # read_summaries selects periods *starting* in a window: start one period earlier to
        # take the one holding the window's first moment
        since = format_micros(lo - lo % (seconds * 1_000_000))
        for s in read_summaries(conn, seconds=seconds, since=since, until=window[1]):
            yield {"point": s.point, "seconds": seconds, "start": s.start, "count": s.count,
                   "min": s.min, "max": s.max, "mean": s.mean, "std": s.std}  # fmt: skip


def write_lots_sqlite(
    traces: Sequence[LotTrace], ledger: sqlite3.Connection, path: Path
) -> dict[str, int]:
    """Write ``traces`` and the readings of ``ledger`` in their span as a new database at ``path``.

    ``path`` must not exist (the caller writes a temporary file and renames it). Returns the
    row count of each table.

    Raises:
        sqlite3.Error: the file cannot be created or written.
        ReadingsDamaged: a stored readings block in the span does not decode.
    """
    import sqlite_utils  # only this export needs it: the CLI stays quick to start

    db = sqlite_utils.Database(path)
    try:
        counts = {"lots": 0, "events": 0, "measurements": 0, "readings": 0, "summaries": 0}
        lots: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        measurements: list[dict[str, Any]] = []
        for trace in traces:
            rows = event_rows(trace)
            lots.append(lot_row(trace, rows))
            events.extend(_null_empty(r) for r in rows)
            measurements.extend(measurement_rows(trace))
        # one transaction for the rows: sqlite-utils commits each chunk of ~160 rows on its
        # own otherwise, an fsync each (3 of the 9 s of a 500,000-reading export)
        db.conn.execute("BEGIN")
        db.table("lots").insert_all(lots, pk="lot", columns={"quantity": float})
        db.table("events").insert_all(
            events,
            pk=_EVENT_PK,
            foreign_keys=[("traceability_lot_code", *_LOT_FK)],
            # numbers, though the first rows may all be NULL (inference would say TEXT and
            # store later numbers as text)
            columns={"value": float, "limit": float, "quantity": float, "seq": int},
        )
        db.table("measurements").create(
            {"lot": str, "station": str, "feed": str, "entry": str, "point": str, "count": int,
             "mean": float, "min": float, "max": float, "std": float, "unit": str},
            foreign_keys=[("lot", *_LOT_FK)],
        )  # fmt: skip
        db.table("measurements").insert_all(measurements)
        db.table("readings").create(
            {"point": str, "ts": str, "value": float, "quality": str, "unit": str, "block": int}
        )
        db.table("summaries").create(
            {"point": str, "seconds": int, "start": str, "count": int, "min": float,
             "max": float, "mean": float, "std": float},
            pk=("point", "seconds", "start"),
        )  # fmt: skip
        window = _window(traces)
        if window is not None:
            db.table("readings").insert_all(_reading_rows(ledger, window), batch_size=5000)
            db.table("summaries").insert_all(_summary_rows(ledger, window), batch_size=5000)
        db.conn.commit()
        db.table("events").create_index(["traceability_lot_code", "event_time"])
        db.table("events").create_index(["event_time"])
        db.table("measurements").create_index(["lot"])
        db.table("readings").create_index(["point", "ts"])
        db.table("readings").create_index(["ts"])
        db.table("summaries").create_index(["seconds", "start"])
        db.table("events").enable_fts(list(FTS_COLUMNS))
        for name in counts:
            counts[name] = db.table(name).count
        db.conn.commit()
    finally:
        db.close()
    return counts
