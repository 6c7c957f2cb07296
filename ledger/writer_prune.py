"""The writer's prunes of raw readings: by retention, on request, to fit the disk budget.

:class:`WriterPrunes` is a mixin of :class:`~edge.ledger.writer.LedgerWriter` (its attributes
are the writer's): each prune is recorded first (a durable ``readings.prune`` entry), then the
commit worker deletes the blocks between commits. Old minute summaries are deleted the same way
(by their retention, or after the raw blocks to fit the budget), without an entry
(:mod:`edge.ledger.summary_retention` says why).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from edge.errors import StorageError, map_exceptions
from edge.ledger.database import SQL_ERRORS
from edge.ledger.entry import Entry
from edge.ledger.readings_store import PrunePlan, plan_budget_prune, plan_prune
from edge.ledger.store import Ledger
from edge.ledger.summary_retention import (
    MINUTE_ROW_BYTES,
    SummaryCut,
    minute_cut_for,
    prune_minute_summaries,
)

if TYPE_CHECKING:
    from edge.ledger.writer_commits import CommitWorker

__all__ = ["WriterPrunes"]


class WriterPrunes:
    """Prune raw readings through a :class:`LedgerWriter` (digests stay on the ledger)."""

    # the writer's (edge.ledger.writer.LedgerWriter.__init__)
    ledger: Ledger
    _running: bool

    if TYPE_CHECKING:

        def _check_open(self) -> None: ...
        async def sync(self) -> None:
            """:meth:`LedgerWriter.sync`."""

        async def durable(self, seq: int) -> None:
            """:meth:`LedgerWriter.durable`."""

        def _drain_sync(self) -> None: ...
        async def _commit_process(self) -> CommitWorker: ...
        async def append(
            self,
            type: str,
            body: Mapping[str, Any],
            *,
            ts: float,
            lots: Sequence[str] = (),
            actor: str = "",
            refs: Sequence[str] = (),
        ) -> Entry:
            """:meth:`LedgerWriter.append`."""

    async def prune_readings(
        self,
        before: float,
        *,
        retention: float | None = None,
        actor: str = "",
        comment: str = "",
        now: float | None = None,
    ) -> int:
        """Prune raw readings of blocks that ended before ``before`` (epoch s); digests stay.

        Recorded first: the ``readings.prune`` entry naming the blocks and why is made durable,
        then the commit worker deletes them between commits, so it never races a batch.
        Arguments as :meth:`Ledger.prune_readings`.

        Returns:
            The number of readings deleted.
        """
        self._check_open()
        now = time.time() if now is None else now
        if retention is None and not actor:
            retention = now - before
        await self.sync()  # blocks closed by journaled batches are candidates too
        with map_exceptions(SQL_ERRORS, f"ledger {self.ledger.path}: prune readings"):
            plan = plan_prune(self.ledger.conn, before, retention=retention, comment=comment)
        if plan is None:
            return 0
        return await self._prune(plan, now, actor)

    async def prune_to_budget(
        self,
        *,
        max_bytes: int | None,
        min_free_bytes: int | None,
        free_bytes: int | None,
        summary_bytes: int = 0,
        now: float | None = None,
    ) -> tuple[PrunePlan | None, SummaryCut | None]:
        """Prune the oldest raw blocks to fit the disk budget, then the oldest minute summaries.

        Minute summaries go only when pruning every raw block is not enough. Blocks are
        recorded first like every prune (:meth:`prune_readings`); arguments as
        :func:`edge.ledger.readings_store.plan_budget_prune`.

        Returns:
            What was pruned: the plan (its ``readings.prune`` body; empty when no block was) and
            the minute summaries' cut; (None, None) when the store fits.
        """
        self._check_open()
        now = time.time() if now is None else now
        await self.sync()  # blocks closed by journaled batches count too
        with map_exceptions(SQL_ERRORS, f"ledger {self.ledger.path}: prune readings"):
            plan = plan_budget_prune(
                self.ledger.conn,
                max_bytes=max_bytes,
                min_free_bytes=min_free_bytes,
                free_bytes=free_bytes,
                summary_bytes=summary_bytes,
            )
        if plan is None:
            return None, None
        if plan.blocks:
            await self._prune(plan, now, "")
        cut = None
        if plan.summary_bytes > 0:
            rows = -(-plan.summary_bytes // MINUTE_ROW_BYTES)
            with map_exceptions(SQL_ERRORS, f"ledger {self.ledger.path}: prune summaries"):
                cut = minute_cut_for(self.ledger.conn, rows)
            if cut is not None:
                await self._cut_summaries(cut)
        return plan, cut

    async def prune_minute_summaries(self, before: float) -> int:
        """Delete the minute summaries of minutes that started before ``before`` (epoch s).

        Hour summaries stay. Not recorded on the ledger (:mod:`edge.ledger.summary_retention`).

        Returns:
            The minute-summary rows deleted.
        """
        self._check_open()
        await self.sync()  # minutes of blocks in the journal are written before they go
        return await self._cut_summaries(SummaryCut(int(before)))

    async def _cut_summaries(self, cut: SummaryCut) -> int:
        if not self._running:
            self._drain_sync()
            from edge.ledger.commit import transaction

            with (
                map_exceptions(SQL_ERRORS, f"ledger {self.ledger.path}: prune summaries"),
                transaction(self.ledger.conn),
            ):
                return prune_minute_summaries(self.ledger.conn, cut.before)
        commits = await self._commit_process()
        # the commit worker's prune request takes a cut as it takes blocks (commit.prune_readings)
        deleted: int = await commits.request("prune", cut)
        return deleted

    async def _prune(self, plan: PrunePlan, now: float, actor: str) -> int:
        """Record ``plan`` (durable), then delete its blocks; the readings deleted."""
        entry = await self.append("readings.prune", plan.body, ts=now, actor=actor)
        if not self._running:
            self._drain_sync()
            if self.ledger.size <= entry.seq:
                raise StorageError(f"ledger {self.ledger.path}: the prune was not recorded")
            return self.ledger.delete_blocks(plan.blocks)
        await self.durable(entry.seq)
        commits = await self._commit_process()
        deleted: int = await commits.request("prune", list(plan.blocks))
        return deleted
