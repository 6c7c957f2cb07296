"""The writer's prunes of raw readings: by retention, on request, to fit the disk budget.

:class:`WriterPrunes` is a mixin of :class:`~edge.ledger.writer.LedgerWriter` (its attributes
are the writer's): each prune is recorded first (a durable ``readings.prune`` entry), then the
commit process deletes the blocks between commits.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from edge.errors import StorageError, map_exceptions
from edge.ledger.commit_client import CommitProcess
from edge.ledger.database import SQL_ERRORS
from edge.ledger.entry import Entry
from edge.ledger.readings_store import PrunePlan, plan_budget_prune, plan_prune
from edge.ledger.store import Ledger

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
        async def _commit_process(self) -> CommitProcess: ...
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
        then the commit process deletes them between commits, so it never races a batch.
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
        now: float | None = None,
    ) -> PrunePlan | None:
        """Prune the oldest raw blocks until the store fits its disk budget (reason ``budget``).

        Recorded first like every prune (:meth:`prune_readings`); arguments as
        :func:`edge.ledger.readings_store.plan_budget_prune`.

        Returns:
            What was pruned (its ``readings.prune`` body), None when the store fits.
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
            )
        if plan is not None:
            await self._prune(plan, now, "")
        return plan

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
