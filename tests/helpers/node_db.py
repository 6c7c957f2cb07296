"""Reading a running node's ledger file the way ``edge ledger`` readers do: sync first.

With the commit journal (the default) a node's small commits wait in ``ledger.db.eqj``,
unsigned, until a checkpoint signs them (within ``journal_age``, 120 s): the database alone lags.
``edge ledger query/trace/verify`` ask the node to sign and move them first (the control
socket's ``sync``); tests that read the file directly do the same through this helper.
"""

from __future__ import annotations

from pathlib import Path

from edge.cli.ledger_query import sync_node

__all__ = ["sync_db"]


def sync_db(db: Path) -> bool:
    """Ask the node running on ``db`` (its socket beside it) to move its journal; True if it did."""
    return sync_node(db, db.parent / "control.sock")
