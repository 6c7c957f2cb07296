"""Readings lost with a database that was restored from peers, recorded as a prune (reason ``lost``).

Sync replicates entries, not raw readings (docs/design.md, "Sync"). A node whose database was
lost or replaced by an older backup gets its own feed back from its peers
(:func:`edge.sync.restore_own_feed`), digests included, but the readings those digests commit to
are gone with the old file. The node says so on its own feed rather than leaving ``verify`` to
find *missing readings*: right after the ``ledger.rollback`` entry that records the restore, it
appends a ``readings.prune`` entry with reason ``lost`` naming the blocks and the rollback entry.

``verify`` accepts a ``lost`` prune of a block only when the rollback entry it names is of the
same feed, comes before the prune, and the block's digest lies in what the restore brought back:
at or past the rollback's ``held`` (the entries the node still held) and before the rollback
entry. So a ``lost`` prune cannot excuse readings deleted on a node that was never restored
without a ``ledger.rollback`` on its feed for every holder to see.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import orjson

from edge.errors import map_exceptions
from edge.ledger.readings_codec import format_micros, parse_micros
from edge.ledger.readings_store import PRUNE, PrunePlan, block_ranges, pruned_blocks

if TYPE_CHECKING:
    from edge.ledger.entry import Entry
    from edge.ledger.writer import LedgerWriter

__all__ = ["LOST", "LOST_COMMENT", "ROLLBACK", "plan_lost", "record_lost"]

#: The prune reason for readings lost with a database restored from peers.
LOST = "lost"
#: What a ``lost`` prune says happened.
LOST_COMMENT = "database restored from peers; raw readings are not replicated"
#: The entry type recording that our feed was found behind its peers (and restored).
ROLLBACK = "ledger.rollback"


def plan_lost(
    conn: sqlite3.Connection, feed: str, rollback_seq: int, rollback_id: str, held: int
) -> PrunePlan | None:
    """The blocks of ``feed`` restored from peers without their readings; None when there are none.

    Args:
        conn: the ledger database (read only here).
        feed: our own feed.
        rollback_seq: the seq of the ``ledger.rollback`` entry recording the restore.
        rollback_id: its id (the prune names it).
        held: the entries of our feed the node held before the restore (the rollback's ``held``).
    """
    digests: dict[int, dict[str, Any]] = {}
    already: set[int] = set()
    for seq, type_, raw in conn.execute(
        "SELECT seq, type, raw FROM entries WHERE feed = ? AND type IN (?, ?)",
        (feed, "readings.digest", PRUNE),
    ):
        body = orjson.loads(raw).get("body")
        if not isinstance(body, dict):
            continue
        if type_ == PRUNE:  # any prune of the feed, this one recorded already included
            already.update(pruned_blocks(body))
        elif held <= seq < rollback_seq and type(body.get("block")) is int:
            digests[body["block"]] = body  # a digest the restore brought back
    rows = {int(b) for (b,) in conn.execute("SELECT block FROM reading_blocks")}
    lost = sorted(digests.keys() - rows - already)
    if not lost:
        return None
    last = max(parse_micros(str(digests[b]["last_ts"])) for b in lost)
    prune: dict[str, Any] = {
        "blocks": block_ranges(lost),
        "count": len(lost),
        "readings": sum(int(digests[b].get("count", 0)) for b in lost),
        # every lost block ended before it: one microsecond after the newest one's last reading
        "before": format_micros(last + 1),
        "reason": LOST,
        "rollback": rollback_id,
        "comment": LOST_COMMENT,
    }
    return PrunePlan(tuple(lost), prune)


async def record_lost(writer: LedgerWriter, rollback: Entry, *, now: float) -> PrunePlan | None:
    """After the ``ledger.rollback`` entry ``rollback``: record the readings the restore lost.

    Appends the ``readings.prune`` entry (reason ``lost``) and waits until it is durable; nothing
    is deleted (the readings are not here). Returns the plan, None when no block was lost.

    Raises:
        LedgerClosed: the writer closed first.
    """
    from edge.ledger.database import SQL_ERRORS

    await writer.sync()  # the restored entries and the rollback entry are in the database
    held = rollback.body.get("held")
    with map_exceptions(SQL_ERRORS, f"ledger {writer.ledger.path}: readings lost"):
        plan = plan_lost(
            writer.ledger.conn,
            rollback.feed,
            rollback.seq,
            rollback.id,
            held if type(held) is int else rollback.seq,
        )
    if plan is None:
        return None
    entry = await writer.append(PRUNE, plan.body, ts=now)
    writer.commit_now()
    await writer.durable(entry.seq)
    return plan
