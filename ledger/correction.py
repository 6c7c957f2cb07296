"""Corrections: how a wrong entry is put right without editing anything.

A ``correction`` entry names the entry it corrects (``body.corrects`` and ``refs``), carries its
lots (so the lot's trace and exports show it beside the original), and says who (``actor``) and
why (``body.reason``). The original stays as it was: ``verify`` still checks it, and ``trace``
and the exports mark it as corrected.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from edge.errors import LedgerError
from edge.ledger.entry import CHECKPOINT
from edge.ledger.query import StoredEntry, find_entry

__all__ = ["Correction", "plan_correction"]


@dataclass(frozen=True, slots=True)
class Correction:
    """What to append: ``Ledger.append("correction", c.body, lots=c.lots, refs=c.refs, ...)``."""

    target: StoredEntry
    body: dict[str, Any]
    lots: tuple[str, ...]
    refs: tuple[str, ...]


def plan_correction(conn: sqlite3.Connection, ref: str, reason: str) -> Correction:
    """The correction of the entry ``ref`` names (its id or a prefix of 8+ hex digits).

    Raises:
        UnknownEntry: ``ref`` names no entry, or several.
        LedgerError: the reason is empty, or the entry is a checkpoint (a signature over the
            feed, not a quality record).
    """
    if not reason.strip():
        raise LedgerError("a correction needs a reason (it is recorded on the ledger)")
    target = find_entry(conn, ref)
    if target.type == CHECKPOINT:
        raise LedgerError(f"entry {target.id[:16]} is a checkpoint: there is nothing to correct")
    return Correction(
        target=target,
        body={"reason": reason, "corrects": target.id},
        lots=target.lots,
        refs=(target.id,),
    )
