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
* the ``checkpoints`` table agrees with the checkpoint entries (else *checkpoints table
  mismatch*: :mod:`edge.ledger.verify_checkpoints`);
* every digest of the file's own feed has its readings block, hashing to it, or a
  ``readings.prune`` entry entitled to prune it (else *changed readings*, *readings block row
  mismatch*, *missing readings*; stored readings no digest commits to are *readings not on the
  chain*: :mod:`edge.ledger.verify_readings`);
* with a trust list, every feed is signed by a trusted key and the file's owner is the node's
  (else *untrusted feed*): a file names its feeds' keys itself, so only a list pinned outside it
  (:mod:`edge.ledger.trust`) says which to believe.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping

from edge.ledger.owner import read_owner
from edge.ledger.verify_chain import FeedVerifier, Row, verify_feed
from edge.ledger.verify_parallel import NO_END, recorded_rows, stored_lots, verify_parallel
from edge.ledger.verify_readings import check_readings as _check_readings
from edge.ledger.verify_report import FeedReport, Kind, Problem, Report

__all__ = [
    "PARALLEL_MIN",
    "FeedReport",
    "FeedVerifier",
    "Kind",
    "Problem",
    "Report",
    "Row",
    "verify_db",
    "verify_feed",
]

#: Feeds with at least this many entries are verified in parallel: this process and workers.
PARALLEL_MIN = 200_000


def verify_db(
    conn: sqlite3.Connection,
    *,
    progress: Callable[[int], None] | None = None,
    check_readings: bool = True,
    workers: int | None = None,
    merkle: bool = True,
    trusted: Mapping[str, str] | None = None,
    node_feed: str | None = None,
) -> Report:
    """Verify every feed in a ledger database.

    Args:
        conn: an open connection (read-only is enough).
        progress: called with the number of entries scanned since the last call.
        check_readings: also re-hash the stored readings blocks.
        workers: processes for feeds of :data:`PARALLEL_MIN` entries or more (default: one
            per CPU; 1 verifies everything in this process).
        merkle: recompute every checkpoint's Merkle root (see :class:`FeedVerifier`).
        trusted: feed id -> name of every trusted key (:mod:`edge.ledger.trust`); each feed
            signed by another key is named *untrusted feed*. None: trust is not checked.
        node_feed: the feed of the node whose database this is: the file's owner must be it.
    """
    report = Report(owner=read_owner(conn))
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
            verifier = verify_parallel(conn, path, feed, last_seq, workers, progress, merkle)
            report.feeds.append(verifier.finish(_recorded(conn, feed), None))
            continue
        verifier = FeedVerifier(feed, merkle=merkle, table=recorded_rows(conn, feed))
        cursor = conn.execute(
            "SELECT seq, id, prev, ts, type, actor, raw FROM entries WHERE feed = ? ORDER BY seq",
            (feed,),
        )
        while rows := cursor.fetchmany(4096):
            verifier.add_many(rows)
            if progress is not None:
                progress(len(rows))
        lots = stored_lots(conn, verifier, 0, NO_END)
        report.feeds.append(verifier.finish(_recorded(conn, feed), lots))
    readings_owner = report.owner
    if readings_owner is not None and feeds and readings_owner not in feeds:
        # An owner row naming a feed the file does not hold would take the real feed's readings
        # out of the check (deleted readings, no digest looked at): name it, and check every
        # feed's digests instead.
        report.feeds.append(
            FeedReport(
                readings_owner,
                problems=[
                    Problem(
                        readings_owner,
                        0,
                        Kind.WRONG_OWNER,
                        f"the owner table names feed {readings_owner}, which has no entry in "
                        "this file: the owner row was changed",
                    )
                ],
            )
        )
        readings_owner = None
    if check_readings:
        _check_readings(conn, report, readings_owner)
    _check_forks(conn, report)
    if trusted is not None:
        _check_trust(report, trusted, node_feed)
    return report


def _check_forks(conn: sqlite3.Connection, report: Report) -> None:
    """Name each feed sync saw a second signed history of (and fork records that prove none)."""
    from edge.ledger.verify_forks import check_forks

    by_feed = {f.feed: f for f in report.feeds}
    for problem in check_forks(conn):
        feed = by_feed.get(problem.feed)
        if feed is None:
            feed = by_feed[problem.feed] = FeedReport(problem.feed)
            report.feeds.append(feed)
        feed.problems.append(problem)


def _check_trust(report: Report, trusted: Mapping[str, str], node_feed: str | None) -> None:
    """Name every feed signed by a key not in ``trusted``, and an owner that is not the node."""
    report.trust_checked = True
    for feed in report.feeds:
        feed.trusted_as = trusted.get(feed.feed)
        if feed.trusted_as is None:
            feed.problems.insert(
                0,
                Problem(
                    feed.feed,
                    0,
                    Kind.UNTRUSTED,
                    f"feed {feed.feed} is signed by a key not on the trust list: "
                    "it vouches only for itself",
                ),
            )
    owner = report.owner
    if node_feed is not None and owner is not None and owner != node_feed:
        target = next((f for f in report.feeds if f.feed == owner), None)
        if target is None:
            target = FeedReport(owner)
            report.feeds.append(target)
        target.problems.insert(
            0,
            Problem(
                owner,
                0,
                Kind.UNTRUSTED,
                f"the database belongs to feed {owner}, not to this node's key {node_feed}",
            ),
        )


def _recorded(conn: sqlite3.Connection, feed: str) -> list[tuple[int, str, str, str]]:
    return conn.execute(
        "SELECT size, head, root, sig FROM checkpoints WHERE feed = ? ORDER BY size DESC", (feed,)
    ).fetchall()
