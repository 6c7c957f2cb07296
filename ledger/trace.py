"""A lot's history across every feed in a database: what ``edge ledger trace LOT`` shows.

The lot's own entries come from the ``entry_lots`` index (a handful of rows per lot, however
large the ledger). The lot's time on a feed (its *extent*) runs from its ``lot.start`` to its
``lot.end`` there; where one is missing, the lot's first (last) own entry bounds it. Corrections
and operator actions never extend it: a correction carries the lot it corrects, an hour later,
and a rule change in that hour is not the lot's. Around the extent trace gathers, per feed:

* the station that wrote the feed (its ``node.start`` entries);
* the rule set in force: the feed's latest ``rules.change`` at or before the lot's start on
  that feed, plus any rule change within the extent;
* the node's own starts and stops within the extent (a restart inside the lot), a start noting
  how long the node was down and whether it had stopped or was killed
  (:mod:`edge.ledger.node_runs`);
* operator actions on the lot's alarms. ``alarm.ack``/``alarm.shelve``/``alarm.unshelve`` act on
  an activation: the one their ``refs`` name, else the latest activation of their rule on their
  feed (ISA-18.2: the operator acts on the alarm as it stands). One belongs to the lot when that
  activation is the lot's, whatever lot the action itself carries (an ack typed during lot B
  for an alarm raised in lot A is A's). After the lot ends, the first action on a rule still
  unacknowledged counts while it comes within :data:`ACK_WINDOW` and before the rule is
  activated again;
* corrections that refer to any entry of the trace (nothing is edited; a correction is a new
  entry pointing at the old one, and trace shows both).

A station visit missing its ``lot.start`` or ``lot.end`` says why (``no lot.end: node down from
.. to ..``, ``no lot.end: the node stopped at ..``, ``no lot.end yet: the lot is still
running``, ...).

All lookups go through indexes (``entry_lots(lot)``, ``entries(type)``, ``entries(feed, ts)``,
the ``(feed, seq)`` key), so a trace costs milliseconds in a ledger of millions of entries.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from edge.errors import StorageError
from edge.ledger.node_runs import FeedRuns, load_runs
from edge.ledger.query import (
    Station,
    Stations,
    StoredEntry,
    format_ts,
    load_stations,
    summarize,
)

__all__ = ["ACK_WINDOW", "LotTrace", "RuleSet", "StationVisit", "TraceEvent", "trace_lot"]

#: How long after a lot's last entry on a feed an acknowledgement still counts as the lot's.
ACK_WINDOW = timedelta(hours=24)

_ACK_TYPES = ("alarm.ack", "alarm.shelve", "alarm.unshelve")


@dataclass(frozen=True, slots=True)
class TraceEvent:
    """One entry on the lot's timeline, with the station that wrote it.

    Attributes:
        corrected_by: ids of ``correction`` entries that refer to this one.
        note: what the entry alone does not say (for a ``node.start`` inside the lot: how long
            the node was down before it, and whether it stopped or was killed).
        refers_to: for an operator action, the id of the alarm activation it acts on.
    """

    entry: StoredEntry
    station: Station
    summary: str
    corrected_by: tuple[str, ...] = ()
    note: str = ""
    refers_to: str | None = None


@dataclass(frozen=True, slots=True)
class StationVisit:
    """The lot's stay at one station: its ``lot.start`` and ``lot.end`` (either may be missing).

    Attributes:
        start_note: why ``start`` is missing (``no lot.start: node down from .. to ..``, ...).
        end_note: why ``end`` is missing (``no lot.end: the node stopped at ..``, ...).
    """

    station: Station
    name: str
    start: StoredEntry | None
    end: StoredEntry | None
    start_note: str = ""
    end_note: str = ""

    @property
    def aggregates(self) -> Mapping[str, Mapping[str, Any]]:
        """Per-point ``{count, mean, min, max, std, unit}`` from the ``lot.end`` (else empty)."""
        value = self.end.body.get("aggregates") if self.end else None
        return value if isinstance(value, dict) else {}

    @property
    def checks(self) -> list[Mapping[str, Any]]:
        """The lot-end aggregate checks (``rule, statistic, value, limit, passed``)."""
        value = self.end.body.get("checks") if self.end else None
        return [c for c in value if isinstance(c, dict)] if isinstance(value, list) else []


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A rule set in force on a feed while the lot was there (from a ``rules.change``)."""

    station: Station
    entry: StoredEntry

    @property
    def hash(self) -> str:
        """The rule set's content hash as recorded."""
        return str(self.entry.body.get("hash", ""))


@dataclass(frozen=True, slots=True)
class LotTrace:
    """Everything the ledger knows about one lot, in time order across feeds."""

    lot: str
    events: tuple[TraceEvent, ...]
    visits: tuple[StationVisit, ...]
    rule_sets: tuple[RuleSet, ...]
    stations: Stations = field(default_factory=Stations)
    #: Per feed, the lot's time there: (``lot.start`` time, ``lot.end`` time), or the lot's first
    #: (last) own entry where one is missing. Corrections and acknowledgements do not extend it.
    extents: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def span(self) -> tuple[str, str] | None:
        """From the lot's earliest start to its latest end over every feed (None when empty)."""
        if not self.extents:
            return None
        return min(f for f, _ in self.extents.values()), max(t for _, t in self.extents.values())

    @property
    def entry_ids(self) -> list[str]:
        """Ids of every entry the trace was built from (events and rule sets), sorted."""
        ids = {e.entry.id for e in self.events} | {r.entry.id for r in self.rule_sets}
        return sorted(ids)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping (``edge ledger trace --json``)."""
        span = self.span
        return {
            "lot": self.lot,
            "first": span[0] if span else None,
            "last": span[1] if span else None,
            "stations": [
                {
                    "station": v.name,
                    "node": v.station.node_id,
                    "site": v.station.site,
                    "feed": v.station.feed,
                    "start": v.start.ts if v.start else None,
                    "end": v.end.ts if v.end else None,
                    "start_note": v.start_note or None,
                    "end_note": v.end_note or None,
                    "aggregates": dict(v.aggregates),
                    "checks": list(v.checks),
                }
                for v in self.visits
            ],
            "rule_sets": [
                {
                    "node": r.station.node_id,
                    "site": r.station.site,
                    "feed": r.station.feed,
                    "hash": r.hash,
                    "ts": r.entry.ts,
                    "entry": r.entry.id,
                    "rules": list(r.entry.body.get("rules") or ()),
                    "files": list(r.entry.body.get("files") or ()),
                }
                for r in self.rule_sets
            ],
            "events": [
                {
                    **e.entry.to_json(),
                    "node": e.station.node_id,
                    "site": e.station.site,
                    "summary": e.summary,
                    "corrected_by": list(e.corrected_by),
                    "note": e.note or None,
                    "refers_to": e.refers_to,
                }
                for e in self.events
            ],
        }


def _rows(conn: sqlite3.Connection, sql: str, args: Iterable[Any]) -> list[StoredEntry]:
    try:
        return [StoredEntry.from_row(*row) for row in conn.execute(sql, tuple(args))]
    except sqlite3.Error as exc:
        raise StorageError(f"ledger trace failed: {exc}") from exc


def _later(ts: str, delta: timedelta) -> str:
    return format_ts(datetime.fromisoformat(ts) + delta)


def trace_lot(conn: sqlite3.Connection, lot: str, feeds: Collection[str] | None = None) -> LotTrace:
    """Build the lot's timeline from every feed in the database behind ``conn``.

    Args:
        conn: the ledger database.
        lot: the lot code.
        feeds: only these feeds (the trusted ones, :mod:`edge.ledger.trust`); None: every feed.

    Returns:
        The trace; ``events`` is empty when no entry names the lot.

    Raises:
        StorageError: the database could not be read.
    """
    own = _rows(
        conn,
        "SELECT e.feed, e.seq, e.id, e.raw FROM entry_lots l "
        "JOIN entries e ON e.feed = l.feed AND e.seq = l.seq WHERE l.lot = ?",
        (lot,),
    )
    if feeds is not None:
        own = [e for e in own if e.feed in feeds]
    # What the lot is made of: everything naming it except corrections and operator actions,
    # which attach to the entry they refer to (below), wherever they were written.
    core = [e for e in own if e.type != "correction" and e.type not in _ACK_TYPES]
    if not core:
        return LotTrace(lot, (), (), ())
    stations = load_stations(conn)
    found: dict[str, StoredEntry] = {e.id: e for e in core}
    notes: dict[str, str] = {}
    refers: dict[str, str] = {}  # operator action -> the activation it acts on
    by_feed: dict[str, list[StoredEntry]] = {}
    for entry in core:
        by_feed.setdefault(entry.feed, []).append(entry)

    rule_sets: list[RuleSet] = []
    runs: dict[str, FeedRuns] = {}
    extents: dict[str, tuple[str, str]] = {}
    for feed, entries in sorted(by_feed.items()):
        first, last = _extent(entries)
        extents[feed] = (first, last)
        # ``+e.feed``/``+e.ts`` keep SQLite on the type index: rule changes are few, while a
        # feed's (feed, ts) range before the lot can hold millions of entries.
        changes = _rows(
            conn,
            "SELECT e.feed, e.seq, e.id, e.raw FROM entries e "
            "WHERE e.type = 'rules.change' AND +e.feed = ? AND +e.ts <= ?",
            (feed, last),
        )
        changes.sort(key=lambda e: (e.ts, e.seq))
        before = [c for c in changes if c.ts <= first]
        during = [c for c in changes if c.ts > first]
        for change in before[-1:] + during:
            rule_sets.append(RuleSet(stations.at(feed, change.ts), change))
            if change.ts > first:
                found.setdefault(change.id, change)
        feed_runs = runs[feed] = load_runs(conn, feed)
        for entry in feed_runs.inside(first, last):
            found.setdefault(entry.id, entry)
            if entry.type == "node.start":
                down = feed_runs.downtime_ending(entry)
                if down is not None:
                    notes[entry.id] = down.describe()
        _add_acks(conn, feed, entries, last, found, refers)

    _add_corrections(conn, found, feeds)
    corrected: dict[str, list[str]] = {}
    for entry in found.values():
        if entry.type == "correction":
            for target in _targets(entry):
                corrected.setdefault(target, []).append(entry.id)
    ordered = sorted(found.values(), key=lambda e: (e.ts, e.feed, e.seq))
    events = tuple(
        TraceEvent(
            entry=e,
            station=stations.at(e.feed, e.ts),
            summary=summarize(e),
            corrected_by=tuple(corrected.get(e.id, ())),
            note=notes.get(e.id, ""),
            refers_to=refers.get(e.id),
        )
        for e in ordered
    )
    rule_sets.sort(key=lambda r: (r.entry.ts, r.entry.feed, r.entry.seq))
    visits = _explain(conn, _visits(ordered, stations), by_feed, runs, stations)
    return LotTrace(lot, events, visits, tuple(rule_sets), stations, extents)


def _extent(entries: list[StoredEntry]) -> tuple[str, str]:
    """The lot's time on a feed: from its ``lot.start`` to its ``lot.end``.

    Where one is missing, the lot's first (last) own entry bounds it: an alarm carries the lot
    only while the lot runs. Corrections and operator actions are not among ``entries``: a
    correction an hour later must not stretch the lot over what happened in that hour.
    """
    starts = [e.ts for e in entries if e.type == "lot.start"]
    ends = [e.ts for e in entries if e.type == "lot.end"]
    first = min(starts) if starts else min(e.ts for e in entries)
    last = max(ends) if ends else max(e.ts for e in entries)
    return first, max(first, last)


def _activation_of(
    ack: StoredEntry, activations: dict[str, list[StoredEntry]], alarm_ids: set[str]
) -> str | None:
    """The lot's activation ``ack`` refers to (None: not one of the lot's).

    One its ``refs`` name, else the latest activation of its rule at or before it (ISA-18.2: an
    operator acts on the alarm as it stands).
    """
    named = [r for r in ack.refs if r in alarm_ids]
    if named:
        return named[0]
    chosen = None
    for activation in activations.get(str(ack.body.get("rule", "")), ()):
        if activation.ts <= ack.ts:
            chosen = activation.id
    return chosen


def _first_alarms(entries: list[StoredEntry]) -> dict[str, StoredEntry]:
    """Per alarm rule, the lot's first alarm entry of it."""
    first: dict[str, StoredEntry] = {}
    for alarm in sorted((e for e in entries if e.type == "alarm"), key=lambda e: (e.ts, e.seq)):
        first.setdefault(str(alarm.body.get("rule", "")), alarm)
    return first


def _activation_before(
    conn: sqlite3.Connection, feed: str, rule: str, ts: str
) -> StoredEntry | None:
    """The latest activation of ``rule`` on ``feed`` before ``ts``.

    At most :data:`ACK_WINDOW` earlier: the walk back on the ``(feed, ts)`` index stops there.
    """
    try:
        row = conn.execute(
            "SELECT e.feed, e.seq, e.id, e.raw FROM entries e "
            "WHERE e.feed = ? AND e.ts < ? AND e.ts >= ? AND e.type = 'alarm' "
            "AND json_extract(CAST(e.raw AS TEXT), '$.body.rule') = ? "
            "AND json_extract(CAST(e.raw AS TEXT), '$.body.event') = 'activated' "
            "ORDER BY e.ts DESC LIMIT 1",
            (feed, ts, _later(ts, -ACK_WINDOW), rule),
        ).fetchone()
    except sqlite3.Error:
        return None  # a damaged raw in the window: verify names it; count none found
    return None if row is None else StoredEntry.from_row(*row)


def _add_acks(
    conn: sqlite3.Connection,
    feed: str,
    entries: list[StoredEntry],
    last: str,
    found: dict[str, StoredEntry],
    refers: dict[str, str],
) -> None:
    """Add the feed's operator actions on the lot's alarm activations to ``found``.

    An ``alarm.ack``/``alarm.shelve``/``alarm.unshelve`` belongs to the activation it refers to
    (``refs``, or the latest activation of its rule before it), whatever lot it carries: an
    operator acknowledging, during lot B, an alarm raised in lot A acts on lot A's alarm.
    ``refers`` maps each added action to that activation.

    Two lookups, both on the ``(feed, ts)`` index: every action from the lot's first activation
    to its end (a range as long as the lot's stay), then, for each alarm rule still without one,
    the first action on that rule after the lot, at most :data:`ACK_WINDOW` later and before the
    rule's next activation (``LIMIT 1``: the walk stops at it, so an acknowledgement minutes
    after the lot costs minutes of entries, not a day's; an alarm never acknowledged costs the
    whole window).
    """
    activations: dict[str, list[StoredEntry]] = {}
    for alarm in sorted((e for e in entries if e.type == "alarm"), key=lambda e: (e.ts, e.seq)):
        if alarm.body.get("event") == "activated":
            activations.setdefault(str(alarm.body.get("rule", "")), []).append(alarm)
    for rule, alarms in _first_alarms(entries).items():
        if alarms.body.get("event") == "activated":
            continue
        # The lot saw this alarm already raised: its activation is earlier, in another lot
        # (whose trace shows the actions on it), unless the ledger does not hold it.
        if _activation_before(conn, feed, rule, alarms.ts) is None:
            activations.setdefault(rule, []).insert(0, alarms)
    if not activations:
        return
    alarm_ids = {a.id for rule in activations.values() for a in rule}
    marks = ", ".join("?" * len(_ACK_TYPES))
    during = _rows(
        conn,
        "SELECT e.feed, e.seq, e.id, e.raw FROM entries e "
        f"WHERE e.feed = ? AND e.ts >= ? AND e.ts <= ? AND e.type IN ({marks})",
        (feed, min(a[0].ts for a in activations.values()), last, *_ACK_TYPES),
    )
    acked: set[str] = set()
    for ack in during:
        activation = _activation_of(ack, activations, alarm_ids)
        if activation is not None:
            found.setdefault(ack.id, ack)
            refers[ack.id] = activation
            rule = str(ack.body.get("rule", ""))
            if activations.get(rule) and activations[rule][-1].id == activation:
                acked.add(rule)
    horizon = _later(last, ACK_WINDOW)
    for rule in sorted(activations.keys() - acked):
        later = _first_ack_after(conn, feed, rule, last, horizon)
        if later is not None:
            found.setdefault(later.id, later)
            refers[later.id] = activations[rule][-1].id


def _first_ack_after(
    conn: sqlite3.Connection, feed: str, rule: str, after: str, horizon: str
) -> StoredEntry | None:
    """The first ack/shelve of ``rule`` in ``(after, horizon]``, unless the rule fires first.

    An ack after a new activation acknowledges that one (ISA-18.2), not the lot's.
    """
    marks = ", ".join("?" * len(_ACK_TYPES))
    window = "e.feed = ? AND e.ts > ? AND e.ts <= ?"
    try:
        # SQLite filters on the JSON and stops at the first match (cheap in the common case).
        rows = conn.execute(
            "SELECT e.feed, e.seq, e.id, e.raw FROM entries e "
            f"WHERE {window} AND e.type IN ({marks}, 'alarm') "
            "AND json_extract(CAST(e.raw AS TEXT), '$.body.rule') = ? "
            "AND (e.type != 'alarm' "
            "     OR json_extract(CAST(e.raw AS TEXT), '$.body.event') = 'activated') "
            "ORDER BY e.ts LIMIT 1",
            (feed, after, horizon, *_ACK_TYPES, rule),
        ).fetchall()
        candidates = [StoredEntry.from_row(*row) for row in rows]
    except sqlite3.OperationalError:
        # A raw that is not JSON in the window (a damaged file: verify names it); trace goes
        # on, filtering in Python and skipping what it cannot read.
        candidates = []
        for row in conn.execute(
            "SELECT e.feed, e.seq, e.id, e.raw FROM entries e "
            f"WHERE {window} AND e.type IN ({marks}, 'alarm') ORDER BY e.ts",
            (feed, after, horizon, *_ACK_TYPES),
        ):
            try:
                entry = StoredEntry.from_row(*row)
            except StorageError:
                continue
            if entry.body.get("rule") == rule and (
                entry.type != "alarm" or entry.body.get("event") == "activated"
            ):
                candidates.append(entry)
                break
    for entry in candidates:
        return None if entry.type == "alarm" else entry
    return None


def _targets(correction: StoredEntry) -> set[str]:
    targets = set(correction.refs)
    corrects = correction.body.get("corrects")
    if isinstance(corrects, str):
        targets.add(corrects)
    return targets


def _add_corrections(
    conn: sqlite3.Connection, found: dict[str, StoredEntry], feeds: Collection[str] | None
) -> None:
    """Add corrections referring to any found entry (repeatedly: corrections of corrections)."""
    corrections = _rows(
        conn,
        "SELECT e.feed, e.seq, e.id, e.raw FROM entries e WHERE e.type = 'correction'",
        (),
    )
    if feeds is not None:
        corrections = [c for c in corrections if c.feed in feeds]
    added = True
    while added:
        added = False
        for correction in corrections:
            if correction.id not in found and _targets(correction) & found.keys():
                found[correction.id] = correction
                added = True


def _visits(ordered: list[StoredEntry], stations: Stations) -> tuple[StationVisit, ...]:
    """Pair each ``lot.start`` with the next ``lot.end`` of the same feed and station."""
    visits: list[StationVisit] = []
    open_at: dict[tuple[str, str], int] = {}
    for entry in ordered:
        if entry.type not in ("lot.start", "lot.end"):
            continue
        name = str(entry.body.get("station", ""))
        key = (entry.feed, name)
        station = stations.at(entry.feed, entry.ts)
        if entry.type == "lot.start":
            open_at[key] = len(visits)
            visits.append(StationVisit(station, name, entry, None))
        elif key in open_at:
            index = open_at.pop(key)
            visits[index] = StationVisit(visits[index].station, name, visits[index].start, entry)
        else:
            visits.append(StationVisit(station, name, None, entry))
    return tuple(visits)


def _explain(
    conn: sqlite3.Connection,
    visits: tuple[StationVisit, ...],
    by_feed: Mapping[str, list[StoredEntry]],
    runs: Mapping[str, FeedRuns],
    stations: Stations,
) -> tuple[StationVisit, ...]:
    """Say, for each visit missing its start or end, why (from the feed's starts and stops).

    A feed where the lot has entries but neither a start nor an end gets a visit of its own,
    with both reasons.
    """
    out: list[StationVisit] = []
    seen = {v.station.feed for v in visits}
    for feed in sorted(by_feed.keys() - seen):
        mine = by_feed[feed]
        first = min(e.ts for e in mine)
        out.append(
            StationVisit(
                stations.at(feed, first),
                "",
                None,
                None,
                runs[feed].why_no_start(first),
                runs[feed].why_no_end(max(e.ts for e in mine), None),
            )
        )
    for visit in visits:
        feed = visit.station.feed
        mine = by_feed.get(feed, [])
        if not mine or feed not in runs:
            out.append(visit)
            continue
        start_note = end_note = ""
        if visit.start is None and visit.end is not None:
            first = min((e.ts for e in mine if e.ts <= visit.end.ts), default=visit.end.ts)
            start_note = runs[feed].why_no_start(first)
        if visit.end is None and visit.start is not None:
            last = max((e.ts for e in mine if e.ts >= visit.start.ts), default=visit.start.ts)
            end_note = runs[feed].why_no_end(last, _next_lot_start(conn, visit, last))
        out.append(
            StationVisit(visit.station, visit.name, visit.start, visit.end, start_note, end_note)
        )

    def begins(visit: StationVisit) -> str:
        ends = [e.ts for e in (visit.start, visit.end) if e is not None]
        return min(ends or [e.ts for e in by_feed[visit.station.feed]])

    out.sort(key=begins)
    return tuple(out)


def _next_lot_start(
    conn: sqlite3.Connection, visit: StationVisit, after: str
) -> StoredEntry | None:
    """The next ``lot.start`` at the visit's station on its feed after ``after`` (another lot).

    On the type index with the feed and time checked per row: one row per lot, far fewer than
    the feed's entries after ``after`` that the ``(feed, ts)`` index would walk.
    """
    rows = _rows(
        conn,
        "SELECT e.feed, e.seq, e.id, e.raw FROM entries e "
        "WHERE e.type = 'lot.start' AND +e.feed = ? AND +e.ts > ?",
        (visit.station.feed, after),
    )
    rows = [r for r in rows if r.body.get("station") == visit.name]
    return min(rows, key=lambda e: (e.ts, e.seq)) if rows else None
