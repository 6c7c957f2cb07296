"""Recording sync events on the node's own feed: ``ledger.fork`` and ``ledger.rollback`` entries.

A rollback entry is followed by the ``readings.prune`` (reason ``lost``) that names the
readings blocks the restore could not bring back (:mod:`edge.ledger.readings_lost`).

The replica notes each fork it keeps and each rollback of our own feed it detects in
``sync_events``; the node owes its own feed an entry for each, appended through its writer once
it may append (after a rollback: once the feed is restored). The note is marked recorded only
when the entry is durable, so a crash in between records it again on the next run, never zero
times.

:func:`record_pending` is the one way these entries are written: the running node's sync
service (:mod:`edge.sync.service`) calls it with the node's writer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from edge.ledger.readings_lost import record_lost
from edge.ledger.replica_witness import FORK_ENTRY

if TYPE_CHECKING:
    from edge.ledger.replica import Replica
    from edge.ledger.writer import LedgerWriter

__all__ = ["record_pending"]


async def record_pending(replica: Replica, writer: LedgerWriter, *, now: float) -> int:
    """Append every sync event not yet on our feed; returns how many were recorded.

    Call it after :meth:`~edge.ledger.replica.Replica.own_check` says the feed may be appended
    to (``RollbackRefused`` from the writer otherwise), e.g. whenever ``accept`` reported a fork.

    Raises:
        LedgerClosed: the writer closed first (the rest is recorded on the next run).
    """
    records = await asyncio.to_thread(replica.pending_records)
    for record in records:
        fork = record.type == FORK_ENTRY
        entry = await writer.append(
            "ledger.fork" if fork else "ledger.rollback", record.body, ts=now
        )
        writer.commit_now()  # an alarm-worthy event: not left waiting for the flush timer
        await writer.durable(entry.seq)
        if not fork:  # a restore: the readings that did not come back with it, said so
            plan = await record_lost(writer, entry, now=now)
            if plan is not None:
                from edge.log import event

                event("ledger.readings_lost", logging.WARNING, blocks=len(plan.blocks),
                      readings=plan.body["readings"], rollback=entry.id[:16])  # fmt: skip
        await asyncio.to_thread(replica.mark_recorded, record.key, entry.id)
    return len(records)
