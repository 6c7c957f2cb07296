"""Sync in a running node: the restore check before the writer opens, then the ``sync`` task.

:func:`restore_own_feed` runs before the node's ledger writer exists. It listens to the peers'
retained heads; when they hold (or cosigned) more of our own feed than the database has — the
database was lost, or replaced by an older backup — it fetches our feed back from them and
verifies it like any other, and only then lets the node append. If that cannot be done within
the time given, the node refuses to start (:class:`~edge.errors.RollbackRefused`): appending
would write a second history over the first. A node that cannot reach its broker at start starts
anyway (a gateway must run standalone); the check then happens at the next start, and a running
node that sees a peer ahead of its own feed raises the ``own_behind`` alarm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from edge.config import NodeConfig
from edge.errors import RollbackRefused
from edge.ledger.keys import NodeKey, load_key
from edge.ledger.replica_types import OwnStatus
from edge.ledger.trust import trust_for
from edge.log import event
from edge.sync.service import AlarmHandler, SyncService

if TYPE_CHECKING:
    from edge.ledger.writer import LedgerWriter

__all__ = ["make_service", "restore_own_feed"]


def make_service(
    config: NodeConfig, *, on_alarm: AlarmHandler | None, writer: LedgerWriter
) -> SyncService:
    """The sync task of a running node: follows its ledger writer (which holds the lock)."""
    assert config.sync is not None
    key = load_key(config.key_path)
    trust = trust_for(config.data_dir, config.key_path, config.node_id)
    return SyncService(config.sync, config.node_id, key, config.ledger_path, trust,
                       on_alarm=on_alarm, writer=writer)  # fmt: skip


async def restore_own_feed(
    config: NodeConfig,
    *,
    connect: float = 5.0,
    listen: float = 1.0,
    within: float = 120.0,
    on_alarm: AlarmHandler | None = None,
) -> int:
    """Make sure our feed is at least as long as any peer holds or cosigned; fetch it if not.

    Args:
        config: the node config (with a ``[sync]`` table).
        connect: how long to wait for the broker before starting without the check.
        listen: how long at least to collect retained heads after subscribing (until a
            quarter of it passes with no new message, at most ten times it).
        within: how long a restore from peers may take before the node refuses to start.
        on_alarm: called with ``("restored", fields)`` when entries of our feed came back.

    Returns:
        Entries of our feed restored from peers (0: it was current).

    Raises:
        RollbackRefused: peers hold a different history of our feed (a fork), or a longer one
            that could not be fetched in time.
    """
    assert config.sync is not None
    if not config.key_path.exists():
        return 0  # a new key is a new feed: no peer can hold any of it
    key = load_key(config.key_path)
    trust = trust_for(config.data_dir, config.key_path, config.node_id)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    # What the last run made durable in the commit journal is part of our feed: moved (and a
    # killed run's unsigned tail signed) first, or peers that got it live would look ahead of
    # the database, and the node would "restore" what it holds.
    await asyncio.to_thread(_move_journal, config, key)
    svc = SyncService(config.sync, config.node_id, key, config.ledger_path, trust,
                      own_feed=True, take_lock=True)  # fmt: skip
    replica = await svc.open()
    before = replica.own_check().end
    task = asyncio.create_task(svc.run(), name="sync-restore")
    try:
        try:
            async with asyncio.timeout(connect):
                await svc.ready.wait()
        except TimeoutError:
            event("sync.restore_unchecked", logging.WARNING, node=config.node_id,
                  reason="broker unreachable at start")  # fmt: skip
            return 0
        # the retained heads arrive in a burst after subscribing: wait until it is over (no new
        # message for a while, every one handled), at least ``listen``, at most ten times that
        counters = svc.stats.counters
        start, seen = time.monotonic(), -1
        while time.monotonic() - start < 10 * listen:
            await asyncio.sleep(listen / 4)
            quiet = counters["messages_in"] == seen == counters["messages_routed"]
            if quiet and time.monotonic() - start >= listen:
                break
            seen = counters["messages_in"]
        deadline = time.monotonic() + within
        while True:
            check = replica.own_check()
            if check.status == OwnStatus.OK:
                break
            if check.status == OwnStatus.FORKED:
                raise RollbackRefused(f"our feed has another history on peers: {check.evidence}")
            if time.monotonic() > deadline:
                raise RollbackRefused(
                    f"our feed holds {check.end} entries, peers hold or cosigned "
                    f"{check.highest_end} ({check.evidence}); not restored within {within:g} s: "
                    "not appending over our own past"
                )
            await asyncio.sleep(0.1)
        restored = check.end - before
        if restored:
            event("sync.restored", logging.WARNING, node=config.node_id, entries=restored,
                  end=check.end)  # fmt: skip
            if on_alarm is not None:
                on_alarm("restored", {"feed": key.feed, "entries": restored, "end": check.end})
        return restored
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        svc.close()


def _move_journal(config: NodeConfig, key: NodeKey) -> None:
    """Move the commit journal beside the database into it (opening as its writer does)."""
    from edge.ledger.journal import journal_path
    from edge.ledger.store import Ledger

    journal = journal_path(config.ledger_path)
    if journal.exists() and journal.stat().st_size:
        Ledger.open(config.ledger_path, key).close()
