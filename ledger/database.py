"""Opening a ledger database: the connection settings every ledger file gets.

Kept apart from :mod:`edge.ledger.store` so that the commit process
(:mod:`edge.ledger.commit_process`) opens the file the same way without importing the rest of
the ledger.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from edge.errors import StorageError, map_exceptions
from edge.ledger.schema import migrate

__all__ = ["SQL_ERRORS", "connect"]

#: sqlite3 and OS errors become StorageError at the ledger's boundary.
SQL_ERRORS: dict[type[BaseException], type[StorageError]] = {
    sqlite3.Error: StorageError,
    OSError: StorageError,
}

#: Page size of a new ledger file (an existing file keeps its own): SQLite's default. Measured
#: by tests/bench/test_bench_ledger_wear.py (docs/design.md, SD-card wear): with the commit
#: journal (the default) small commits reach SQLite in bulk moves, and a move wrote as much at
#: 4 KiB as at 2 KiB pages (7,646 and 7,728 bytes per entry), while bulk appends cost 15-20 %
#: less CPU at 4 KiB. (Each batch an SQLite transaction of its own, journal_max = 0, 2 KiB
#: pages wear less: 56,500 bytes per entry against 83,100.)
_PAGE_SIZE = 4096
#: The WAL is copied into the database (a checkpoint) once it holds this much. A page rewritten
#: by many commits in between (an index's right edge) is copied once: the copy costs ~4,700
#: bytes per entry at the bottling line's pace (measured over 150 commits), less with more.
_WAL_CHECKPOINT_BYTES = 40 * 1024 * 1024
#: After a checkpoint the WAL is reused from its start, not truncated (reallocating its blocks
#: would wear the card again); only a WAL that overshot (a long reader held the checkpoint back)
#: is cut back to this size.
_WAL_SIZE_LIMIT = 64 * 1024 * 1024


def connect(path: str | os.PathLike[str], *, readonly: bool = False) -> sqlite3.Connection:
    """Open a ledger database (migrated to the newest schema unless ``readonly``).

    Raises:
        StorageError: the file cannot be opened, is not a database, or migration failed.
    """
    where = f"ledger {os.fspath(path)}"
    with map_exceptions(SQL_ERRORS, where):
        if readonly:
            if not Path(path).exists():
                raise StorageError(f"{where}: no such file")
            conn = sqlite3.connect(
                f"{Path(path).absolute().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA query_only=ON")
            conn.execute(
                "SELECT count(*) FROM sqlite_master"
            ).fetchone()  # fails early on a non-database
            return conn
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(os.fspath(path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute(f"PRAGMA page_size={_PAGE_SIZE}")  # see _PAGE_SIZE: wear against speed
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise StorageError(f"{where}: cannot switch to WAL journal (got {mode})")
        conn.execute("PRAGMA synchronous=FULL")
        # Checkpoint the WAL into the database every ~40 MB rather than SQLite's 1,000 pages: the
        # pages every commit touches (the right edge of each index, the table's last leaf) are
        # then copied into the database once per many batches instead of once per few.
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute(f"PRAGMA wal_autocheckpoint={_WAL_CHECKPOINT_BYTES // page_size}")
        conn.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
        conn.execute("PRAGMA cache_size=-32768")
        migrate(conn)
        return conn
