"""Verifying the readings store against the chain: every digest's block is there, or its prune is.

The chain commits to each block of raw readings by a ``readings.digest`` entry and records every
prune by a ``readings.prune`` entry (:mod:`edge.ledger.readings_store`). The tables holding the
readings (``reading_data``, ``reading_stage``, legacy ``readings`` rows, ``reading_blocks``) are not hashed, so each digest of the file's own feed
must find, either:

* its readings, decoded (:mod:`edge.ledger.readings_read`) and hashing to the digest, with a ``reading_blocks`` row that links to the digest
  entry and carries its hash and is not marked pruned (else *changed readings* when the readings
  differ, *readings block row mismatch* when only the row does); or
* no readings, and a ``readings.prune`` entry after the digest that names the block and was
  entitled to prune it: for reason ``retention``, the block's last reading (as the signed digest
  says) at least ``retention`` seconds before the prune; for an operator's request, an actor and a
  cutoff not in the future; for the disk budget (reason ``budget``), the limit it enforced
  and a cutoff not in the future; for readings lost with a database restored from peers
  (reason ``lost``, :mod:`edge.ledger.readings_lost`), the ``ledger.rollback`` entry of the same
  feed before the prune that records the restore, with the block's digest among the entries the
  restore brought back (else *missing readings*, saying which rule was broken).

Readings or block rows that no digest commits to are *readings not on the chain*, except the
readings of the one block being filled (after the last block and digest, with no block row:
:mod:`edge.ledger.open_block`), which its digest will commit to when it closes. Only the owner
feed's digests are checked (:mod:`edge.ledger.owner`): peers' feeds arrive without their raw
readings. A file that does not say whose it is gets every feed with digests checked.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from edge.errors import NotCanonical, ReadingsDamaged
from edge.ledger.entry import parse_ts
from edge.ledger.readings_lost import LOST, ROLLBACK
from edge.ledger.readings_read import stored_blocks
from edge.ledger.readings_store import (
    BUDGET,
    OPERATOR,
    PRUNE,
    RETENTION,
    items_digest,
    pruned_blocks,
)
from edge.ledger.verify_report import FeedReport, Kind, Problem, Report

__all__ = ["check_readings"]

_loads = orjson.loads
#: Slack when comparing a prune's time with a block's last reading plus the retention: the node
#: computes both from one clock reading, rounded to microseconds.
_SLACK = 0.001
#: The digest given to a stored block whose rows cannot be hashed: no digest entry holds it.
_UNHASHABLE = "unhashable"


@dataclass(frozen=True, slots=True)
class _Digest:
    feed: str
    seq: int
    id: str
    sha256: Any
    last_ts: Any


@dataclass(frozen=True, slots=True)
class _Prune:
    feed: str
    seq: int
    ts: str
    actor: str
    reason: Any
    retention: Any
    before: Any
    limits: tuple[Any, Any]  #: a budget prune's max_bytes and min_free_bytes
    rollback: Any  #: a ``lost`` prune's ``ledger.rollback`` entry id


@dataclass(frozen=True, slots=True)
class _Rollback:
    feed: str
    seq: int
    held: Any  #: entries of the feed the node held when it found peers ahead


def check_readings(conn: sqlite3.Connection, report: Report, owner: str | None) -> None:
    """Check the readings store against the digest and prune entries; add problems to ``report``.

    Args:
        conn: the ledger database.
        report: the report of the chain check (problems are added to the owner feed's).
        owner: the feed that owns the file (None: unknown, check every feed with digests).
    """
    by_feed = {f.feed: f for f in report.feeds}
    digests: dict[int, _Digest] = {}
    prunes: dict[int, list[_Prune]] = {}
    digest_feed: dict[int, str] = {}
    sql = "SELECT feed, seq, id, ts, actor, raw FROM entries WHERE type IN (?, ?, ?)"
    args: tuple[Any, ...] = ("readings.digest", PRUNE, ROLLBACK)
    rollbacks: dict[str, _Rollback] = {}
    if owner is not None:
        # ``+feed``: keep SQLite on the type index (digests and prunes are few); on the feed
        # index it would read every entry of the feed.
        sql += " AND +feed = ?"
        args += (owner,)
    for feed, seq, entry_id, ts, actor, raw in conn.execute(sql, args):
        try:
            data = _loads(raw)
            body = data["body"]
            type_ = data["type"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue  # a damaged entry: the chain check named it
        if not isinstance(body, dict):
            continue
        if type_ == "readings.digest" and type(body.get("block")) is int:
            digests[body["block"]] = _Digest(
                feed, seq, entry_id, body.get("sha256"), body.get("last_ts")
            )
            digest_feed[body["block"]] = feed
        elif type_ == PRUNE:
            prune = _Prune(
                feed,
                seq,
                ts,
                actor,
                body.get("reason"),
                body.get("retention"),
                body.get("before"),
                (body.get("max_bytes"), body.get("min_free_bytes")),
                body.get("rollback"),
            )
            for block in pruned_blocks(body):
                prunes.setdefault(block, []).append(prune)
        elif type_ == ROLLBACK:
            rollbacks[entry_id] = _Rollback(feed, seq, body.get("held"))
    rows = {
        block: (sha, entry, pruned)
        for block, sha, entry, pruned in conn.execute(
            "SELECT block, sha256, entry, pruned FROM reading_blocks"
        )
    }
    fallback = owner if owner is not None else next(iter(sorted(set(digest_feed.values()))), "")

    def problem(block: int, kind: Kind, detail: str) -> None:
        feed = digest_feed.get(block, fallback)
        target = by_feed.get(feed)
        if target is None:
            target = by_feed[feed] = FeedReport(feed)
            report.feeds.append(target)
        digest = digests.get(block)
        target.problems.append(Problem(feed, digest.seq if digest else -1, kind, detail))

    # The block a writer is filling (or a killed run left open: its next start closes it) has
    # readings but no reading_blocks row and no digest yet; it is the block after the last one
    # of either. Its readings are not on the chain yet, which is what this block is, not damage.
    open_block = max(max(rows, default=0), max(digests, default=0)) + 1
    seen: set[int] = set()
    for block, present in _stored_blocks(conn):
        seen.add(block)
        digest = digests.get(block)
        if digest is None and block == open_block and block not in rows:
            continue
        if digest is None:
            problem(
                block,
                Kind.UNCOVERED_READINGS,
                f"readings block {block} is stored but no digest entry commits to it",
            )
            continue
        if present != digest.sha256:
            problem(
                block,
                Kind.CHANGED_READINGS,
                f"readings block {block} is damaged: its stored bytes do not decode"
                if present == _UNHASHABLE
                else f"readings block {block} no longer hashes to its digest",
            )
        _check_row(block, digest, rows.get(block), problem)
    for block, digest in sorted(digests.items()):
        if block in seen:
            continue
        row = rows.get(block)
        why = _prune_problem(block, digest, prunes.get(block, []), rollbacks)
        if why is not None:
            problem(
                block,
                Kind.MISSING_READINGS,
                f"readings block {block} is gone ({_state(row)}); {why}",
            )
        elif row is not None and row[1] not in (None, digest.id):
            problem(
                block,
                Kind.BLOCK_ROW,
                f"reading_blocks row of block {block} links to entry {str(row[1])[:16]}, "
                f"not to its digest entry {digest.id[:16]}",
            )
    for block in sorted(rows.keys() - digests.keys() - seen):
        problem(
            block,
            Kind.UNCOVERED_READINGS,
            f"reading_blocks row of block {block} has no digest entry on the chain",
        )
    for feed_report in report.feeds:
        feed_report.problems.sort(key=lambda p: p.seq)
        feed_report.pruned = _pruned_counts(digests, prunes, feed_report.feed, digest_feed)


def _stored_blocks(conn: sqlite3.Connection) -> Iterator[tuple[int, str]]:
    """(block, digest of its stored readings) for every block with readings, in block order.

    Read through :mod:`edge.ledger.readings_read`, as every reader does. A block that does not
    decode (a changed byte in its compressed data, a stored row that is not JSON) gets a digest
    no entry can hold, so it is named *changed readings* like any other altered block instead
    of stopping the whole check.
    """
    for block, items in stored_blocks(conn):
        if isinstance(items, ReadingsDamaged):
            yield block, _UNHASHABLE
            continue
        try:
            yield block, items_digest(items)
        except (ValueError, TypeError, NotCanonical):
            yield block, _UNHASHABLE


def _check_row(block: int, digest: _Digest, row: tuple[Any, Any, Any] | None, problem: Any) -> None:
    """A block whose readings are present: its ``reading_blocks`` row must say so truly."""
    if row is None:
        problem(
            block,
            Kind.BLOCK_ROW,
            f"readings block {block} is stored but its reading_blocks row is gone",
        )
        return
    sha, entry, pruned = row
    if entry != digest.id:
        link = "NULL" if entry is None else f"entry {str(entry)[:16]}"
        problem(
            block,
            Kind.BLOCK_ROW,
            f"reading_blocks row of block {block} links to {link}, not to its digest entry {digest.id[:16]}",
        )
    if sha != digest.sha256:
        problem(
            block,
            Kind.BLOCK_ROW,
            f"reading_blocks row of block {block} holds another sha256 than its digest",
        )
    if pruned:
        problem(
            block,
            Kind.BLOCK_ROW,
            f"readings block {block} is marked pruned but its readings are stored",
        )


def _state(row: tuple[Any, Any, Any] | None) -> str:
    if row is None:
        return "its reading_blocks row is deleted too"
    if row[1] is None:
        return "its reading_blocks row's digest link is NULL"
    return "marked pruned" if row[2] else "its reading_blocks row is there, not marked pruned"


def _prune_problem(
    block: int, digest: _Digest, prunes: list[_Prune], rollbacks: dict[str, _Rollback]
) -> str | None:
    """None when one of ``prunes`` was entitled to prune the block, else why not."""
    if not prunes:
        return "no readings.prune entry records it"
    reasons = []
    for prune in prunes:
        why = _entitled(digest, prune, rollbacks)
        if why is None:
            return None
        reasons.append(f"readings.prune entry {prune.seq} {why}")
    return "; ".join(reasons)


def _entitled(digest: _Digest, prune: _Prune, rollbacks: dict[str, _Rollback]) -> str | None:
    """None when ``prune`` may prune the digest's block, else what is wrong with it."""
    if prune.feed != digest.feed:
        return "is another feed's"
    if prune.seq < digest.seq:
        return "comes before the block's digest"
    try:
        last = parse_ts(str(digest.last_ts))
        before = parse_ts(str(prune.before))
        at = parse_ts(prune.ts)
    except ValueError:
        return "has a malformed time"
    if not last < before <= at + _SLACK:
        return f"has a cutoff {prune.before} that does not cover the block (last reading {digest.last_ts})"
    if prune.reason == RETENTION:
        try:
            retention = float(Decimal(str(prune.retention)))
        except (InvalidOperation, ValueError):
            return "has no valid retention"
        if last + retention > at + _SLACK:
            return (
                f"pruned it at {prune.ts}, before its retention of {prune.retention} s ran out "
                f"(last reading {digest.last_ts})"
            )
        return None
    if prune.reason == OPERATOR:
        return None if prune.actor else "is an operator's request that names no actor"
    if prune.reason == BUDGET:
        # the sizes it acted on are gone with the blocks: it must name the limit it enforced
        if any(type(limit) is int and limit >= 0 for limit in prune.limits):
            return None
        return "is a disk budget prune that names no limit (max_bytes or min_free_bytes)"
    if prune.reason == LOST:
        return _lost_problem(digest, prune, rollbacks)
    return f"gives an unknown reason {prune.reason!r}"


def _lost_problem(digest: _Digest, prune: _Prune, rollbacks: dict[str, _Rollback]) -> str | None:
    """None when the ``lost`` prune names the restore that brought the block's digest back."""
    rollback = rollbacks.get(prune.rollback) if isinstance(prune.rollback, str) else None
    if rollback is None or rollback.feed != prune.feed or rollback.seq > prune.seq:
        return (
            "says the readings were lost with a restored database but names no ledger.rollback "
            "entry of this feed before it"
        )
    held = rollback.held if type(rollback.held) is int else rollback.seq
    if not held <= digest.seq < rollback.seq:
        return (
            f"says the readings were lost with a restored database, but the block's digest "
            f"(entry {digest.seq}) is not among the entries restored from peers "
            f"({held} to {rollback.seq - 1})"
        )
    return None


def _pruned_counts(
    digests: dict[int, _Digest],
    prunes: dict[int, list[_Prune]],
    feed: str,
    digest_feed: dict[int, str],
) -> dict[str, int]:
    """Blocks of ``feed`` recorded as pruned, by reason (``operator:<actor>`` for requests)."""
    counts: dict[str, int] = {}
    for block in digests:
        if digest_feed.get(block) != feed or block not in prunes:
            continue
        prune = prunes[block][0]
        reason = str(prune.reason) if prune.reason != OPERATOR else f"operator:{prune.actor}"
        counts[reason] = counts.get(reason, 0) + 1
    return counts
