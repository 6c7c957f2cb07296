"""``edge ledger verify --witnesses K``: is each feed's history cosigned by K other nodes?

A witness's cosignature over a checkpoint (size, head, root) says it held that checkpoint and
had checked it against everything it held of the feed; a Merkle root commits to every entry
before it, so a checkpoint cosigned by K trusted witnesses is history K others saw: a rollback,
a truncation or a restored old backup below it is provable by any of them.

Per feed, the feed's last checkpoint entry must carry K valid cosignatures by distinct trusted
keys other than the feed's own; the cosignatures table is not trusted (each signature is checked
again here, and must match the checkpoint entry in the chain). When it does not, the problem
names how far the history IS witnessed by K (the newest checkpoint that is).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

import orjson

from edge.ledger.entry import CHECKPOINT
from edge.ledger.replica_status import held_feeds
from edge.ledger.replica_types import Cosignature
from edge.ledger.verify_report import Kind, Problem

__all__ = ["check_witnesses"]


def _witnesses(
    conn: sqlite3.Connection,
    feed: str,
    seq: int,
    body: Mapping[str, object],
    trusted: Mapping[str, str] | None,
) -> set[str]:
    """The distinct trusted witnesses with a valid cosignature of the checkpoint entry at seq."""
    head, root = body.get("head"), body.get("root")
    found: set[str] = set()
    for witness, ts, sig in conn.execute(
        "SELECT witness, ts, sig FROM cosignatures WHERE feed = ? AND size = ? AND head = ? "
        "AND root = ?",
        (feed, seq, head, root),
    ):
        if witness == feed or witness in found:
            continue
        if trusted is not None and witness not in trusted:
            continue
        cos = Cosignature(feed, seq, str(head), str(root), str(witness), int(ts), str(sig))
        if cos.valid():
            found.add(str(witness))
    return found


def _checkpoint(
    conn: sqlite3.Connection, feed: str, below: int | None
) -> tuple[int, dict[str, object]] | None:
    """The feed's newest checkpoint entry (before seq ``below``): (seq, body), None: none."""
    row = conn.execute(
        "SELECT seq, raw FROM entries WHERE feed = ? AND type = ? AND seq < ? "
        "ORDER BY seq DESC LIMIT 1",
        (feed, CHECKPOINT, below if below is not None else 1 << 62),
    ).fetchone()
    if row is None:
        return None
    try:
        body = orjson.loads(row[1]).get("body")
    except (orjson.JSONDecodeError, AttributeError):
        body = None
    return int(row[0]), body if isinstance(body, dict) else {}


def check_witnesses(
    conn: sqlite3.Connection, k: int, trusted: Mapping[str, str] | None
) -> list[Problem]:
    """One ``too few witnesses`` problem per feed whose last checkpoint has fewer than ``k``.

    Args:
        conn: the ledger database.
        k: witnesses required (distinct keys, none the feed's own).
        trusted: feed id -> name of the trusted keys; None: trust not checked (any valid
            cosignature counts, and the report says trust was not checked).
    """
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cosignatures'"
    ).fetchone()
    problems = []
    for feed in held_feeds(conn):
        last = _checkpoint(conn, feed, None)
        if last is None:
            problems.append(
                Problem(feed, 0, Kind.UNWITNESSED, f"no checkpoint: nothing to cosign (need {k})")
            )
            continue
        seq, body = last
        found = _witnesses(conn, feed, seq, body, trusted) if has_table else set()
        if len(found) >= k:
            continue
        # How far is the history witnessed by k? Walk back over the cosigned checkpoints only.
        witnessed = None
        if has_table:
            for (size,) in conn.execute(
                "SELECT DISTINCT size FROM cosignatures WHERE feed = ? AND size < ? "
                "ORDER BY size DESC",
                (feed, seq),
            ).fetchall():
                earlier = _checkpoint(conn, feed, size + 1)
                if (
                    earlier is not None
                    and earlier[0] == size
                    and len(_witnesses(conn, feed, size, earlier[1], trusted)) >= k
                ):
                    witnessed = size
                    break
        names = ", ".join(sorted((trusted or {}).get(w, w[:16]) for w in found)) or "none"
        upto = (
            f"history witnessed by {k} up to checkpoint {witnessed}"
            if witnessed is not None
            else f"no checkpoint of it is cosigned by {k}"
        )
        problems.append(
            Problem(
                feed,
                seq,
                Kind.UNWITNESSED,
                f"last checkpoint (seq {seq}) cosigned by {len(found)} of {k} required "
                f"witnesses ({names}); {upto}",
            )
        )
    return problems
