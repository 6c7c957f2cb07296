"""The ledger side of sync: replicas of peers' feeds, verified before they are stored.

:class:`Replica` is what the network side (:mod:`edge.sync`) calls: it reads ranges of any feed
held (:meth:`Replica.read_range`) and accepts peers' batches (:meth:`Replica.accept`) after
checking them against the trust list and everything already held of the feed
(:mod:`.replica_check`); it keeps forks as proof, records peers' heads, makes and keeps
cosignatures (:mod:`.replica_witness`) and tells the node whether its own feed is behind what
peers hold (rollback / restore). The contract is written in docs/reference/ledger.md ("Sync").

Writes of foreign feeds respect the single writer: the node process holds ``<db>.lock`` (its
LedgerWriter took it); the replica writes in the same process, on its own connection, each batch
in one short ``BEGIN IMMEDIATE`` transaction. Its own batches are written by the commit process;
SQLite serialises the two (why not through the commit process: docs/design.md, "Sync").

Every method is synchronous and short; they are thread-safe (one lock), so an asyncio caller
runs the long ones (``accept``, ``read_range``) with ``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from edge.errors import LedgerClosed, StorageError, map_exceptions
from edge.ledger.database import SQL_ERRORS, connect
from edge.ledger.entry import CHECKPOINT
from edge.ledger.keys import NodeKey
from edge.ledger.merkle import Frontier
from edge.ledger.owner import claim_owner
from edge.ledger.replica_check import Checked, Rejected, check_batch
from edge.ledger.replica_read import read_range
from edge.ledger.replica_store import held_frontier, store_checked
from edge.ledger.replica_types import (
    AcceptResult,
    Checkpoint,
    Cosignature,
    CosignResult,
    FeedHead,
    FeedStatus,
    Outcome,
    OwnCheck,
    PeerHeadResult,
    PendingRecord,
    Reason,
)
from edge.ledger.replica_witness import Witness
from edge.ledger.stored_frontier import rebuild_frontier, stored_frontier
from edge.ledger.trust import TrustList
from edge.ledger.writer_lock import take_writer_lock

__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_ENTRIES", "Replica"]

log = logging.getLogger("edge.ledger.replica")

#: A batch of more entries than this is refused whole (TOO_LARGE): bounded memory and
#: transaction length, whatever a peer sends.
MAX_BATCH_ENTRIES = 10_000
#: ... or of more bytes than this.
MAX_BATCH_BYTES = 16 * 1024 * 1024
#: Rejections that mean a trusted feed's history does not hold together (tampering or a
#: broken writer): the caller raises an alarm.
_ALARMING = frozenset({Reason.BROKEN_CHAIN, Reason.BAD_CHECKPOINT, Reason.BAD_SIGNATURE})
_RETRIES = 3  # the feed moved between check and write (our own feed's writer): check again


class Replica:
    """Replicas of every trusted feed in one ledger database (see the module docstring)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        key: NodeKey,
        trust: TrustList,
        lock_fd: int | None,
    ) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.path = path
        self.key = key
        self.feed = key.feed
        self._trust = trust
        self._lock_fd = lock_fd
        self._mutex = threading.RLock()
        # feed -> (end, head id, frontier over 0..end-1): saves re-reading a feed per batch;
        # used only while the feed's stored end and head id still match.
        self._frontiers: dict[str, tuple[int, str, Frontier]] = {}
        self._stats: Counter[str] = Counter()
        self._own_size: Callable[[], int] | None = None  # the running writer's durable size
        self._witness = Witness(conn, key, self._stats)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        key: NodeKey,
        trust: TrustList,
        *,
        take_lock: bool = False,
    ) -> Replica:
        """Open the ledger database at ``path`` (created and migrated) for replication.

        Args:
            path: the node's ledger database.
            key: the node key: names our own feed, and cosigns.
            trust: the feeds to accept (our own included).
            take_lock: take the single-writer lock ``<db>.lock`` (standalone use). False
                inside the node, whose LedgerWriter holds it.

        Raises:
            StorageError: the file cannot be opened, or another process writes to it.
        """
        path = Path(path)
        lock_fd = take_writer_lock(path) if take_lock else None
        try:
            conn = connect(path)
            with map_exceptions(SQL_ERRORS, f"ledger {path}"):
                claim_owner(conn, f"ledger {path}", key.feed)  # as the node's writer would
        except BaseException:
            if lock_fd is not None:
                os.close(lock_fd)
            raise
        return cls(conn, path, key, trust, lock_fd)

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        """The replica's connection."""
        if self._conn is None:
            raise LedgerClosed(f"replica of {self.path} is closed")
        return self._conn

    def close(self) -> None:
        """Close the connection (and the lock, if taken). Idempotent."""
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> Replica:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def set_trust(self, trust: TrustList) -> None:
        """Use a new trust list from now on (after ``edge trust add/remove``)."""
        self._trust = trust

    def trusted(self, feed: str) -> bool:
        """True when ``feed`` is on the trust list (our own always is)."""
        return feed == self.feed or feed in self._trust

    def stats(self) -> dict[str, int]:
        """Counters since open (accepted entries, duplicates, rejections by reason ...)."""
        with self._mutex:
            return dict(self._stats)

    def _where(self, what: str = "") -> str:
        return f"ledger {self.path}{': ' + what if what else ''}"

    # -- reading -------------------------------------------------------------------------------

    def _end(self, feed: str) -> tuple[int, str | None]:
        row = self.conn.execute(
            "SELECT seq, id FROM entries WHERE feed = ? ORDER BY seq DESC LIMIT 1", (feed,)
        ).fetchone()
        return (0, None) if row is None else (int(row[0]) + 1, str(row[1]))

    def end(self, feed: str) -> int:
        """Entries held of ``feed`` (its last seq + 1; 0 when none)."""
        with self._mutex, map_exceptions(SQL_ERRORS, self._where()):
            return self._end(feed)[0]

    def head(self, feed: str) -> FeedHead | None:
        """How far ``feed`` is held (None when not at all)."""
        with self._mutex, map_exceptions(SQL_ERRORS, self._where()):
            return self._head(feed)

    def _head(self, feed: str) -> FeedHead | None:
        conn = self.conn
        end, head = self._end(feed)
        if head is None:
            return None
        row = conn.execute(
            "SELECT raw FROM entries WHERE feed = ? AND type = ? AND seq < ? "
            "ORDER BY seq DESC LIMIT 1",
            (feed, CHECKPOINT, end),
        ).fetchone()
        checkpoint = None
        cosignatures: tuple[Cosignature, ...] = ()
        if row is not None:
            try:
                checkpoint = Checkpoint.from_raw(bytes(row[0]))
            except Exception:  # a damaged entry: verify names it; the head is still the head
                checkpoint = None
            if checkpoint is not None:
                cosignatures = self._witness.cosignatures_of(checkpoint)
        return FeedHead(feed, end, head, checkpoint, cosignatures, self._forked_at(feed))

    def heads(self) -> list[FeedHead]:
        """Every feed held, ours included (announce only trusted ones: :meth:`trusted`)."""
        with self._mutex, map_exceptions(SQL_ERRORS, self._where()):
            from edge.ledger.replica_status import held_feeds

            feeds = held_feeds(self.conn)
            return [h for h in (self._head(f) for f in feeds) if h is not None]

    def _forked_at(self, feed: str) -> int | None:
        row = self.conn.execute("SELECT min(seq) FROM forks WHERE feed = ?", (feed,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def read_range(
        self, feed: str, start: int, *, max_entries: int = 2000, max_bytes: int = 1 << 20
    ) -> list[bytes]:
        """Raw entries of ``feed`` from ``start``, ending on a checkpoint entry.

        The longest such run within ``max_entries`` and ``max_bytes``; when the first
        checkpoint at or after ``start`` lies beyond them, the run up to it all the same (a
        writer's batch is bounded). Empty when nothing is held from ``start``, or no checkpoint
        follows it (unsigned entries are never served): :func:`.replica_read.read_range`.
        """
        with self._mutex, map_exceptions(SQL_ERRORS, self._where("read range")):
            return read_range(self.conn, feed, start, max_entries, max_bytes)

    # -- accepting -----------------------------------------------------------------------------

    def accept(
        self, feed: str, start: int, raws: Sequence[bytes], *, now: float, source: str = ""
    ) -> AcceptResult:
        """Verify a peer's batch of ``feed`` (entries ``start..``) and store it whole, or not at all.

        Args:
            feed: the feed the batch is of (the topic it came on).
            start: seq of the first entry.
            raws: the entries' canonical bytes, consecutive, ending with a checkpoint entry.
            now: the time (epoch seconds), for fork records.
            source: who sent it (a peer's feed id or name), for fork records and the log.

        Returns:
            What was done (see :class:`~edge.ledger.replica_types.AcceptResult`).

        Raises:
            StorageError: SQLite failed (nothing was stored).
        """
        with self._mutex, map_exceptions(SQL_ERRORS, self._where("accept")):
            for _ in range(_RETRIES):
                result = self._accept(feed, start, list(raws), now, source)
                if result is not None:
                    self._count(result)
                    return result
            raise StorageError(
                f"{self._where()}: feed {str(feed)[:16]} kept moving while accepting"
            )

    def _count(self, result: AcceptResult) -> None:
        stats = self._stats
        if result.outcome is Outcome.STORED:
            stats["accepted_batches"] += 1
            stats["accepted_entries"] += result.stored
        elif result.outcome is Outcome.REJECTED:
            stats[f"rejected.{result.reason}"] += 1
        else:
            stats[f"{result.outcome}s"] += 1

    def _reject(
        self, feed: str, reason: Reason, detail: str, end: int = 0, need_from: int | None = None
    ) -> AcceptResult:
        alarm = reason in _ALARMING and self.trusted(feed)
        own = feed == self.feed
        return AcceptResult(
            Outcome.REJECTED,
            feed,
            end=end,
            need_from=need_from,
            reason=reason,
            detail=detail,
            alarm=alarm,
            own_feed=own,
        )

    def _diverged(self, feed: str, first: int, exc: Rejected) -> int | None:
        """Where to ask again when a batch's first entry does not link to the one we hold.

        Then the sender's history left ours before ``first``: a range overlapping ours from
        the start of our batch before it shows where (a FORK with its proof, asked again batch
        by batch further back). None for any other rejection.
        """
        if exc.reason is not Reason.BROKEN_CHAIN or exc.seq != first or first == 0:
            return None
        row = self.conn.execute(
            "SELECT max(seq) FROM entries WHERE feed = ? AND type = ? AND seq < ?",
            (feed, CHECKPOINT, first - 1),
        ).fetchone()
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    def _accept(
        self, feed: str, start: int, raws: list[bytes], now: float, source: str
    ) -> AcceptResult | None:
        own = feed == self.feed
        if not isinstance(feed, str) or not self.trusted(feed):
            return self._reject(feed, Reason.UNTRUSTED, f"feed {str(feed)[:16]} is not trusted")
        if not raws or type(start) is not int or start < 0:
            return self._reject(feed, Reason.MALFORMED, "empty batch or bad start")
        if not all(type(raw) is bytes for raw in raws):
            return self._reject(feed, Reason.MALFORMED, "an entry is not bytes")
        if len(raws) > MAX_BATCH_ENTRIES or sum(map(len, raws)) > MAX_BATCH_BYTES:
            return self._reject(feed, Reason.TOO_LARGE, f"{len(raws)} entries")
        end, last = self._end(feed)
        if start > end:
            return AcceptResult(
                Outcome.GAP,
                feed,
                end=end,
                need_from=end,
                detail=f"batch from seq {start}, we hold {end}: need from seq {end}",
                own_feed=own,
            )
        offset = 0  # of the first new entry in raws
        if start < end:
            differ = self._first_difference(feed, start, raws, end)
            if differ is not None:
                return self._fork(feed, start, raws, differ, now, source)
            offset = end - start
            if offset >= len(raws):
                return AcceptResult(
                    Outcome.DUPLICATE, feed, end=end, detail="already held", own_feed=own
                )
        frontier = self._frontier(feed, end, last)
        try:
            checked = check_batch(feed, end, raws[offset:], last, frontier)
        except Rejected as exc:
            self._frontiers.pop(feed, None)  # extended in place before it failed
            return self._reject(feed, exc.reason, str(exc), end, self._diverged(feed, end, exc))
        if not self._store(feed, end, last, checked):
            self._frontiers.pop(feed, None)
            return None  # the feed moved under us: check again
        new_end = end + len(checked.rows)
        self._frontiers[feed] = (new_end, checked.rows[-1][2], checked.frontier)
        return AcceptResult(
            Outcome.STORED,
            feed,
            stored=len(checked.rows),
            end=new_end,
            detail=f"seq {end}..{new_end - 1}",
            alarm=own,  # our own feed restored from a peer: the node must know
            own_feed=own,
        )

    def _first_difference(self, feed: str, start: int, raws: list[bytes], end: int) -> int | None:
        """The first seq in ``start..end-1`` where ``raws`` differs from what is held."""
        import hashlib

        stop = min(end, start + len(raws))
        held = self.conn.execute(
            "SELECT seq, id FROM entries WHERE feed = ? AND seq >= ? AND seq < ? ORDER BY seq",
            (feed, start, stop),
        ).fetchall()
        for (seq, entry_id), raw in zip(held, raws, strict=False):
            if type(raw) is not bytes or hashlib.sha256(raw).hexdigest() != entry_id:
                return int(seq)
        if len(held) != stop - start:
            raise StorageError(f"{self._where()}: feed {feed[:16]} has a gap before seq {stop}")
        return None

    def _frontier(self, feed: str, end: int, last: str | None) -> Frontier:
        """A copy of the Merkle frontier over entries ``0..end-1`` of ``feed``."""
        cached = self._frontiers.get(feed)
        if cached is not None and cached[0] == end and cached[1] == last:
            frontier = cached[2]
        else:
            row = self.conn.execute(
                "SELECT raw FROM entries WHERE feed = ? AND seq = ?", (feed, end - 1)
            ).fetchone()
            found = stored_frontier(self.conn, feed, end, None if row is None else bytes(row[0]))
            frontier = found if found is not None else self._rebuild(feed, end)
            if frontier.size != end:
                raise StorageError(f"{self._where()}: feed {feed[:16]} has a gap")
        return Frontier.restore(frontier.packed(), frontier.size)

    def _rebuild(self, feed: str, end: int) -> Frontier:
        frontier = rebuild_frontier(self.conn, self.path, feed)
        if frontier.size != end:
            raise StorageError(f"{self._where()}: feed {feed[:16]} has a gap")
        return frontier

    def _frontier_at(self, feed: str, size: int) -> Frontier:
        """The Merkle frontier over the held entries ``0..size-1`` (reads their ids)."""
        frontier = held_frontier(self.conn, feed, size)
        if frontier is None:
            raise StorageError(f"{self._where()}: feed {feed[:16]} has a gap before {size}")
        return frontier

    def _store(self, feed: str, end: int, last: str | None, checked: Checked) -> bool:
        """Write a checked batch in one transaction; False when the feed moved meanwhile."""
        return store_checked(self.conn, feed, (end, last), checked, self._end)

    def _fork(
        self, feed: str, start: int, raws: list[bytes], differ: int, now: float, source: str
    ) -> AcceptResult:
        """``raws`` differs from what is held at seq ``differ``: a fork if validly signed."""
        own = feed == self.feed
        end = self._end(feed)[0]
        prev = None
        if differ > 0:
            row = self.conn.execute(
                "SELECT id FROM entries WHERE feed = ? AND seq = ?", (feed, differ - 1)
            ).fetchone()
            prev = str(row[0])
        branch = raws[differ - start :]
        try:
            checked = check_batch(feed, differ, branch, prev, self._frontier_at(feed, differ))
        except Rejected as exc:
            detail = f"differs from what we hold; {exc}"
            return self._reject(feed, exc.reason, detail, end, self._diverged(feed, differ, exc))
        held = self.conn.execute(
            "SELECT id FROM entries WHERE feed = ? AND seq = ?", (feed, differ)
        ).fetchone()[0]
        # Two different entries at one seq prove a second history only when a signature covers
        # each: a checkpoint of size > differ on both sides (their roots then differ). The last
        # checkpoint entry of a feed is covered by no signature yet (its ts is not signed: only
        # the next checkpoint's root covers it), so a difference there proves nothing.
        covering = next((size for _, size, *_ in checked.checkpoints if size > differ), None)
        if covering is None:
            return self._reject(
                feed,
                Reason.BAD_CHECKPOINT,
                f"seq {differ}: a checkpoint entry that differs from the one held only in "
                "unsigned fields, covered by no signature",
                end,
            )
        if differ >= end - 1:  # ours is the tip: covered by no signature, theirs is
            return AcceptResult(
                Outcome.REJECTED,
                feed,
                end=end,
                reason=Reason.TIP_MISMATCH,
                detail=f"seq {differ}: our last checkpoint entry differs from the one a signed "
                "history covers (its unsigned bytes were altered here): the feed cannot grow "
                "here until restored",
                alarm=True,
                own_feed=own,
            )
        proof = branch[: covering - differ + 1]  # up to the signature that covers it
        new = self._witness.keep_fork(
            feed, differ, checked.rows[0][2], str(held), b"\n".join(proof), source, now
        )
        return AcceptResult(
            Outcome.FORK,
            feed,
            end=end,
            detail=f"a second valid history from seq {differ} (entry {checked.rows[0][2][:16]} "
            f"vs held {str(held)[:16]})" + ("" if new else ", already kept"),
            alarm=new,
            own_feed=own,
        )

    # -- witnessing, peers' heads, our own feed (see replica_witness) ------------------------------

    def record_peer_head(
        self,
        peer: str,
        checkpoint_raw: bytes,
        *,
        now: float,
        cosignatures: Sequence[Cosignature] = (),
    ) -> PeerHeadResult:
        """Record what ``peer`` announced it holds of a feed (its last checkpoint entry)."""
        with self._mutex, map_exceptions(SQL_ERRORS, self._where("peer head")):
            for cos in cosignatures:
                self._add_cosignature(cos, now)
            return self._witness.record_peer_head(
                peer, checkpoint_raw, now, self.trusted, self._known_end, self._root_at
            )

    def follow_writer(self, size: Callable[[], int] | None) -> None:
        """Count our own feed's durable entries as the running writer knows them.

        With the commit journal on, entries durable in ``<db>.eqj`` reach the database seconds
        later; peers may announce them before that. Pass ``lambda: writer.size``, so that
        :meth:`record_peer_head` and :meth:`own_check` do not take that for a rollback.
        """
        self._own_size = size

    def _known_end(self, feed: str) -> tuple[int, str | None]:
        end, last = self._end(feed)
        if feed == self.feed and self._own_size is not None:
            return max(end, self._own_size()), last
        return end, last

    def _root_at(self, feed: str, size: int) -> str:
        """The Merkle root over the held entries ``0..size-1`` of ``feed`` (hex)."""
        row = self.conn.execute(
            "SELECT root FROM checkpoints WHERE feed = ? AND size = ?", (feed, size)
        ).fetchone()
        if row is not None:
            return str(row[0])
        return self._frontier_at(feed, size).root().hex()

    def cosign(self, checkpoint_raw: bytes, *, now: float) -> Cosignature | None:
        """Our cosignature over a checkpoint entry we hold (None when we do not, or forked)."""
        with self._mutex, map_exceptions(SQL_ERRORS, self._where("cosign")):
            return self._witness.cosign(checkpoint_raw, now, self._forked_at)

    def add_cosignature(self, cos: Cosignature, *, now: float) -> CosignResult:
        """Verify and keep a witness's cosignature."""
        with self._mutex, map_exceptions(SQL_ERRORS, self._where("cosignature")):
            return self._add_cosignature(cos, now)

    def _add_cosignature(self, cos: Cosignature, now: float) -> CosignResult:
        result = self._witness.add_cosignature(cos, now, self.trusted)
        self._stats[
            "cosignatures_stored"
            if result is CosignResult.STORED
            else "cosignatures_duplicate"
            if result is CosignResult.DUPLICATE
            else "cosignatures_rejected"
        ] += 1
        return result

    def own_check(self, end: int | None = None) -> OwnCheck:
        """Our feed against what peers announced or witnesses cosigned of it.

        Args:
            end: our feed's durable size as the writer knows it (``LedgerWriter.size``; its
                commit journal may hold entries not yet in the database); default: the file's.
        """
        with self._mutex, map_exceptions(SQL_ERRORS, self._where("own check")):
            held = self._known_end(self.feed)[0]
            return self._witness.own_check(max(held, end or 0), self._forked_at(self.feed))

    def require_current(self, end: int | None = None) -> None:
        """Raise ``RollbackRefused`` unless our feed may be appended to (:meth:`own_check`)."""
        from edge.errors import RollbackRefused
        from edge.ledger.replica_types import OwnStatus

        check = self.own_check(end)
        if check.status is not OwnStatus.OK:
            raise RollbackRefused(
                f"{self._where()}: our feed {self.feed[:16]} holds {check.end} entries but "
                f"{check.evidence} ({check.status}): restore it from peers before appending"
            )

    def pending_records(self) -> list[PendingRecord]:
        """Entries owed to our own feed about sync events (append each, then mark_recorded)."""
        with self._mutex, map_exceptions(SQL_ERRORS, self._where()):
            return self._witness.pending_records()

    def mark_recorded(self, key: str, entry_id: str) -> None:
        """The entry recording sync event ``key`` was appended as ``entry_id``."""
        with self._mutex, map_exceptions(SQL_ERRORS, self._where()):
            self._witness.mark_recorded(key, entry_id)

    def status(self, now: float | None = None) -> list[FeedStatus]:
        """Per feed held or announced: our end, peers' ends, lag, cosigners, forked."""
        from edge.ledger.replica_status import feed_status

        with self._mutex, map_exceptions(SQL_ERRORS, self._where("status")):
            return feed_status(self.conn, self._trust.names, own=self.feed)
