"""``verify`` and the ``forks`` table: a feed with a second signed history is named, proof checked.

Sync keeps, for every fork it saw, the other history's entries from the first differing seq up to
the checkpoint whose signature covers them (or, from a peer's announcement, just that checkpoint
entry). The table is not hashed, so each record is checked again here against the feed as held:
a valid one names the feed ``forked feed`` (its key signed two histories: only a holder of the
key can do that); one that proves nothing (altered, or never valid) is a ``bad fork record``.
"""

from __future__ import annotations

import sqlite3

from edge.ledger.replica_check import Rejected, check_batch
from edge.ledger.replica_store import held_frontier
from edge.ledger.replica_types import Checkpoint
from edge.ledger.verify_report import Kind, Problem

__all__ = ["check_forks"]


def _proves(conn: sqlite3.Connection, feed: str, seq: int, other: str, branch: bytes) -> str:
    """Why the record proves nothing ("" when it is a valid proof of a second history)."""
    raws = branch.split(b"\n")
    frontier = held_frontier(conn, feed, seq)
    if frontier is None:
        return "the entries before it are not all held"
    if len(raws) == 1:  # a conflicting checkpoint a peer announced: another root for its size
        try:
            cp = Checkpoint.from_raw(raws[0])
        except Exception:
            return "not a checkpoint entry"
        if cp.feed != feed or cp.seq != seq or cp.id != other or not cp.signed():
            return "not a checkpoint signed by the feed's key at that seq"
        if frontier.root().hex() == cp.root:
            return "the checkpoint signs the same root as the held entries"
        return ""
    prev = None
    if seq > 0:
        row = conn.execute(
            "SELECT id FROM entries WHERE feed = ? AND seq = ?", (feed, seq - 1)
        ).fetchone()
        prev = None if row is None else str(row[0])
    try:
        checked = check_batch(feed, seq, raws, prev, frontier)
    except Rejected as exc:
        return f"the other history does not verify: {exc}"
    if checked.rows[0][2] != other or not any(size > seq for _, size, *_ in checked.checkpoints):
        return "no signature covers the differing entry"
    return ""


def check_forks(conn: sqlite3.Connection) -> list[Problem]:
    """One problem per fork record: ``forked feed`` when it proves one, else ``bad fork record``."""
    if (
        conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'forks'"
        ).fetchone()
        is None
    ):
        return []
    problems = []
    for feed, seq, other, held, branch, source, seen in conn.execute(
        "SELECT feed, seq, id, held, branch, source, seen FROM forks ORDER BY feed, seq"
    ).fetchall():
        why = _proves(conn, str(feed), int(seq), str(other), bytes(branch))
        if why:
            problems.append(
                Problem(
                    feed, seq, Kind.BAD_FORK_RECORD, f"fork record of entry {other[:16]}: {why}"
                )
            )
        else:
            problems.append(
                Problem(
                    feed,
                    seq,
                    Kind.FORKED,
                    f"a second history signed by the feed's key from seq {seq} (entry "
                    f"{other[:16]} where we hold {held[:16]}), seen from {source or 'a peer'} at "
                    f"{seen}: kept as proof in the forks table",
                )
            )
    return problems
