"""Verification: does every feed still hold exactly what its writer signed?

The core (:class:`FeedVerifier`, :func:`verify_feed`) is pure: it takes rows and says what is
wrong with them; :func:`verify_db` feeds it from a database. What is checked, per feed, in seq
order:

* each ``raw`` hashes to its ``id`` (else *changed content*);
* the ``feed`` and ``seq`` inside ``raw`` are the row's (else *reordered entries* when the seq
  belongs elsewhere in the feed, *changed content* otherwise);
* no seq is skipped (else *missing entry*), and each ``prev`` is the id before it (else
  *broken link*);
* each checkpoint entry's head, size and Merkle root match the entries before it (else
  *bad checkpoint*) and its Ed25519 signature is the feed's (else *bad checkpoint signature*);
* the feed ends with a checkpoint (else *unsigned entries*: appended behind the writer's back);
* no checkpoint recorded in the ``checkpoints`` table is beyond the end of the feed (else
  *rollback below a checkpoint*: the tail was truncated);
* the derived columns (prev, ts, type, actor, lots) agree with ``raw`` (else *index mismatch*:
  queries would lie even though the chain is intact);
* each stored readings block still hashes to its digest entry (else *changed readings*).
"""

from __future__ import annotations

import enum
import hashlib
import multiprocessing
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from edge.ledger.entry import CHECKPOINT, checkpoint_message
from edge.ledger.keys import verify_signature
from edge.ledger.merkle import EMPTY_ROOT, Frontier, leaf_hash, leaf_hashes, node_hash
from edge.ledger.readings_store import block_digest

__all__ = [
    "FeedReport",
    "FeedVerifier",
    "Kind",
    "Problem",
    "Report",
    "verify_db",
    "verify_feed",
]

#: One row of ``entries`` as the verifier reads it: (seq, id, prev, ts, type, actor, raw);
#: raw is str only when someone stored TEXT in the BLOB column.
Row = tuple[int, str, "str | None", str, str, str, "bytes | str"]

_sha256 = hashlib.sha256
_loads = orjson.loads


class Kind(enum.StrEnum):
    """What is wrong."""

    CHANGED = "changed content"
    BROKEN_LINK = "broken link"
    MISSING = "missing entry"
    BAD_SIGNATURE = "bad checkpoint signature"
    BAD_CHECKPOINT = "bad checkpoint"
    REORDERED = "reordered entries"
    ROLLBACK = "rollback below a checkpoint"
    UNSIGNED = "unsigned entries"
    INDEX_MISMATCH = "index mismatch"
    CHANGED_READINGS = "changed readings"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one feed, at one seq."""

    feed: str
    seq: int
    kind: Kind
    detail: str

    def __str__(self) -> str:
        return f"feed {self.feed[:16]} seq {self.seq}: {self.kind}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"feed": self.feed, "seq": self.seq, "kind": str(self.kind), "detail": self.detail}


@dataclass(slots=True)
class FeedReport:
    """What verifying one feed found."""

    feed: str
    entries: int = 0
    checkpoints: int = 0
    signed: int = 0  #: entries covered by a valid checkpoint signature
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


@dataclass(slots=True)
class Report:
    """What verifying a whole database found."""

    feeds: list[FeedReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every feed verifies."""
        return all(f.ok for f in self.feeds)

    @property
    def problems(self) -> list[Problem]:
        """Every problem, feed by feed, in seq order."""
        return [p for f in self.feeds for p in f.problems]

    @property
    def entries(self) -> int:
        """Entries scanned in all feeds."""
        return sum(f.entries for f in self.feeds)


class FeedVerifier:
    """Streaming verifier of one feed: call :meth:`add` with each row in seq order, then :meth:`finish`."""

    def __init__(
        self,
        feed: str,
        *,
        start: int = 0,
        prev_id: str | None = None,
        deferred: bool = False,
        merkle: bool = True,
    ) -> None:
        """Start verifying ``feed``.

        Args:
            feed: hex public key naming the feed.
            start: the first seq that will be added (a chunk of the feed; 0 for all of it).
            prev_id: the stored id of entry ``start - 1`` (to check the first link of a chunk).
            deferred: leave checkpoint Merkle roots to the caller, who knows the tree before
                ``start`` (:attr:`roots`); used by the parallel verifier.
            merkle: recompute the Merkle root at every checkpoint (two hashes per entry).
                Without, checkpoints are still checked for head, size and signature, and the
                hash chain still ties every entry to a signed head.
        """
        self.feed = feed
        self.report = FeedReport(feed)
        self._frontier = Frontier()  # over entries start.. (the whole feed when start is 0)
        self._start = start
        self._expected = start  # the next seq we should see
        self._tree_ok = merkle  # False once a gap makes later Merkle roots unknowable
        self._last_checkpoint_end = 0  # entries covered by the last good checkpoint (its seq + 1)
        self._ids: dict[int, str] = {}  # seq claimed inside an entry -> its id (a recent window)
        if prev_id is not None:
            self._ids[start - 1] = prev_id
        self._prevs: dict[
            int, tuple[int, Any]
        ] = {}  # misplaced entries: claimed seq -> (row seq, prev)
        self._waiting: dict[int, str] = {}  # ids seen before their Merkle position came up
        self._lots: dict[int, list[str]] = {}  # seq -> lots from raw, for the index check
        self._deferred = deferred
        #: deferred root checks: (seq, size, root, signature ok, local frontier stack or None)
        self.roots: list[tuple[int, int, str, bool, list[bytes] | None]] = []

    def _problem(self, seq: int, kind: Kind, detail: str) -> None:
        self.report.problems.append(Problem(self.feed, seq, kind, detail))

    def add(self, row: Row) -> None:
        """Check one row (rows must come in ascending seq order)."""
        seq, entry_id, prev, ts, type_, actor, raw = row
        self.report.entries += 1
        if not isinstance(raw, bytes):  # someone stored TEXT (or worse) where a BLOB belongs
            raw = str(raw).encode("utf-8", "surrogateescape")
        if _sha256(raw).hexdigest() != entry_id:
            self._problem(
                seq,
                Kind.CHANGED,
                f"content hashes to {_sha256(raw).hexdigest()[:16]}, not to its id {entry_id[:16]}",
            )
        try:
            data = _loads(raw)
            inner_seq = data["seq"]
            inner_prev = data["prev"]
            inner_feed = data["feed"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self._problem(seq, Kind.CHANGED, "content is not a ledger entry")
            data = None
            inner_seq, inner_prev, inner_feed = seq, prev, self.feed
        if seq != self._expected:
            self._gap(seq, inner_prev)
        if inner_feed != self.feed or type(inner_seq) is not int:
            self._problem(seq, Kind.CHANGED, "holds an entry of another feed")
            inner_seq = seq
        elif inner_seq != seq:
            self._problem(seq, Kind.REORDERED, f"holds the entry of seq {inner_seq}")
        self._link(seq, inner_seq, inner_prev, entry_id)
        if data is not None:
            if (
                prev != inner_prev
                or ts != data.get("ts")
                or type_ != data.get("type")
                or actor != data.get("actor")
            ):
                self._problem(
                    seq, Kind.INDEX_MISMATCH, "prev/ts/type/actor columns disagree with the content"
                )
            if data.get("lots"):
                self._lots[seq] = data["lots"]
            if data.get("type") == CHECKPOINT and inner_seq == seq:
                self._check_checkpoint(seq, data)
        self._place(inner_seq, entry_id)
        self._expected = seq + 1

    def add_many(self, rows: Iterable[Row]) -> None:
        """Check rows in ascending seq order: :meth:`add`, with a fast path for healthy rows.

        A healthy row (the next seq, hashing to its id, linking to the row before, columns
        agreeing with the content, no refs, not a checkpoint) is checked inline here by comparing
        bytes instead of parsing JSON, and a run of healthy rows goes into the Merkle frontier
        in one :meth:`Frontier.extend`; anything else goes through :meth:`add`, which parses
        and names the problem. The fast path is what makes verify
        cost hashes: parsing and a method call per row would double the time.

        The byte comparison is exact because ``raw`` is canonical: its top-level members come
        in a fixed order and end ``,"prev":P,"refs":[],"seq":S,"ts":T,"type":Y}``; a string
        holds no unescaped quote, so that tail, the ``{"actor":A,"body":`` head and the last
        ``,"feed":"`` can only be the top-level members themselves.
        """
        feed = self.feed
        ids = self._ids
        lots = self._lots
        sha256 = _sha256
        loads = _loads
        only_str = _ONLY_STR
        checkpoint = CHECKPOINT
        feed_mark = b',"feed":"' + feed.encode() + b'","lots":'
        feed_find = b',"feed":"'
        lots_at = len(feed_mark)
        # The last (actor, type) seen and its head bytes; None when either needs JSON escapes.
        last_actor: str | None = None
        last_type: str | None = None
        head: bytes | None = None
        # The last lots member parsed and its value (never mutated, so entries can share it).
        last_lot_bytes = b""
        last_lots: list[str] = []
        last_id = ids.get(self._expected - 1)
        expected = self._expected
        clean = not self._waiting and not self._prevs  # no misplaced entry is pending
        run: list[bytes] = []  # digests of the healthy rows not yet in the Merkle frontier
        count = 0
        rows = rows if isinstance(rows, list) else list(rows)
        run_from = 0  # index in rows of the first row in run
        for index, row in enumerate(rows):
            seq, entry_id, prev, ts, type_, actor, raw = row
            if (
                seq == expected
                and prev == last_id
                and clean
                and prev is not None
                and type_ != checkpoint
                and type(raw) is bytes
                and (digest := sha256(raw).digest()).hex() == entry_id
            ):
                if actor != last_actor or type_ != last_type:
                    last_actor, last_type = actor, type_
                    plain = _plain(actor) and _plain(type_)
                    head = b'{"actor":"' + actor.encode() + b'","body":' if plain else None
                if head is not None and '"' not in ts and "\\" not in ts:
                    tail = f',"prev":"{prev}","refs":[],"seq":{seq},"ts":"{ts}","type":"{type_}"}}'.encode()
                    if raw.endswith(tail) and raw.startswith(head):
                        at = raw.rfind(feed_find)
                        lot_bytes = raw[at + lots_at : len(raw) - len(tail)]
                        if at > 0 and raw.startswith(feed_mark, at) and lot_bytes[:1] == b"[":
                            if lot_bytes == last_lot_bytes:
                                lots[seq] = last_lots  # consecutive entries of one lot
                            elif lot_bytes != b"[]":
                                try:
                                    lot_list = loads(lot_bytes)
                                except orjson.JSONDecodeError:
                                    lot_list = None
                                if lot_list.__class__ is list and only_str.issuperset(
                                    map(type, lot_list)
                                ):
                                    lots[seq] = last_lots = lot_list
                                    last_lot_bytes = lot_bytes
                                else:
                                    lot_bytes = b""  # not a list of lots: let add() say what it is
                        else:
                            lot_bytes = b""
                        if lot_bytes:
                            if not run:
                                run_from = index
                            run.append(digest)  # the id's 32 bytes: its Merkle leaf, later
                            last_id = entry_id
                            expected = seq + 1
                            continue
            if run:
                count += len(run)
                self._add_leaves(run)
                self._remember(rows, max(run_from, index - _WINDOW), index)
                run = []
            self._expected = expected
            if last_id is not None:
                ids[expected - 1] = last_id
            self.add(row)
            expected = self._expected
            clean = not self._waiting and not self._prevs
            last_id = ids.get(seq) if seq == expected - 1 else None
            if len(ids) > 256:
                for old in [k for k in ids if k < seq - 128]:
                    del ids[old]
        if run:
            count += len(run)
            self._add_leaves(run)
            self._remember(rows, max(run_from, len(rows) - _WINDOW), len(rows))
        self.report.entries += count
        self._expected = expected
        if last_id is not None:
            ids[expected - 1] = last_id

    def _remember(self, rows: list[Row], start: int, stop: int) -> None:
        """Put the ids of healthy rows start..stop-1 in the window of recent ids.

        The fast path keeps only the last id while it runs; the row-by-row path checks a
        misplaced entry's link against any of the last :data:`_WINDOW` ids, so it must find
        them there, as it would after checking every row itself.
        """
        ids = self._ids
        for row in rows[start:stop]:
            ids[row[0]] = row[1]

    def _add_leaves(self, digests: list[bytes]) -> None:
        """Put the next entries, given their ids' bytes, in the Merkle tree (when it is known)."""
        if self._tree_ok:
            self._frontier.extend(leaf_hashes(digests))

    def _gap(self, seq: int, inner_prev: Any) -> None:
        first = self._expected
        missing = seq - first
        self._problem(
            first,
            Kind.MISSING,
            f"entry {first} is missing"
            if missing == 1
            else f"entries {first}..{seq - 1} are missing",
        )
        # One missing entry: the next entry's prev tells its id, so links, the Merkle tree and
        # the checkpoints after it can still be checked. More: later roots are unknowable.
        if missing == 1 and isinstance(inner_prev, str):
            self._ids[first] = inner_prev
            self._place(first, inner_prev)
        else:
            self._tree_ok = False

    def _link(self, seq: int, inner_seq: int, inner_prev: Any, entry_id: str) -> None:
        """Check ``prev`` by content: the entry claiming seq s must name the entry claiming s-1.

        Matching by the seqs *inside* the entries (not row positions) makes a swap read as
        "reordered" rather than as a cascade of broken links.
        """
        ids = self._ids
        if inner_seq == 0:
            if inner_prev is not None:
                self._problem(seq, Kind.BROKEN_LINK, "the first entry has a prev")
        else:
            want = ids.get(inner_seq - 1)
            if want is not None and inner_prev != want:
                self._problem(
                    seq,
                    Kind.BROKEN_LINK,
                    f"prev {str(inner_prev)[:16]} is not the id of entry {inner_seq - 1} ({want[:16]})",
                )
        later = self._prevs.get(inner_seq + 1)  # the next entry came first (swapped rows)
        if later is not None and later[1] != entry_id:
            self._problem(later[0], Kind.BROKEN_LINK, f"prev is not the id of entry {inner_seq}")
        ids[inner_seq] = entry_id
        if inner_seq != seq:
            self._prevs[inner_seq] = (seq, inner_prev)
        if len(ids) > 256:  # keep a window: links are checked between neighbours
            for old in [k for k in ids if k < seq - 128]:
                del ids[old]
            for old in [k for k in self._prevs if k < seq - 128]:
                del self._prevs[old]

    def _place(self, inner_seq: int, entry_id: str) -> None:
        """Put the entry's id at its claimed position in the Merkle tree (in order, buffering)."""
        if not self._tree_ok:
            return
        frontier = self._frontier
        position = inner_seq - self._start
        if position == frontier.size:
            frontier.append(_leaf(entry_id))
            waiting = self._waiting
            while waiting and frontier.size in waiting:
                frontier.append(_leaf(waiting.pop(frontier.size)))
        elif position > frontier.size:
            self._waiting[position] = entry_id

    def _check_checkpoint(self, seq: int, data: dict[str, Any]) -> None:
        self.report.checkpoints += 1
        body = data.get("body")
        try:
            size, head, root, sig = body["size"], body["head"], body["root"], body["sig"]  # type: ignore[index]
        except (KeyError, TypeError):
            self._problem(seq, Kind.BAD_CHECKPOINT, "checkpoint body lacks size/head/root/sig")
            return
        if size != seq or head != data.get("prev"):
            self._problem(
                seq,
                Kind.BAD_CHECKPOINT,
                f"covers size {size} head {str(head)[:16]}, not the entries before it",
            )
            return
        if self._deferred:
            sig_ok = isinstance(sig, str) and verify_signature(
                self.feed, checkpoint_message(self.feed, size, head, root), sig
            )
            if not sig_ok:
                self._problem(
                    seq,
                    Kind.BAD_SIGNATURE,
                    "signature is not the feed key's over (feed, size, head, root)",
                )
            known = self._tree_ok and self._frontier.size == size - self._start
            self.roots.append(
                (seq, size, str(root), sig_ok, list(self._frontier._stack) if known else None)
            )
            return
        if self._tree_ok and self._frontier.size == size and self._frontier.root().hex() != root:
            self._problem(
                seq, Kind.BAD_CHECKPOINT, f"Merkle root over entries 0..{size - 1} does not match"
            )
            return
        if not isinstance(sig, str) or not verify_signature(
            self.feed, checkpoint_message(self.feed, size, head, root), sig
        ):
            self._problem(
                seq,
                Kind.BAD_SIGNATURE,
                "signature is not the feed key's over (feed, size, head, root)",
            )
            return
        self.report.signed = size
        self._last_checkpoint_end = seq + 1

    def finish(
        self,
        recorded: Iterable[tuple[int, str, str, str]] = (),
        lots: Mapping[int, Iterable[str]] | None = None,
    ) -> FeedReport:
        """Final checks once every row was added.

        Args:
            recorded: (size, head, root, sig) of every checkpoint in the ``checkpoints`` table
                for this feed (or learnt from peers).
            lots: seq -> lots in ``entry_lots`` (None: skip the lot index check).
        """
        end = self._expected
        if end > self._last_checkpoint_end:
            self._problem(
                self._last_checkpoint_end,
                Kind.UNSIGNED,
                f"entries {self._last_checkpoint_end}..{end - 1} are covered by no valid checkpoint",
            )
        for size, head, root, sig in recorded:
            if size >= end:
                genuine = verify_signature(
                    self.feed, checkpoint_message(self.feed, size, head, root), sig
                )
                self._problem(
                    end,
                    Kind.ROLLBACK,
                    f"feed ends at seq {end - 1} but a {'signed' if genuine else 'recorded'} checkpoint "
                    f"covered {size} entries (head {head[:16]}): the tail was removed",
                )
                break
        if lots is not None:
            self._check_lots(lots)
        self.report.problems.sort(key=lambda p: p.seq)
        return self.report

    def lots_match(self, stored: Sequence[tuple[int, str]]) -> bool:
        """True when ``stored`` are exactly the lots the added entries name.

        ``stored`` are ``entry_lots`` rows as (seq, lot), in (seq, lot) order: the lot index
        check in one comparison. When False, pass the rows as a mapping to :meth:`finish` to
        have each difference named.
        """
        mine = [
            (seq, lot)
            for seq, names in self._lots.items()
            for lot in (names if len(names) == 1 else sorted(names))
        ]
        return mine == stored

    def _check_lots(self, lots: Mapping[int, Iterable[str]]) -> None:
        for seq in sorted(set(lots) | set(self._lots)):
            stored = sorted(lots.get(seq, ()))
            if stored != sorted(self._lots.get(seq, ())):
                self._problem(
                    seq, Kind.INDEX_MISMATCH, f"entry_lots {stored} disagree with the content"
                )

    def finish_chunk(self, lots: Mapping[int, Iterable[str]] | None) -> Chunk:
        """End a chunk (``deferred`` mode): what the caller needs to finish the feed.

        Args:
            lots: seq -> lots in ``entry_lots`` for the chunk (None: skip the lot index check).
        """
        if lots is not None:
            self._check_lots(lots)
        complete = (
            self._tree_ok
            and not self._waiting
            and self._frontier.size == self._expected - self._start
        )
        return Chunk(
            start=self._start,
            end=self._expected,
            entries=self.report.entries,
            checkpoints=self.report.checkpoints,
            problems=self.report.problems,
            roots=self.roots,
            stack=list(self._frontier._stack) if complete else None,
        )


@dataclass(frozen=True, slots=True)
class Chunk:
    """What verifying one chunk of a feed found (picklable, returned by worker processes).

    Attributes:
        stack: the chunk's own Merkle frontier when every entry was in place, else None.
    """

    start: int
    end: int
    entries: int
    checkpoints: int
    problems: list[Problem]
    roots: list[tuple[int, int, str, bool, list[bytes] | None]]
    stack: list[bytes] | None


_ONLY_STR = frozenset({str})
#: How far back (in seqs) the recent ids are kept for link checks.
_WINDOW = 128


def _plain(text: str) -> bool:
    """True when JSON writes ``text`` as itself between quotes (no escapes, ASCII)."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def _leaf(entry_id: str) -> bytes:
    """The Merkle leaf of a stored id (a damaged id that is not hex still gets a leaf)."""
    try:
        return leaf_hash(bytes.fromhex(entry_id))
    except ValueError:
        return leaf_hash(entry_id.encode())


def verify_feed(
    feed: str,
    rows: Iterable[Row],
    *,
    recorded: Iterable[tuple[int, str, str, str]] = (),
    lots: Mapping[int, Iterable[str]] | None = None,
    merkle: bool = True,
) -> FeedReport:
    """Verify one feed from its rows (pure; rows in ascending seq order)."""
    verifier = FeedVerifier(feed, merkle=merkle)
    verifier.add_many(rows)
    return verifier.finish(recorded, lots)


def verify_db(
    conn: sqlite3.Connection,
    *,
    progress: Callable[[int], None] | None = None,
    check_readings: bool = True,
    workers: int | None = None,
    merkle: bool = True,
) -> Report:
    """Verify every feed in a ledger database.

    Args:
        conn: an open connection (read-only is enough).
        progress: called with the number of entries scanned since the last call.
        check_readings: also re-hash the stored readings blocks.
        workers: processes for feeds of :data:`PARALLEL_MIN` entries or more (default: one
            per CPU; 1 verifies everything in this process).
        merkle: recompute every checkpoint's Merkle root (see :class:`FeedVerifier`).
    """
    report = Report()
    feeds = [
        f
        for (f,) in conn.execute(
            "SELECT DISTINCT feed FROM entries UNION SELECT DISTINCT feed FROM checkpoints ORDER BY 1"
        )
    ]
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    if workers is None:
        workers = os.cpu_count() or 1
    for feed in feeds:
        last_seq = conn.execute("SELECT max(seq) FROM entries WHERE feed = ?", (feed,)).fetchone()[
            0
        ]
        if workers > 1 and path and last_seq is not None and last_seq + 1 >= PARALLEL_MIN:
            verifier = _verify_parallel(conn, path, feed, last_seq, workers, progress, merkle)
            report.feeds.append(verifier.finish(_recorded(conn, feed), None))
            continue
        verifier = FeedVerifier(feed, merkle=merkle)
        cursor = conn.execute(
            "SELECT seq, id, prev, ts, type, actor, raw FROM entries WHERE feed = ? ORDER BY seq",
            (feed,),
        )
        while rows := cursor.fetchmany(4096):
            verifier.add_many(rows)
            if progress is not None:
                progress(len(rows))
        lots = _stored_lots(conn, verifier, 0, _NO_END)
        report.feeds.append(verifier.finish(_recorded(conn, feed), lots))
    if check_readings:
        _check_readings(conn, report)
    return report


#: Feeds with at least this many entries are verified in parallel: this process and workers.
PARALLEL_MIN = 200_000
#: Entries per chunk handed to a worker: a power of two, so each complete chunk is a perfect
#: Merkle subtree and the trees of the chunks combine like leaves. Small enough that the last
#: chunks leave little idle time at the end (measured here: 8,192 halved that tail against
#: 16,384), big enough that the per-chunk queries and results cost nothing.
CHUNK = 1 << 13

_worker_conns: dict[str, sqlite3.Connection] = {}


def _recorded(conn: sqlite3.Connection, feed: str) -> list[tuple[int, str, str, str]]:
    return conn.execute(
        "SELECT size, head, root, sig FROM checkpoints WHERE feed = ? ORDER BY size DESC", (feed,)
    ).fetchall()


def _verify_chunk(args: tuple[str, str, int, int, bool]) -> Chunk:
    """Worker: verify entries start..stop-1 of a feed, with roots deferred to the parent."""
    path, feed, start, stop, merkle = args
    conn = _worker_conns.get(path)
    if conn is None:
        conn = _worker_conns[path] = sqlite3.connect(f"{Path(path).as_uri()}?mode=ro", uri=True)
    return _verify_chunk_on(conn, feed, start, stop, merkle)


def _verify_chunk_on(
    conn: sqlite3.Connection, feed: str, start: int, stop: int, merkle: bool
) -> Chunk:
    """Verify entries start..stop-1 of a feed read through ``conn`` (in a worker or the parent)."""
    prev = conn.execute(
        "SELECT id FROM entries WHERE feed = ? AND seq = ?", (feed, start - 1)
    ).fetchone()
    verifier = FeedVerifier(
        feed, start=start, prev_id=prev[0] if prev else None, deferred=True, merkle=merkle
    )
    cursor = conn.execute(
        "SELECT seq, id, prev, ts, type, actor, raw FROM entries WHERE feed = ? AND seq >= ? AND seq < ? ORDER BY seq",
        (feed, start, stop),
    )
    while rows := cursor.fetchmany(4096):
        verifier.add_many(rows)
    return verifier.finish_chunk(_stored_lots(conn, verifier, start, stop))


_NO_END = 2**63 - 1  # the largest SQLite integer: "to the end of the feed"


def _stored_lots(
    conn: sqlite3.Connection, verifier: FeedVerifier, start: int, stop: int
) -> dict[int, list[str]] | None:
    """The ``entry_lots`` rows of seqs start..stop-1 of the verifier's feed, for ``finish``.

    None when they match the lots the verifier saw in the entries (one comparison, the usual
    case); otherwise seq -> lots, so that each difference is named.
    """
    pairs = conn.execute(
        "SELECT seq, lot FROM entry_lots WHERE feed = ? AND seq >= ? AND seq < ? ORDER BY seq, lot",
        (verifier.feed, start, stop),
    ).fetchall()
    if verifier.lots_match(pairs):
        return None
    lots: dict[int, list[str]] = {}
    for seq, lot in pairs:
        lots.setdefault(seq, []).append(lot)
    return lots


def _fold(stack: Sequence[bytes]) -> bytes:
    """The root of a tree given its perfect subtrees, largest (leftmost) first."""
    node = stack[-1]
    for left in reversed(stack[:-1]):
        node = node_hash(left, node)
    return node


def _verify_parallel(
    conn: sqlite3.Connection,
    path: str,
    feed: str,
    last_seq: int,
    workers: int,
    progress: Callable[[int], None] | None,
    merkle: bool,
) -> FeedVerifier:
    """Verify one big feed chunk by chunk, here and in ``workers - 1`` worker processes.

    This process works too: it takes the next chunk whenever it is not merging, so no CPU
    waits while the workers start (a spawned interpreter takes ~0.1-0.2 s to import), and the
    pool is kept two chunks ahead so its workers never wait for this one. Chunks are merged
    in seq order.
    """
    shell = FeedVerifier(feed)
    report = shell.report
    upper = Frontier()  # over the roots of the complete chunks so far (each a perfect subtree)
    tree_ok = True
    jobs = [(path, feed, start, start + CHUNK, merkle) for start in range(0, last_seq + 1, CHUNK)]

    def merge(chunk: Chunk) -> None:
        nonlocal tree_ok
        if shell._expected < chunk.start:  # whole chunks, or the end of the last one, are gone
            first = shell._expected
            report.problems.append(
                Problem(
                    feed, first, Kind.MISSING, f"entries {first}..{chunk.start - 1} are missing"
                )
            )
            tree_ok = False
            shell._expected = chunk.start
        report.entries += chunk.entries
        report.checkpoints += chunk.checkpoints
        report.problems.extend(chunk.problems)
        for seq, size, root, sig_ok, local in chunk.roots:
            if tree_ok and local is not None:
                stack = [*upper._stack, *local]
                if (_fold(stack) if stack else EMPTY_ROOT).hex() != root:
                    report.problems.append(
                        Problem(
                            feed,
                            seq,
                            Kind.BAD_CHECKPOINT,
                            f"Merkle root over entries 0..{size - 1} does not match",
                        )
                    )
                    continue
            if sig_ok:
                report.signed = size
                shell._last_checkpoint_end = seq + 1
        if chunk.end > chunk.start:
            shell._expected = chunk.end
        full = (
            chunk.stack is not None and chunk.end - chunk.start == CHUNK and len(chunk.stack) == 1
        )
        if full and tree_ok:
            upper.append(chunk.stack[0])  # type: ignore[index]
        else:
            tree_ok = False
        if progress is not None:
            progress(chunk.entries)

    context = multiprocessing.get_context("spawn")  # never fork a process that may hold threads
    ahead = 2 * (workers - 1)
    with ProcessPoolExecutor(workers - 1, mp_context=context) as pool:
        queued: dict[int, Future[Chunk]] = {}
        mine: dict[int, Chunk] = {}
        taken = merged = 0
        while merged < len(jobs):
            while taken < len(jobs) and sum(not f.done() for f in queued.values()) < ahead:
                queued[taken] = pool.submit(_verify_chunk, jobs[taken])
                taken += 1
            if merged in mine:
                merge(mine.pop(merged))
                merged += 1
            elif merged in queued and (queued[merged].done() or taken == len(jobs)):
                merge(queued.pop(merged).result())
                merged += 1
            else:
                _, _, start, stop, _ = jobs[taken]
                mine[taken] = _verify_chunk_on(conn, feed, start, stop, merkle)
                taken += 1
    return shell


def _check_readings(conn: sqlite3.Connection, report: Report) -> None:
    by_feed = {f.feed: f for f in report.feeds}
    # Entry ids are not indexed: find the digest entries through the type index instead.
    digests = {
        entry_id: (feed, seq, raw)
        for feed, seq, entry_id, raw in conn.execute(
            "SELECT feed, seq, id, raw FROM entries WHERE type = 'readings.digest'"
        )
    }
    blocks = conn.execute(
        "SELECT block, sha256, entry FROM reading_blocks WHERE pruned = 0 ORDER BY block"
    ).fetchall()
    for block, sha, entry_id in blocks:
        if entry_id not in digests:
            continue  # the digest entry itself is missing: verify already named it
        feed, seq, raw = digests[entry_id]
        rows = conn.execute(
            "SELECT point, ts, value, quality, unit FROM readings WHERE block = ? ORDER BY rowid",
            (block,),
        ).fetchall()
        try:
            signed = _loads(raw)["body"]["sha256"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            signed = None
        actual = block_digest(rows) if rows else None
        if actual != signed or sha != signed:
            by_feed[feed].problems.append(
                Problem(
                    feed,
                    seq,
                    Kind.CHANGED_READINGS,
                    f"readings block {block} no longer hashes to its digest",
                )
            )
