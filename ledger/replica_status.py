"""Per feed: how far we hold it, how far peers said they hold it, who cosigned, forked or not.

What ``edge ledger status`` prints; read-only (works on a read-only connection).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

from edge.ledger.entry import CHECKPOINT
from edge.ledger.replica_types import FeedStatus, PeerHead

__all__ = ["feed_status", "held_feeds"]


def held_feeds(conn: sqlite3.Connection) -> list[str]:
    """Every feed with entries, in order (one index seek per feed, not a scan)."""
    feeds: list[str] = []
    row = conn.execute("SELECT min(feed) FROM entries").fetchone()
    while row is not None and row[0] is not None:
        feeds.append(str(row[0]))
        row = conn.execute("SELECT min(feed) FROM entries WHERE feed > ?", (row[0],)).fetchone()
    return feeds


def _has_sync_tables(conn: sqlite3.Connection) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'peer_heads'"
        ).fetchone()
        is not None
    )


def feed_status(
    conn: sqlite3.Connection, names: Mapping[str, str], *, own: str | None = None
) -> list[FeedStatus]:
    """One :class:`FeedStatus` per feed held or announced by a peer; ours first.

    Args:
        conn: the ledger database.
        names: feed id -> trust-list name (names peers and cosigners too).
        own: our feed (listed first).
    """
    sync = _has_sync_tables(conn)
    feeds = held_feeds(conn)
    if sync:
        for (feed,) in conn.execute("SELECT DISTINCT feed FROM peer_heads ORDER BY feed"):
            if feed not in feeds:
                feeds.append(str(feed))
    feeds.sort(key=lambda f: (f != own, names.get(f) is None, names.get(f) or "", f))
    out = []
    for feed in feeds:
        row = conn.execute(
            "SELECT seq, id FROM entries WHERE feed = ? ORDER BY seq DESC LIMIT 1", (feed,)
        ).fetchone()
        end, head = (0, "") if row is None else (int(row[0]) + 1, str(row[1]))
        cp = conn.execute(
            "SELECT seq, raw FROM entries WHERE feed = ? AND type = ? ORDER BY seq DESC LIMIT 1",
            (feed, CHECKPOINT),
        ).fetchone()
        checkpoint_size = None if cp is None else int(cp[0])
        peers: tuple[PeerHead, ...] = ()
        cosigners: tuple[str, ...] = ()
        forked_at = None
        if sync:
            peers = tuple(
                PeerHead(names.get(p, str(p)), feed, int(n), str(h), str(s))
                for p, n, h, s in conn.execute(
                    "SELECT peer, announced, head, seen FROM peer_heads WHERE feed = ? "
                    "ORDER BY peer",
                    (feed,),
                )
            )
            if checkpoint_size is not None:
                cosigners = tuple(
                    names.get(w, str(w))
                    for (w,) in conn.execute(
                        "SELECT DISTINCT c.witness FROM cosignatures AS c JOIN checkpoints AS k "
                        "ON k.feed = c.feed AND k.size = c.size AND k.head = c.head "
                        "AND k.root = c.root WHERE c.feed = ? AND c.size = ? ORDER BY c.witness",
                        (feed, checkpoint_size),
                    )
                )
            fork = conn.execute("SELECT min(seq) FROM forks WHERE feed = ?", (feed,)).fetchone()
            forked_at = None if fork is None or fork[0] is None else int(fork[0])
        lag = max((p.end for p in peers), default=end) - end
        out.append(
            FeedStatus(
                feed=feed,
                name=names.get(feed),
                end=end,
                head=head,
                checkpoint_size=checkpoint_size,
                peers=peers,
                lag=max(lag, 0),
                cosigners=cosigners,
                forked_at=forked_at,
            )
        )
    return out
