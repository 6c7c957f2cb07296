"""What the lots list and the alarms page show, kept in memory and brought up to date per request.

The ledger is append-only, so the catalog reads each entry once: a refresh reads the lot
starts and ends, alarm transitions, operator actions and node starts added since the highest
row it has seen (through the ``entries(type)`` index; the ``+rowid`` keeps SQLite on that
index instead of walking the table from the row), and folds them in. A refresh with nothing
new costs an index probe; the first one reads every such entry of the ledger (some 25,000 in a
1,000,000-entry ledger: ~0.2 s, done once at startup). Lot search then filters, sorts and pages
a few thousand small records in memory: well under the 100 ms the office bench holds.

Only entries of ``feeds`` (the trusted feeds) are read, as ``edge ledger trace`` shows them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from edge.ledger.query import Station, Stations, StoredEntry

__all__ = ["AlarmState", "Catalog", "LotFilter", "LotPage", "LotRecord", "search_lots"]

_TYPES = (
    "lot.start",
    "lot.end",
    "alarm",
    "alarm.ack",
    "alarm.shelve",
    "alarm.unshelve",
    "node.start",
)
_BATCH = 4096

#: Sort keys of the lots list (``?sort=``).
SORTS = ("start", "end", "lot", "station", "product", "result")
RESULTS = ("pass", "fail", "open")


@dataclass(slots=True)
class LotRecord:
    """One lot as the lots list shows it (across every trusted feed that saw it)."""

    lot: str
    started: str = ""  #: earliest lot.start time
    first: str = ""  #: earliest lot.start or lot.end time
    end: str = ""  #: latest lot.end time ("" while no station has ended it)
    stations: set[str] = field(default_factory=set)
    products: set[str] = field(default_factory=set)
    feeds: set[str] = field(default_factory=set)
    ends: int = 0
    failed: list[str] = field(default_factory=list)  #: failing checks, "station: rule (statistic)"

    @property
    def start(self) -> str:
        """When the lot began: its earliest ``lot.start`` (else its earliest ``lot.end``)."""
        return self.started or self.first

    @property
    def result(self) -> str:
        """``fail`` when a lot end failed a check, ``pass`` when ended and none failed, else ``open``."""
        if self.failed:
            return "fail"
        return "pass" if self.ends else "open"

    def add(self, entry: StoredEntry, station: Station) -> None:
        """Fold in a ``lot.start``/``lot.end`` entry of this lot."""
        body = entry.body
        where = str(body.get("station") or station.name)
        self.stations.add(where)
        self.feeds.add(entry.feed)
        for key in ("product", "gtin"):
            if isinstance(body.get(key), str) and body[key]:
                self.products.add(body[key])
        self.first = min(self.first or entry.ts, entry.ts)
        if entry.type == "lot.start":
            self.started = min(self.started or entry.ts, entry.ts)
        if entry.type == "lot.end":
            self.ends += 1
            self.end = max(self.end, entry.ts)
            for check in body.get("checks") or ():
                if isinstance(check, dict) and check.get("passed") is False:
                    what = check.get("statistic") or check.get("check") or ""
                    self.failed.append(f"{where}: {check.get('rule', '?')} ({what})")


@dataclass(slots=True)
class AlarmState:
    """The latest ISA-18.2 state of one rule on one feed, from its alarm and operator entries."""

    feed: str
    rule: str
    state: str = "normal"
    since: str = ""  #: when the state last changed
    point: str = ""
    value: str = ""
    unit: str = ""
    severity: str = ""
    message: str = ""
    lots: tuple[str, ...] = ()
    acked_by: str = ""
    acked_at: str = ""
    shelved_by: str = ""
    shelved_until: str = ""  #: RFC 3339, "" when not shelved

    def add(self, entry: StoredEntry) -> None:
        """Fold in the next ``alarm``/``alarm.*`` entry of this rule (feed order)."""
        body = entry.body
        before, after = str(body.get("from", self.state)), str(body.get("to", self.state))
        if entry.type == "alarm.shelve":
            self.shelved_by = entry.actor
            until = body.get("until")
            self.shelved_until = str(until) if until is not None else "indefinitely"
        elif entry.type == "alarm.unshelve":
            self.shelved_by, self.shelved_until = "", ""
        elif entry.type == "alarm.ack":
            self.acked_by, self.acked_at = entry.actor, entry.ts
        if after != self.state or before != after:
            self.since = entry.ts
        self.state = after
        if entry.type == "alarm":
            if body.get("event") == "activated":
                self.acked_by, self.acked_at = "", ""
            self.point = str(body.get("point", ""))
            self.value = "" if body.get("value") is None else str(body["value"])
            self.unit = str(body.get("unit", ""))
            self.severity = str(body.get("severity", ""))
            self.message = str(body.get("message", ""))
            self.lots = entry.lots


@dataclass(frozen=True, slots=True)
class LotFilter:
    """A lots-list query (``/lots?...``); empty strings match everything."""

    text: str = ""  #: part of the lot code (case-insensitive)
    since: str = ""  #: lots still running at or after this time
    until: str = ""  #: lots started before this time
    station: str = ""  #: part of a station name
    product: str = ""  #: part of a product name or GTIN
    result: str = ""  #: pass / fail / open
    sort: str = "start"
    descending: bool = True
    page: int = 1
    per_page: int = 50


@dataclass(frozen=True, slots=True)
class LotPage:
    """One page of search results and how many matched in all."""

    lots: tuple[LotRecord, ...]
    total: int
    page: int
    pages: int


class Catalog:
    """The lots and alarm states of a ledger database, refreshed incrementally (thread-safe)."""

    def __init__(self, feeds: Collection[str] | None) -> None:
        self.feeds = None if feeds is None else frozenset(feeds)
        self.lots: dict[str, LotRecord] = {}
        self.alarms: dict[tuple[str, str], AlarmState] = {}
        self.stations = Stations()
        self.seen = 0  #: highest rowid folded in
        #: ``readings.prune`` entries seen: raw readings may have gone (cached charts are stale)
        self.prunes = 0
        self._lock = threading.Lock()

    def refresh(self, conn: sqlite3.Connection) -> int:
        """Fold in the entries added since the last refresh; returns how many were read."""
        with self._lock:
            marks = ", ".join("?" * len(_TYPES))
            cursor = conn.execute(
                f"SELECT rowid, feed, seq, id, raw FROM entries WHERE type IN ({marks}) "
                "AND +rowid > ? ORDER BY rowid",
                (*_TYPES, self.seen),
            )
            count = 0
            while rows := cursor.fetchmany(_BATCH):
                count += len(rows)
                self.seen = rows[-1][0]
                self._fold(StoredEntry.from_row(f, s, i, raw) for _, f, s, i, raw in rows)
            return count

    def _fold(self, entries: Iterable[StoredEntry]) -> None:
        for entry in entries:
            if entry.type == "readings.prune":
                self.prunes += 1
                continue
            if self.feeds is not None and entry.feed not in self.feeds:
                continue
            if entry.type == "node.start":
                body = entry.body
                station = Station(
                    entry.feed,
                    str(body.get("node_id", "")),
                    str(body.get("site", "")),
                    str(body.get("version", "")),
                )
                self.stations.starts.setdefault(entry.feed, []).append((entry.ts, station))
            elif entry.type in ("lot.start", "lot.end"):
                names = set(entry.lots)
                if isinstance(entry.body.get("lot"), str):
                    names.add(entry.body["lot"])
                for lot in names:
                    record = self.lots.get(lot)
                    if record is None:
                        record = self.lots[lot] = LotRecord(lot)
                    record.add(entry, self.stations.at(entry.feed, entry.ts))
            else:
                rule = str(entry.body.get("rule", ""))
                state = self.alarms.get((entry.feed, rule))
                if state is None:
                    state = self.alarms[(entry.feed, rule)] = AlarmState(entry.feed, rule)
                state.add(entry)

    def open_alarms(self) -> list[AlarmState]:
        """Every alarm not in ``normal``, unacknowledged first, then newest first."""
        with self._lock:
            found = [a for a in self.alarms.values() if a.state != "normal"]
        order = {"active_unack": 0, "rtn_unack": 1, "active_ack": 2}
        found.sort(key=lambda a: a.since, reverse=True)
        found.sort(key=lambda a: order.get(a.state, 3))
        return found

    def recently_ended(self, count: int) -> list[tuple[str, str]]:
        """(lot, end time) of the ``count`` lots whose last ``lot.end`` is newest."""
        with self._lock:
            ended = [(r.end, r.lot) for r in self.lots.values() if r.end]
        ended.sort(reverse=True)
        return [(lot, end) for end, lot in ended[:count]]

    def search(self, flt: LotFilter) -> LotPage:
        """The page of lots matching ``flt``."""
        with self._lock:
            records = list(self.lots.values())
        return search_lots(records, flt)


def _key(record: LotRecord, sort: str) -> Any:
    if sort == "station":
        return ", ".join(sorted(record.stations))
    if sort == "product":
        return ", ".join(sorted(record.products))
    if sort in ("lot", "end", "result"):
        return getattr(record, sort)
    return record.start


def search_lots(records: Iterable[LotRecord], flt: LotFilter) -> LotPage:
    """Filter, sort and page ``records`` (pure: the catalog's lots in, one page out)."""
    text, station, product = flt.text.lower(), flt.station.lower(), flt.product.lower()
    chosen = [
        r
        for r in records
        if (not text or text in r.lot.lower())
        and (not flt.until or (r.start or r.end) < flt.until)
        and (not flt.since or not r.end or r.end >= flt.since)
        and (not station or any(station in s.lower() for s in r.stations))
        and (not product or any(product in p.lower() for p in r.products))
        and (not flt.result or r.result == flt.result)
    ]
    sort = flt.sort if flt.sort in SORTS else "start"
    chosen.sort(key=lambda r: r.lot)  # ties in the sort key: lot code order, stable across pages
    chosen.sort(key=lambda r: _key(r, sort), reverse=flt.descending)
    per = max(1, flt.per_page)
    pages = max(1, -(-len(chosen) // per))
    page = min(max(1, flt.page), pages)
    return LotPage(tuple(chosen[(page - 1) * per : page * per]), len(chosen), page, pages)
