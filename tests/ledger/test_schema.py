"""Versioned migrations: recorded with the migration in one transaction; additive; idempotent."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge.errors import StorageError
from edge.ledger import schema
from edge.ledger.store import connect


def test_new_database_gets_every_migration_recorded(tmp_path: Path) -> None:
    conn = connect(tmp_path / "l.db")
    rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    assert [v for v, _ in rows] == [m.version for m in schema.MIGRATIONS]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {
        "entries",
        "entry_lots",
        "checkpoints",
        "readings",
        "reading_blocks",
        "schema_migrations",
    } <= tables
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"entries_type", "entries_ts", "entries_feed_ts", "entry_lots_lot"} <= indexes
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    conn.close()


def test_contract_columns(tmp_path: Path) -> None:
    conn = connect(tmp_path / "l.db")
    cols = [(r[1], r[2], r[3], r[5]) for r in conn.execute("PRAGMA table_info(entries)")]
    assert cols == [
        ("feed", "TEXT", 1, 1),
        ("seq", "INTEGER", 1, 2),
        ("id", "TEXT", 1, 0),
        ("prev", "TEXT", 0, 0),
        ("ts", "TEXT", 1, 0),
        ("type", "TEXT", 1, 0),
        ("actor", "TEXT", 1, 0),
        ("raw", "BLOB", 1, 0),
    ]
    with pytest.raises(sqlite3.IntegrityError):
        conn.executemany(
            "INSERT INTO entries VALUES (?,?,?,?,?,?,?,?)",
            [
                ("f", 0, "a" * 64, None, "t", "x", "", b""),
                ("f", 0, "b" * 64, None, "t", "x", "", b""),
            ],
        )
    conn.close()


def test_version_2_database_loses_the_id_index_and_keeps_its_entries(tmp_path: Path) -> None:
    """Migration 3 drops the random-key id index of a database made by migrations 1-2."""
    path = tmp_path / "l.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA journal_mode=WAL")
    old.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied TEXT NOT NULL)"
    )
    for migration in schema.MIGRATIONS[:2]:
        for statement in schema._split(migration.sql):
            if statement.strip():
                old.execute(statement)
        old.execute(
            "INSERT INTO schema_migrations VALUES (?, ?, 'then')",
            (migration.version, migration.name),
        )
    old.execute("INSERT INTO entries VALUES ('f', 0, ?, NULL, 't', 'x', '', x'7b7d')", ("a" * 64,))
    assert old.execute("SELECT 1 FROM sqlite_master WHERE name = 'entries_id'").fetchone()
    old.close()
    conn = connect(path)
    assert schema.current_version(conn) == schema.MIGRATIONS[-1].version
    assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'entries_id'").fetchone()
    assert conn.execute("SELECT id, raw FROM entries").fetchall() == [("a" * 64, b"{}")]
    conn.close()


def test_migrate_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    conn = connect(path)
    conn.execute("INSERT INTO entry_lots VALUES ('f', 0, 'LOT')")
    conn.close()
    conn = connect(path)
    assert schema.migrate(conn) == schema.MIGRATIONS[-1].version
    assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(
        schema.MIGRATIONS
    )
    assert conn.execute("SELECT lot FROM entry_lots").fetchall() == [("LOT",)]
    conn.close()


def test_failed_migration_leaves_no_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = (
        *schema.MIGRATIONS,
        schema.Migration(99, "broken", "CREATE TABLE half (x);\nNOT SQL;"),
    )
    monkeypatch.setattr(schema, "MIGRATIONS", broken)
    conn = sqlite3.connect(tmp_path / "l.db", isolation_level=None)
    with pytest.raises(StorageError, match=r"schema migration 99 .broken. failed"):
        schema.migrate(conn)
    assert schema.current_version(conn) == broken[-2].version
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "half" not in names
    assert "entries" in names
    conn.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "l.db", isolation_level=None)
    schema.migrate(conn)
    conn.execute("INSERT INTO schema_migrations VALUES (1000, 'future', 'now')")
    with pytest.raises(StorageError, match="newer than this edge-qc"):
        schema.migrate(conn)
    conn.close()


def test_a_version_that_lands_after_a_higher_one_is_still_applied(tmp_path: Path) -> None:
    # a file migrated by a build that had 10 (sync) but not yet 9 (the outbox's cursors)
    conn = sqlite3.connect(tmp_path / "l.db", isolation_level=None)
    every = schema.MIGRATIONS
    schema.MIGRATIONS = tuple(m for m in every if m.version != 9)
    try:
        schema.migrate(conn)
    finally:
        schema.MIGRATIONS = every
    assert "outbox_cursors" not in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert schema.migrate(conn) == schema.MIGRATIONS[-1].version
    assert "outbox_cursors" in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [m.version for m in schema.MIGRATIONS]
