"""Read-side access to a ledger database: filtered queries, station names, one-line summaries.

Everything here reads; nothing writes. Rows are decoded from ``raw`` (the canonical bytes that
are hashed and signed), never from the index columns, so what a quality manager sees is what
``edge ledger verify`` vouches for. The index columns (``type``, ``ts``, ``feed``, ``entry_lots``)
only choose which rows to read.

Times in the store are fixed-width RFC 3339 UTC strings, so comparing them as text orders them
in time; :func:`parse_time` turns what people type into that form.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from edge.durations import parse_duration
from edge.errors import ConfigError, StorageError, UnknownEntry

__all__ = [
    "EntryFilter",
    "NumberFormat",
    "Station",
    "Stations",
    "StoredEntry",
    "entries_by_id",
    "find_entry",
    "format_in_range",
    "format_ts",
    "load_stations",
    "open_ledger_db",
    "parse_time",
    "query_entries",
    "summarize",
]

_COLUMNS = "e.feed, e.seq, e.id, e.raw"


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """One ledger entry as stored, decoded from its canonical bytes.

    Attributes:
        id: hex SHA-256 of the canonical bytes (what ``refs`` and ``correction`` point at).
        feed: hex Ed25519 public key of the node that wrote it.
        seq: position in that feed.
    """

    id: str
    feed: str
    seq: int
    prev: str | None
    ts: str
    type: str
    actor: str
    lots: tuple[str, ...]
    body: Mapping[str, Any]
    refs: tuple[str, ...]

    @classmethod
    def from_row(cls, feed: str, seq: int, entry_id: str, raw: bytes) -> StoredEntry:
        """Decode a row of ``entries``; ``raw`` wins over the index columns except the id."""
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise StorageError(f"entry {feed[:12]}…/{seq}: raw is not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise StorageError(f"entry {feed[:12]}…/{seq}: raw is not a JSON object")
        body = doc.get("body")
        return cls(
            id=entry_id,
            feed=str(doc.get("feed", feed)),
            seq=int(doc.get("seq", seq)),
            prev=doc.get("prev"),
            ts=str(doc.get("ts", "")),
            type=str(doc.get("type", "")),
            actor=str(doc.get("actor", "")),
            lots=tuple(str(x) for x in doc.get("lots") or ()),
            body=body if isinstance(body, dict) else {},
            refs=tuple(str(x) for x in doc.get("refs") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        """The entry as a JSON-ready mapping (the canonical fields plus ``id``)."""
        return {
            "id": self.id,
            "feed": self.feed,
            "seq": self.seq,
            "prev": self.prev,
            "ts": self.ts,
            "type": self.type,
            "actor": self.actor,
            "lots": list(self.lots),
            "body": dict(self.body),
            "refs": list(self.refs),
        }


@dataclass(frozen=True, slots=True)
class Station:
    """Which node wrote a feed, as its ``node.start`` entries say.

    ``node_id`` and ``site`` are empty until the feed's first ``node.start``; ``name`` then falls
    back to the first 12 hex digits of the feed key.
    """

    feed: str
    node_id: str = ""
    site: str = ""
    version: str = ""

    @property
    def name(self) -> str:
        """``node_id/site`` (the station name shown by trace), or the short feed key."""
        if self.node_id and self.site:
            return f"{self.node_id}/{self.site}"
        return self.node_id or self.site or self.feed[:12]


@dataclass(slots=True)
class Stations:
    """Every feed's ``node.start`` history: who wrote a feed at a given time."""

    starts: dict[str, list[tuple[str, Station]]] = field(default_factory=dict)

    def at(self, feed: str, ts: str = "\uffff") -> Station:
        """The station of ``feed`` in force at ``ts`` (the latest ``node.start`` not after it).

        Entries written before a feed's first ``node.start`` get that first one.
        """
        history = self.starts.get(feed)
        if not history:
            return Station(feed)
        chosen = history[0][1]
        for start_ts, station in history:
            if start_ts > ts:
                break
            chosen = station
        return chosen

    def feeds_matching(self, node: str) -> set[str]:
        """Feeds whose node id or site equals ``node``, or whose key starts with it (hex)."""
        wanted = node.strip()
        found = {
            feed
            for feed, history in self.starts.items()
            if any(wanted in (s.node_id, s.site, s.name) for _, s in history)
        }
        if len(wanted) >= 8 and all(c in "0123456789abcdefABCDEF" for c in wanted):
            found |= {feed for feed in self.starts if feed.startswith(wanted.lower())}
        return found


@dataclass(frozen=True, slots=True)
class EntryFilter:
    """What ``edge ledger query`` selects; every field left ``None`` matches everything.

    ``since`` is inclusive and ``until`` exclusive, both fixed-width UTC strings
    (see :func:`parse_time`).
    """

    type: str | tuple[str, ...] | None = None  #: one type, or any of several
    lot: str | tuple[str, ...] | None = None  #: one lot, or any of several
    feeds: frozenset[str] | None = None
    since: str | None = None
    until: str | None = None
    limit: int | None = None
    newest_first: bool = False
    #: types left out (``edge ledger query`` hides ``checkpoint`` rows unless asked)
    exclude_types: tuple[str, ...] = ()


def open_ledger_db(path: str | Path) -> sqlite3.Connection:
    """Open a ledger database read-only (a running node may be writing it meanwhile).

    Raises:
        StorageError: the file does not exist, is not SQLite, or holds no ledger.
    """
    file = Path(path)
    if not file.is_file():
        raise StorageError(f"{file}: no such ledger database")
    try:
        conn = sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as exc:
        raise StorageError(f"{file}: cannot read ledger database: {exc}") from exc
    if not {"entries", "entry_lots"} <= tables:
        conn.close()
        raise StorageError(f"{file}: not an edge-qc ledger (no entries/entry_lots tables)")
    return conn


def load_stations(conn: sqlite3.Connection, *, every_feed: bool = False) -> Stations:
    """Read every ``node.start`` entry (few: one per node restart) into a :class:`Stations`.

    Args:
        conn: an open ledger database.
        every_feed: also list feeds that have no ``node.start`` (trace has no use for them;
            query wants them so ``--node`` can match any feed key).
    """
    stations = Stations()
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM entries e WHERE e.type = 'node.start' ORDER BY e.ts, e.seq"
    )
    for feed, seq, entry_id, raw in rows:
        entry = StoredEntry.from_row(feed, seq, entry_id, raw)
        body = entry.body
        station = Station(
            feed=entry.feed,
            node_id=str(body.get("node_id", "")),
            site=str(body.get("site", "")),
            version=str(body.get("version", "")),
        )
        stations.starts.setdefault(entry.feed, []).append((entry.ts, station))
    if every_feed:
        # A skip scan over the (feed, seq) key: one index seek per feed, where DISTINCT would
        # read every entry's key (~130 ms in a 1,000,000-entry ledger).
        feeds = conn.execute(
            "WITH RECURSIVE f(feed) AS (SELECT min(feed) FROM entries UNION ALL "
            "SELECT (SELECT min(feed) FROM entries WHERE feed > f.feed) FROM f "
            "WHERE f.feed IS NOT NULL) SELECT feed FROM f WHERE feed IS NOT NULL"
        )
        for (feed,) in feeds:
            stations.starts.setdefault(feed, [])
    return stations


def query_entries(conn: sqlite3.Connection, flt: EntryFilter) -> list[StoredEntry]:
    """The entries matching ``flt``, in time order (then feed, seq); newest first if asked."""
    sql = [f"SELECT {_COLUMNS} FROM entries e"]
    where: list[str] = []
    args: list[Any] = []
    lots = (flt.lot,) if isinstance(flt.lot, str) else flt.lot
    types = (flt.type,) if isinstance(flt.type, str) else flt.type
    if lots is not None and len(lots) == 1:
        sql.append("JOIN entry_lots l ON l.feed = e.feed AND l.seq = e.seq AND l.lot = ?")
        args.append(lots[0])
    elif lots is not None:  # any of several: EXISTS, so an entry naming two of them shows once
        where.append(
            "EXISTS (SELECT 1 FROM entry_lots l WHERE l.feed = e.feed AND l.seq = e.seq "
            f"AND l.lot IN ({', '.join('?' * len(lots))}))"
        )
        args.extend(lots)
    if types is not None:
        where.append(f"e.type IN ({', '.join('?' * len(types))})")
        args.extend(types)
    if flt.exclude_types:
        where.append(f"e.type NOT IN ({', '.join('?' * len(flt.exclude_types))})")
        args.extend(flt.exclude_types)
    if flt.feeds is not None:
        if not flt.feeds:
            return []
        where.append(f"e.feed IN ({', '.join('?' * len(flt.feeds))})")
        args.extend(sorted(flt.feeds))
    if flt.since is not None:
        where.append("e.ts >= ?")
        args.append(flt.since)
    if flt.until is not None:
        where.append("e.ts < ?")
        args.append(flt.until)
    if where:
        sql.append("WHERE " + " AND ".join(where))
    order = "DESC" if flt.newest_first else "ASC"
    sql.append(f"ORDER BY e.ts {order}, e.feed {order}, e.seq {order}")
    if flt.limit is not None:
        sql.append("LIMIT ?")
        args.append(flt.limit)
    try:
        rows = conn.execute(" ".join(sql), args).fetchall()
    except sqlite3.Error as exc:
        raise StorageError(f"ledger query failed: {exc}") from exc
    return [StoredEntry.from_row(*row) for row in rows]


def format_ts(moment: datetime) -> str:
    """``moment`` as the store writes times: UTC, microseconds, ``Z`` (fixed width)."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment
    # isoformat, not strftime: glibc's %Y does not pad years before 1000 ('999-01-01'), which
    # is neither fixed-width nor ordered as text
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_time(text: str, now: datetime, option: str = "time") -> str:
    """Turn what a person types into the store's fixed-width UTC form.

    Accepts ISO 8601 / RFC 3339 (``2026-11-23``, ``2026-11-23T10:31``,
    ``2026-11-23 10:31:40+01:00``, ``...Z``; a time without offset is UTC) or a duration
    meaning "that long before ``now``" (``2h``, ``30min``, ``1d``).

    Raises:
        ConfigError: neither form, or a time outside years 1 to 9999 in UTC; the message
            names ``option``.
    """
    value = text.strip()
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        try:
            ago = timedelta(seconds=parse_duration(value))
        except Exception:
            raise ConfigError(
                f"{option}: {text!r} is neither an ISO 8601 time (2026-11-23T10:31:40Z) "
                "nor a duration ago (2h, 30min, 1d)"
            ) from None
        return format_in_range(lambda: now - ago, option, text)
    return format_in_range(lambda: moment, option, text)


def format_in_range(moment: Callable[[], datetime], option: str, text: str) -> str:
    """:func:`format_ts` of ``moment()``; a time beyond what datetime holds is a ConfigError.

    ``0001-01-01T00:00+01:00`` is in year 0 in UTC, ``1000000d`` ago before year 1: Python
    raises OverflowError for both (ValueError when the local zone converts a naive year 1),
    which must reach the person as their input's fault.
    """
    try:
        return format_ts(moment())
    except (OverflowError, ValueError):
        raise ConfigError(
            f"{option}: {text!r} is out of range (a time in the years 1 to 9999, UTC)"
        ) from None


def _short(value: object, width: int = 12) -> str:
    text = str(value)
    return text if len(text) <= width else text[:width] + "…"


def _value(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    return "-" if value is None else str(value)


#: How a summary writes an alarm's value and limit: ``(number, point, other) -> text``;
#: ``point`` is empty when the number is not a reading of it (a rate, an age, a lot statistic),
#: ``other`` is the number it is compared with (the limit of a value, the value of a limit).
NumberFormat = Callable[[Any, str, Any], str]


def summarize(entry: StoredEntry, number: NumberFormat | None = None) -> str:
    """One human line saying what ``entry`` records (used by query tables and exports).

    ``number`` rounds an alarm's value and limit for people (``edge.office.fmt_number``);
    without it they are written as recorded, as exports want them.
    """
    b = entry.body
    match entry.type:
        case "node.start":
            return (
                f"node {_value(b, 'node_id')} at {_value(b, 'site')} started "
                f"(version {_value(b, 'version')}, config {_short(b.get('config_hash', '-'))})"
            )
        case "node.stop":
            return f"node stopped: {_value(b, 'reason')}"
        case "rules.change":
            return (
                f"rule set {_short(b.get('hash', '-'))} in force: "
                f"{len(b.get('rules') or ())} rules from {', '.join(b.get('files') or ()) or '-'}"
            )
        case "config.change":
            if not b.get("previous"):
                return (
                    f"config {_value(b, 'file')} in force: {_short(b.get('hash', '-'))} (first run)"
                )
            return (
                f"config {_value(b, 'file')} changed from {_short(b['previous'])} "
                f"to {_short(b.get('hash', '-'))}"
            )
        case "alarm":
            # a rate or stale rule's value is the point's rate of change or the age of its data
            measure = {"rate": " rate", "stale": " age"}.get(str(b.get("kind")), "")
            reading = str(b.get("point", "")) if b.get("kind") in ("limit", "spc") else ""

            def num(v: Any, against: Any = None) -> Any:
                return v if number is None else number(v, reading, against)

            value = (
                ""
                if b.get("value") is None
                else f"{measure} = {num(b['value'], b.get('limit'))} {b.get('unit', '')}"
            )
            limit = "" if b.get("limit") is None else f" (limit {num(b['limit'], b.get('value'))})"
            return (
                f"{_value(b, 'rule')} {_value(b, 'event')} "
                f"[{_value(b, 'from')} -> {_value(b, 'to')}] "
                f"{_value(b, 'point')}{value.rstrip()}{limit} {b.get('severity', '')}".rstrip()
            )
        case "alarm.ack" | "alarm.shelve" | "alarm.unshelve":
            verb = {"alarm.ack": "acknowledged", "alarm.shelve": "shelved"}.get(
                entry.type, "unshelved"
            )
            until = f" until {b['until']}" if b.get("until") else ""
            comment = f": {b['comment']}" if b.get("comment") else ""
            return f"{_value(b, 'rule')} {verb} by {entry.actor}{until}{comment}"
        case "lot.start":
            return f"lot {_value(b, 'lot')} started at {_value(b, 'station')}"
        case "lot.end":
            checks = list(b.get("checks") or ())
            passed = sum(1 for c in checks if isinstance(c, dict) and c.get("passed") is True)
            return (
                f"lot {_value(b, 'lot')} ended at {_value(b, 'station')}: "
                f"{len(b.get('aggregates') or {})} points, {passed}/{len(checks)} checks passed"
            )
        case "readings.digest":
            return (
                f"readings block {_value(b, 'block')}: {_value(b, 'count')} readings "
                f"{_value(b, 'first_ts')} .. {_value(b, 'last_ts')}"
            )
        case "correction":
            return f"corrects {_short(b.get('corrects', '-'))}: {_value(b, 'reason')}"
        case "checkpoint":
            return f"checkpoint size {_value(b, 'size')} root {_short(b.get('root', '-'))}"
        case _:
            text = orjson.dumps(dict(b), option=orjson.OPT_SORT_KEYS).decode()
            return _short(text, 80)


def entries_by_id(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, StoredEntry]:
    """Fetch entries by id.

    Entry ids are not indexed (random keys rewrite index pages all over at every commit: see
    :mod:`edge.ledger.schema`): SQLite scans ``entries`` once per 500 ids asked for. Meant
    for rare lookups (an auditor following a ``refs`` link), not for a loop.
    """
    wanted: Sequence[str] = sorted(set(ids))
    found: dict[str, StoredEntry] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        for row in conn.execute(f"SELECT {_COLUMNS} FROM entries e WHERE e.id IN ({marks})", chunk):
            entry = StoredEntry.from_row(*row)
            found[entry.id] = entry
    return found


#: The shortest id prefix a user may give: 8 hex digits, what the ``entries_id`` index covers.
MIN_PREFIX = 8


def find_entry(conn: sqlite3.Connection, ref: str) -> StoredEntry:
    """The one entry whose id is ``ref`` or starts with it (at least :data:`MIN_PREFIX` hex digits).

    Uses the ``entries_id`` index on the ids' first 8 digits, so a lookup costs an index probe,
    not a scan.

    Raises:
        UnknownEntry: ``ref`` is not hex, too short, or matches no entry or several.
    """
    ref = ref.strip().lower()
    if len(ref) < MIN_PREFIX or len(ref) > 64 or any(c not in "0123456789abcdef" for c in ref):
        raise UnknownEntry(
            f"entry {ref!r}: give the entry id, or at least its first {MIN_PREFIX} hex digits"
        )
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM entries e WHERE substr(e.id, 1, 8) = ? AND e.id LIKE ? LIMIT 2",
        (ref[:MIN_PREFIX], ref + "%"),
    ).fetchall()
    if not rows:
        raise UnknownEntry(f"entry {ref}: no entry in the ledger has this id")
    if len(rows) > 1:
        raise UnknownEntry(f"entry {ref}: more than one entry starts with it; give more digits")
    return StoredEntry.from_row(*rows[0])
