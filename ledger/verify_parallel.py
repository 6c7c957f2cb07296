"""Verifying a big feed in parallel: chunks of :data:`CHUNK` entries, here and in worker processes.

Each chunk is verified on its own (:class:`~edge.ledger.verify_chain.FeedVerifier` in deferred
mode); the parent merges them in seq order and checks each checkpoint's Merkle root against the
tree of the chunks before it.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from edge.ledger.merkle import EMPTY_ROOT, Frontier, node_hash
from edge.ledger.verify_chain import Chunk, FeedVerifier
from edge.ledger.verify_checkpoints import Recorded
from edge.ledger.verify_report import Kind, Problem

__all__ = ["CHUNK", "NO_END", "recorded_rows", "stored_lots", "verify_parallel"]

#: Entries per chunk handed to a worker: a power of two, so each complete chunk is a perfect
#: Merkle subtree and the trees of the chunks combine like leaves. Small enough that the last
#: chunks leave little idle time at the end (measured here: 8,192 halved that tail against
#: 16,384), big enough that the per-chunk queries and results cost nothing.
CHUNK = 1 << 13

_worker_conns: dict[str, sqlite3.Connection] = {}


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
        feed,
        start=start,
        prev_id=prev[0] if prev else None,
        deferred=True,
        merkle=merkle,
        table=recorded_rows(conn, feed, start, stop),
    )
    cursor = conn.execute(
        "SELECT seq, id, prev, ts, type, actor, raw FROM entries WHERE feed = ? AND seq >= ? AND seq < ? ORDER BY seq",
        (feed, start, stop),
    )
    while rows := cursor.fetchmany(4096):
        verifier.add_many(rows)
    return verifier.finish_chunk(stored_lots(conn, verifier, start, stop))


NO_END = 2**63 - 1  # the largest SQLite integer: "to the end of the feed"


def recorded_rows(
    conn: sqlite3.Connection, feed: str, start: int = 0, stop: int = NO_END
) -> list[Recorded]:
    """The feed's ``checkpoints`` rows of size start..stop-1, in ascending size."""
    return conn.execute(
        "SELECT size, head, root, sig FROM checkpoints WHERE feed = ? AND size >= ? AND size < ? "
        "ORDER BY size",
        (feed, start, stop),
    ).fetchall()


def stored_lots(
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


def verify_parallel(
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
