"""Keeping raw readings within the disk budget (``[ledger] readings_max_bytes``, ``readings_min_free_bytes``).

The runtime calls :meth:`ReadingsBudget.check` every :data:`CHECK_EVERY` seconds. The check is
cheap while the store fits: the stored bytes are read from the database once (the sum of the
kept blocks' compressed sizes), then followed in memory as blocks close
(:attr:`edge.ledger.store.Ledger.closed_bytes`), and the free space is one ``statvfs``. Only
when a bound is passed does the writer plan and record a prune of the oldest blocks
(:meth:`edge.ledger.writer.LedgerWriter.prune_to_budget`: the ``readings.prune`` entry, reason
``budget``, is durable before anything is deleted), after which the stored bytes are read again.
Minute summaries count too (:mod:`edge.ledger.summary_retention`: estimated from the hour rows,
read again every :data:`SUMMARIES_EVERY` seconds; they grow by ~90 bytes a point a minute): when
pruning every raw block is not enough, the oldest minute summaries go next. The
``storage:readings`` alarm (:mod:`edge.storage_alarm`) tells the operator; ledger entries and
hour summaries are never pruned.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from edge.config import LedgerConfig
from edge.ledger import LedgerWriter
from edge.ledger.summary_retention import MINUTE_ROW_BYTES, minute_rows
from edge.log import event
from edge.rules import Transition
from edge.storage_alarm import StorageAlarm

__all__ = ["CHECK_EVERY", "SUMMARIES_EVERY", "ReadingsBudget"]

#: Seconds between two checks (a block of 1000 readings at 400 readings/s closes every 2.5 s).
CHECK_EVERY = 2.0
#: Seconds between two estimates of the minute summaries' bytes (it blocks the event loop: ~12 ms
#: for 40 points over 90 days on the build machine, tests/bench/test_bench_summaries.py; in a
#: minute they grow by ~90 bytes a point).
SUMMARIES_EVERY = 60.0
#: The alarm clears when the store is back under this share of ``readings_max_bytes`` (and the
#: free space above ``1 / CLEAR_BELOW`` of the floor): a store held at its budget stays alarmed.
CLEAR_BELOW = 0.9


class ReadingsBudget:
    """The disk budget of one node's raw readings, and its alarm."""

    def __init__(self, config: LedgerConfig, ledger_path: Path) -> None:
        self.max_bytes = config.readings_max_bytes or None
        self.min_free = config.readings_min_free_bytes or None
        self.folder = ledger_path.parent
        self.alarm = StorageAlarm()
        self._base: int | None = None  # stored bytes read from the database ...
        self._base_closed = 0  # ... when the writer had closed this many bytes of blocks
        self._summaries: int | None = None  # minute summaries' estimated bytes ...
        self._summaries_at = 0.0  # ... as of this monotonic time

    @property
    def enabled(self) -> bool:
        """Whether any bound is configured."""
        return self.max_bytes is not None or self.min_free is not None

    async def stored_bytes(self, writer: LedgerWriter) -> int:
        """The kept blocks' compressed bytes (read once, then followed in memory)."""
        ledger = writer.ledger
        if self._base is None:
            await writer.sync()  # blocks in the commit journal count too
            (total,) = ledger.conn.execute(
                "SELECT coalesce(sum(bytes), 0) FROM reading_blocks WHERE pruned = 0"
            ).fetchone()
            self._base, self._base_closed = int(total), ledger.closed_bytes
        return self._base + ledger.closed_bytes - self._base_closed

    def summary_bytes(self, writer: LedgerWriter) -> int:
        """The minute summaries' estimated bytes (read again every :data:`SUMMARIES_EVERY` s)."""
        clock = time.monotonic()
        if self._summaries is None or clock - self._summaries_at >= SUMMARIES_EVERY:
            self._summaries = minute_rows(writer.ledger.conn) * MINUTE_ROW_BYTES
            self._summaries_at = clock
        return self._summaries

    async def check(self, writer: LedgerWriter, now: float) -> Transition | None:
        """Prune to the budget when it is passed; the alarm transition to record, if any.

        Raises:
            StorageError: the prune could not be recorded or done (the next check retries).
        """
        raw = await self.stored_bytes(writer)
        summaries = self.summary_bytes(writer)
        stored = raw + summaries
        free = shutil.disk_usage(self.folder).free if self.min_free is not None else None
        over = (self.max_bytes is not None and stored > self.max_bytes) or (
            self.min_free is not None and free is not None and free < self.min_free
        )
        figures = self._figures(stored, free)
        if not over:
            calm = (self.max_bytes is None or stored < CLEAR_BELOW * self.max_bytes) and (
                self.min_free is None or free is None or free * CLEAR_BELOW > self.min_free
            )
            if calm:
                self.alarm, change = self.alarm.within(figures, now)
                return change
            return None
        self._base = None  # whatever happens, read the stored bytes again next time
        self._summaries = None
        plan, cut = await writer.prune_to_budget(
            max_bytes=self.max_bytes,
            min_free_bytes=self.min_free,
            free_bytes=free,
            summary_bytes=summaries,
            now=now,
        )
        if plan is None:
            return None
        body = plan.body
        parts = []
        if plan.blocks:
            parts.append(
                f"{body['readings']} readings in {body['count']} blocks before {body['before']}"
            )
        if cut is not None:
            from edge.ledger.readings_codec import format_micros

            parts.append(f"minute summaries before {format_micros(cut.before * 1_000_000)}")
        if not parts:
            return None
        what = f"{' and '.join(parts)} ({figures})"
        event("ledger.readings_budget_pruned", logging.WARNING, pruned=what)
        self.alarm, change = self.alarm.pruned(what, now)
        return change

    def _figures(self, stored: int, free: int | None) -> str:
        parts = []
        if self.max_bytes is not None:
            parts.append(f"stored {stored} bytes of {self.max_bytes} allowed")
            if self._summaries:
                parts[-1] += f" (minute summaries ~{self._summaries})"
        if self.min_free is not None and free is not None:
            parts.append(f"{free} bytes free of a {self.min_free} floor")
        return ", ".join(parts)

    def acknowledge(self, actor: str, now: float) -> Transition | None:
        """An operator acknowledged the alarm; None when there was nothing to acknowledge."""
        self.alarm, change = self.alarm.acknowledge(actor, now)
        return change
