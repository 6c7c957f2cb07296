"""Verifying the readings store against the ``readings.digest`` entries that commit to it."""

from __future__ import annotations

import sqlite3

import orjson

from edge.ledger.readings_store import block_digest
from edge.ledger.verify_report import Kind, Problem, Report

__all__ = ["check_readings"]

_loads = orjson.loads


def check_readings(conn: sqlite3.Connection, report: Report) -> None:
    """Re-hash every stored readings block against its digest entry; add what differs to ``report``."""
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
