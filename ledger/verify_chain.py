"""The streaming verifier of one feed's hash chain: :class:`FeedVerifier` (pure: rows in, problems out).

It checks, in seq order, that each ``raw`` hashes to its ``id``, sits at its own seq, links to
the entry before, that every checkpoint entry's head, size, Merkle root and signature are right,
and that the derived columns agree with ``raw``. See :mod:`edge.ledger.verify` for the whole list.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from edge.ledger.entry import CHECKPOINT, checkpoint_message
from edge.ledger.keys import verify_signature
from edge.ledger.merkle import Frontier, leaf_hash, leaf_hashes
from edge.ledger.verify_checkpoints import CheckpointTable, Recorded
from edge.ledger.verify_report import FeedReport, Kind, Problem

__all__ = ["Chunk", "FeedVerifier", "Row", "verify_feed"]

#: One row of ``entries`` as the verifier reads it: (seq, id, prev, ts, type, actor, raw);
#: raw is str only when someone stored TEXT in the BLOB column.
Row = tuple[int, str, "str | None", str, str, str, "bytes | str"]

_sha256 = hashlib.sha256
_loads = orjson.loads


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
        table: Iterable[Recorded] | None = None,
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
            table: the feed's ``checkpoints`` rows with size from ``start`` on, in ascending
                size (None: skip the checkpoints table check).
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
        self._table = None if table is None else CheckpointTable(table, self._problem)
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
        if self._table is not None:
            self._table.match(seq, (size, head, root, sig))
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
        if self._table is not None:
            self._table.finish(end)
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
        if self._table is not None:
            self._table.finish(self._expected)
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
    """Verify one feed from its rows (pure; rows in ascending seq order).

    ``recorded`` are the feed's ``checkpoints`` rows (size, head, root, sig), in any order: each
    must match its checkpoint entry, and none may be beyond the end of the feed; none given
    (a feed learnt without its table) skips the table check.
    """
    recorded = list(recorded)
    verifier = FeedVerifier(feed, merkle=merkle, table=sorted(recorded) if recorded else None)
    verifier.add_many(rows)
    return verifier.finish(recorded, lots)
