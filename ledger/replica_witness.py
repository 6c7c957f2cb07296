"""Evidence about feeds beyond their entries: peers' heads, cosignatures, forks, sync events.

Used by :class:`~edge.ledger.replica.Replica` (which holds the lock and maps SQLite errors).

* **Peers' heads** (``peer_heads``): the highest checkpoint entry each peer announced of each
  feed, kept only once the feed's key is seen to have signed it. For our own feed they are the
  rollback evidence: a checkpoint signed by our key beyond our end means our file lost history
  (an old backup restored, a lost database).
* **Cosignatures** (``cosignatures``): a witness's signature over a checkpoint's signed fields
  (:func:`~edge.ledger.replica_types.cosignature_message`). We cosign only a checkpoint entry we
  hold: it was verified on accept against everything held of its feed (chain and Merkle root).
* **Forks** (``forks``): a second validly signed history of a feed at a seq we hold, kept as
  proof (the conflicting entries up to the checkpoint whose signature covers them).
* **Sync events** (``sync_events``): forks and rollbacks seen, until the node records each with
  an entry on its own feed (``ledger.fork``, ``ledger.rollback``).
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable

import orjson

from edge.errors import NotCanonical, RollbackRefused
from edge.ledger.commit import transaction
from edge.ledger.entry import format_ts
from edge.ledger.keys import NodeKey
from edge.ledger.replica_types import (
    Checkpoint,
    Cosignature,
    CosignResult,
    OwnCheck,
    OwnStatus,
    PeerHeadResult,
    PendingRecord,
    Reason,
    cosignature_message,
)

__all__ = ["FORK_ENTRY", "ROLLBACK_ENTRY", "Witness", "own_evidence", "refuse_if_behind"]

#: Entry type recording a fork seen on a feed (body: feed, seq, held, other, source).
FORK_ENTRY = "ledger.fork"
#: Entry type recording that our own feed was found behind what peers hold (body: held, peers,
#: evidence), appended once the feed is restored and the node may append again.
ROLLBACK_ENTRY = "ledger.rollback"

EndOf = Callable[[str], tuple[int, str | None]]


class Witness:
    """The evidence tables of one ledger database (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection, key: NodeKey, stats: Counter[str]) -> None:
        self._conn = conn
        self._key = key
        self._stats = stats

    # -- forks and events ----------------------------------------------------------------------

    def keep_fork(
        self, feed: str, seq: int, other: str, held: str, branch: bytes, source: str, now: float
    ) -> bool:
        """Keep a fork proof; True when it is new (then a ``ledger.fork`` entry is owed)."""
        conn = self._conn
        seen = format_ts(now)
        with transaction(conn):
            new = conn.execute(
                "INSERT OR IGNORE INTO forks(feed, seq, id, held, branch, source, seen) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (feed, seq, other, held, branch, source, seen),
            ).rowcount
            if new:
                body = {"feed": feed, "seq": seq, "held": held, "other": other, "source": source}
                self._event(f"fork:{feed}:{seq}:{other}", FORK_ENTRY, body, seen)
        return bool(new)

    def _event(self, key: str, kind: str, body: dict[str, object], seen: str) -> None:
        self._conn.execute(
            "INSERT OR IGNORE INTO sync_events(key, type, body, seen) VALUES (?, ?, ?, ?)",
            (key, kind, orjson.dumps(body), seen),
        )

    def pending_records(self) -> list[PendingRecord]:
        """Sync events not yet recorded on our own feed, oldest first."""
        rows = self._conn.execute(
            "SELECT key, type, body FROM sync_events WHERE recorded IS NULL ORDER BY seen, key"
        ).fetchall()
        return [PendingRecord(str(k), str(t), orjson.loads(b)) for k, t, b in rows]

    def mark_recorded(self, key: str, entry_id: str) -> None:
        """Sync event ``key`` is recorded by entry ``entry_id``."""
        self._conn.execute("UPDATE sync_events SET recorded = ? WHERE key = ?", (entry_id, key))

    # -- peers' heads ----------------------------------------------------------------------------

    def record_peer_head(
        self,
        peer: str,
        checkpoint_raw: bytes,
        now: float,
        trusted: Callable[[str], bool],
        end_of: EndOf,
        root_at: Callable[[str, int], str],
    ) -> PeerHeadResult:
        """Verify and record ``peer``'s announced head; compare it with what we hold."""
        conn = self._conn
        try:
            cp = Checkpoint.from_raw(checkpoint_raw)
        except (NotCanonical, TypeError, AttributeError):
            self._stats["peer_heads_rejected"] += 1
            return PeerHeadResult(False, Reason.MALFORMED)
        if not trusted(cp.feed):
            self._stats["peer_heads_rejected"] += 1
            return PeerHeadResult(False, Reason.UNTRUSTED)
        row = conn.execute(
            "SELECT size, checkpoint FROM peer_heads WHERE peer = ? AND feed = ?", (peer, cp.feed)
        ).fetchone()
        known = row is not None and bytes(row[1]) == cp.raw
        if not known and not cp.signed():
            self._stats["peer_heads_rejected"] += 1
            return PeerHeadResult(False, Reason.BAD_SIGNATURE)
        seen = format_ts(now)
        end, _ = end_of(cp.feed)
        fork = False
        if cp.seq < end:
            held = conn.execute(
                "SELECT id FROM entries WHERE feed = ? AND seq = ?", (cp.feed, cp.seq)
            ).fetchone()
            # Another entry at its seq proves a second history only when the key signed another
            # root for that size (a checkpoint's unsigned ts may differ: that proves nothing).
            if held is not None and held[0] != cp.id and root_at(cp.feed, cp.size) != cp.root:
                fork = True
                self.keep_fork(cp.feed, cp.seq, cp.id, str(held[0]), cp.raw, peer, now)
        if row is None or cp.end >= int(row[0]):
            conn.execute(
                "INSERT OR REPLACE INTO peer_heads(peer, feed, size, head, checkpoint, seen, "
                "announced) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (peer, cp.feed, cp.end, cp.id, cp.raw, seen, cp.end),
            )
        else:  # lower than it announced before (its file went back?): keep the evidence
            conn.execute(
                "UPDATE peer_heads SET announced = ?, seen = ? WHERE peer = ? AND feed = ?",
                (cp.end, seen, peer, cp.feed),
            )
        ahead = cp.end > end and not fork
        own_behind = ahead and cp.feed == self._key.feed
        if own_behind:
            body = {"held": end, "peers": cp.end, "evidence": f"peer {peer} announced {cp.end}"}
            self._event(f"rollback:{end}", ROLLBACK_ENTRY, body, seen)
        return PeerHeadResult(
            True,
            ahead=ahead,
            need_from=end if ahead else None,
            fork=fork,
            own_behind=own_behind,
        )

    # -- cosignatures ----------------------------------------------------------------------------

    def cosignatures_of(self, cp: Checkpoint) -> tuple[Cosignature, ...]:
        """The cosignatures held of checkpoint ``cp``."""
        rows = self._conn.execute(
            "SELECT witness, ts, sig FROM cosignatures WHERE feed = ? AND size = ? AND head = ? "
            "AND root = ? ORDER BY witness",
            (cp.feed, cp.size, cp.head, cp.root),
        ).fetchall()
        return tuple(
            Cosignature(cp.feed, cp.size, cp.head, cp.root, str(w), int(t), str(s))
            for w, t, s in rows
        )

    def cosign(
        self, checkpoint_raw: bytes, now: float, forked_at: Callable[[str], int | None]
    ) -> Cosignature | None:
        """Our cosignature over a checkpoint entry we hold (stored too); None otherwise."""
        try:
            cp = Checkpoint.from_raw(checkpoint_raw)
        except (NotCanonical, TypeError, AttributeError):
            return None
        if cp.feed == self._key.feed:
            return None  # a feed's own key is no witness of it
        held = self._conn.execute(
            "SELECT id FROM entries WHERE feed = ? AND seq = ?", (cp.feed, cp.seq)
        ).fetchone()
        if held is None or held[0] != cp.id:
            return None
        fork = forked_at(cp.feed)
        if fork is not None and fork <= cp.seq:
            return None  # what we hold there is disputed: vouch for nothing beyond the fork
        ts = int(now)
        message = cosignature_message(cp.feed, cp.size, cp.head, cp.root, ts)
        cos = Cosignature(
            cp.feed, cp.size, cp.head, cp.root, self._key.feed, ts, self._key.sign(message)
        )
        self._insert(cos)
        return cos

    def _insert(self, cos: Cosignature) -> bool:
        return bool(
            self._conn.execute(
                "INSERT OR IGNORE INTO cosignatures(feed, size, head, root, witness, ts, sig) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (cos.feed, cos.size, cos.head, cos.root, cos.witness, cos.ts, cos.sig),
            ).rowcount
        )

    def add_cosignature(
        self, cos: Cosignature, now: float, trusted: Callable[[str], bool]
    ) -> CosignResult:
        """Verify and keep a witness's cosignature (also when we do not hold its checkpoint)."""
        if cos.witness == cos.feed:
            return CosignResult.SELF_WITNESS
        if not trusted(cos.witness):
            return CosignResult.UNTRUSTED_WITNESS
        if not trusted(cos.feed):
            return CosignResult.UNTRUSTED_FEED
        exists = self._conn.execute(
            "SELECT 1 FROM cosignatures WHERE feed = ? AND size = ? AND witness = ? AND head = ? "
            "AND root = ?",
            (cos.feed, cos.size, cos.witness, cos.head, cos.root),
        ).fetchone()
        if exists is not None:
            return CosignResult.DUPLICATE
        if not cos.valid():
            return CosignResult.BAD_SIGNATURE
        self._insert(cos)
        held = self._conn.execute(
            "SELECT head, root FROM checkpoints WHERE feed = ? AND size = ?", (cos.feed, cos.size)
        ).fetchone()
        if held is not None and (held[0], held[1]) != (cos.head, cos.root):
            body = {
                "feed": cos.feed,
                "seq": cos.size,
                "held": str(held[0]),
                "other": cos.head,
                "source": f"cosignature by {cos.witness}",
            }
            self._event(
                f"cosign-conflict:{cos.feed}:{cos.size}:{cos.witness}",
                FORK_ENTRY,
                body,
                format_ts(now),
            )
            return CosignResult.CONFLICT
        return CosignResult.STORED

    # -- our own feed ----------------------------------------------------------------------------

    def own_check(self, end: int, forked_at: int | None) -> OwnCheck:
        """Our feed (``end`` entries held) against peers' heads and cosignatures of it."""
        conn = self._conn
        feed = self._key.feed
        highest, evidence = end, "no peer or witness holds more"
        row = conn.execute(
            "SELECT peer, size FROM peer_heads WHERE feed = ? ORDER BY size DESC LIMIT 1", (feed,)
        ).fetchone()
        if row is not None and int(row[1]) > highest:
            highest, evidence = int(row[1]), f"peer {str(row[0])[:16]} holds {int(row[1])}"
        row = conn.execute(
            "SELECT witness, size FROM cosignatures WHERE feed = ? ORDER BY size DESC LIMIT 1",
            (feed,),
        ).fetchone()
        if row is not None and int(row[1]) + 1 > highest:
            highest = int(row[1]) + 1
            evidence = f"witness {str(row[0])[:16]} cosigned {highest}"
        conflict = conn.execute(
            "SELECT c.size, c.witness FROM cosignatures AS c LEFT JOIN checkpoints AS k "
            "ON k.feed = c.feed AND k.size = c.size WHERE c.feed = ? AND c.size < ? "
            "AND (k.head IS NULL OR k.head != c.head OR k.root != c.root) LIMIT 1",
            (feed, end),
        ).fetchone()
        if forked_at is not None or conflict is not None:
            where = forked_at if forked_at is not None else int(conflict[0])
            return OwnCheck(
                feed, end, highest, f"a second history from seq {where}", OwnStatus.FORKED
            )
        status = OwnStatus.BEHIND if highest > end else OwnStatus.OK
        return OwnCheck(feed, end, highest, evidence, status)


def own_evidence(conn: sqlite3.Connection, feed: str) -> tuple[int, str] | None:
    """The most entries of ``feed`` peers announced or witnesses cosigned (None: no evidence).

    For :meth:`edge.ledger.store.Ledger.open`: a file whose own feed ends before this was rolled
    back (or restored from an old backup) and must not be appended to.
    """
    try:
        peers = conn.execute("SELECT max(size) FROM peer_heads WHERE feed = ?", (feed,)).fetchone()[
            0
        ]
        cosigned = conn.execute(
            "SELECT max(size) + 1 FROM cosignatures WHERE feed = ?", (feed,)
        ).fetchone()[0]
    except sqlite3.OperationalError:  # a file without the sync tables
        return None
    best = max((v for v in (peers, cosigned) if v is not None), default=None)
    if best is None:
        return None
    how = "a peer announced" if best == peers else "a witness cosigned"
    return int(best), how


def refuse_if_behind(conn: sqlite3.Connection, where: str, feed: str, size: int) -> None:
    """Raise RollbackRefused when peers or witnesses hold more of ``feed`` than ``size``.

    Raises:
        RollbackRefused: the file lost history that others saw: appending would fork the feed.
    """
    seen = own_evidence(conn, feed)
    if seen is not None and seen[0] > size:
        raise RollbackRefused(
            f"{where}: feed {feed[:16]} holds {size} entries but {seen[1]} {seen[0]}; "
            "restore the feed from peers before appending"
        )
