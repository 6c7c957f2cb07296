"""The ledger's SQLite schema and its versioned migrations.

The contract other modules (query, trace, export, the runtime, sync) code against::

    entries(feed TEXT NOT NULL,   -- hex of the writer's Ed25519 public key (64 chars)
            seq INTEGER NOT NULL, -- 0-based position in the feed
            id TEXT NOT NULL,     -- hex SHA-256 of raw (not indexed: see below)
            prev TEXT,            -- id of seq-1, NULL at seq 0
            ts TEXT NOT NULL,     -- RFC 3339 UTC, fixed width "2026-11-23T10:31:40.123456Z"
            type TEXT NOT NULL, actor TEXT NOT NULL,
            raw BLOB NOT NULL,    -- canonical JSON bytes: the ONLY source of truth
            PRIMARY KEY (feed, seq))
    entry_lots(feed, seq, lot)    -- one row per lot named by an entry; indexed on lot
    checkpoints(feed, size, head, root, sig)  -- every signed checkpoint ever seen (rollback guard)
    readings(block, point, ts, value, quality, unit)  -- raw readings as rows (files before 8)
    reading_blocks(block, first_ts, last_ts, count, sha256, entry, pruned, bytes)  -- one per block
    reading_data(block, data)     -- a closed block's readings, compressed (readings_codec)
    reading_stage(block, start, data)  -- the open block's readings, staged with each batch
    reading_summaries(point, seconds, start, count, vmin, vmax, mean, m2)  -- per minute / hour
    frontiers(feed, size, stack)  -- the writer's Merkle frontier at its last checkpoint (a cache)
    owner(one, feed)              -- the feed whose node writes this file (one row, set once)
    engine_state(name, feed, size, state)  -- the rule engine's state as of entry ``size`` of feed
    peer_heads(peer, feed, size, head, checkpoint, seen, announced)  -- peers' verified heads (sync)
    cosignatures(feed, size, head, root, witness, ts, sig)  -- witnesses' cosignatures (append-only)
    forks(feed, seq, id, held, branch, source, seen)  -- a second valid history, kept as proof
    sync_events(key, type, body, seen, recorded)  -- sync events owed an entry on our own feed
    outbox_cursors(stream, feed, seq, updated)  -- last entry of a stream the broker acknowledged

Entry ids are not indexed (migration 3 dropped the id-prefix index that 1 created). Ids are
random, so each batch of appends landed all over such an index: at a million entries a batch of
2,000 dirties some 1,500 of its ~3,700 leaf pages (estimated from its cell size), several times
the bytes of the entries, to be written and fsynced on every commit (and worn into a gateway's
SD card). Nothing on the append, verify, trace or export path looks entries up by id; the rare
lookup by id (:func:`edge.ledger.query.entries_by_id`) scans. Ids stay unique without an index:
an id is the hash of bytes that hold ``feed`` and ``seq``, which the primary key keeps unique,
and ``verify`` re-derives every id.

``frontiers`` spares a writer re-hashing its whole feed when it opens the file: ``stack`` holds
the roots of the perfect subtrees (32 bytes each, largest first) of the Merkle tree over the
first ``size`` entries, written with each batch. It is only a cache: the writer uses it only when
it gives the root that the feed's last checkpoint signed, and rebuilds the tree otherwise.

``engine_state`` holds the node's rule-engine state (alarm states, running timers, the current
lot and its sums), written by the commit process in the same transaction as the batch that
carries the events it reflects, so the state and the entries that record its transitions are
durable together or not at all (``size``: the feed's length it reflects). It is node-local
runtime state, not history: replaced in place, never hashed, never synced.

``outbox_cursors`` is the MQTT outbox's delivery cursor per stream (:mod:`edge.outbox`): the seq
of the last entry of ``feed`` the broker acknowledged on that stream. Node-local like
``engine_state``: replaced in place, written lazily by the node's outbox (not with batches), never
hashed or synced; a cursor behind the truth only means entries are published again (subscribers
de-duplicate by entry id).

Raw readings of the block still being filled (no ``reading_blocks`` row yet) are stored with
each batch too, so a kill loses at most a flush interval of them: as one compressed piece per
batch in ``reading_stage``, keyed by (block, position of its first reading) so that writing a
batch again after a lost reply stores it once; the batch that closes the block stores the whole
block in ``reading_data`` and deletes its pieces. Files written before migration 8 hold raw
readings as rows of ``readings`` (rowid ``block * 2**32 + position``); they are read as they
are (:mod:`edge.ledger.readings_read`) and pruned like the rest, never rewritten.

Only ``raw`` is hashed; every other column of ``entries`` and ``entry_lots`` is an index derived
from it, which :mod:`edge.ledger.verify` re-derives and compares. Triggers refuse UPDATE and
DELETE on ``entries``, ``entry_lots`` and ``checkpoints``: history is corrected by new entries,
never edited.

Migrations add tables, columns and indexes, or drop an index (derived data); they never change
a row of ``entries``, ``entry_lots`` or ``checkpoints``. Each one runs in a single transaction
together with its row in ``schema_migrations``, so a crash leaves either both or neither.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from edge.errors import StorageError

__all__ = ["MIGRATIONS", "Migration", "current_version", "migrate"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: ``sql`` is run as a script inside one transaction."""

    version: int
    name: str
    sql: str


_ENTRIES = """
CREATE TABLE entries (
    feed TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    prev TEXT,
    ts TEXT NOT NULL,
    type TEXT NOT NULL,
    actor TEXT NOT NULL,
    raw BLOB NOT NULL,
    PRIMARY KEY (feed, seq)
);
CREATE INDEX entries_id ON entries(substr(id, 1, 8));
CREATE INDEX entries_type ON entries(type);
CREATE INDEX entries_ts ON entries(ts);
CREATE INDEX entries_feed_ts ON entries(feed, ts);

CREATE TABLE entry_lots (
    feed TEXT NOT NULL,
    seq INTEGER NOT NULL,
    lot TEXT NOT NULL,
    PRIMARY KEY (feed, seq, lot)
);
CREATE INDEX entry_lots_lot ON entry_lots(lot);

CREATE TABLE checkpoints (
    feed TEXT NOT NULL,
    size INTEGER NOT NULL,
    head TEXT NOT NULL,
    root TEXT NOT NULL,
    sig TEXT NOT NULL,
    PRIMARY KEY (feed, size)
);

CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only: UPDATE refused'); END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only: DELETE refused'); END;
CREATE TRIGGER entry_lots_no_update BEFORE UPDATE ON entry_lots
BEGIN SELECT RAISE(ABORT, 'ledger entry_lots are append-only: UPDATE refused'); END;
CREATE TRIGGER entry_lots_no_delete BEFORE DELETE ON entry_lots
BEGIN SELECT RAISE(ABORT, 'ledger entry_lots are append-only: DELETE refused'); END;
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'ledger checkpoints are append-only: UPDATE refused'); END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'ledger checkpoints are append-only: DELETE refused'); END;
"""

_READINGS = """
CREATE TABLE readings (
    block INTEGER NOT NULL,
    point TEXT NOT NULL,
    ts TEXT NOT NULL,
    value TEXT,
    quality TEXT NOT NULL,
    unit TEXT NOT NULL
);
CREATE INDEX readings_block ON readings(block);
CREATE INDEX readings_point_ts ON readings(point, ts);

CREATE TABLE reading_blocks (
    block INTEGER PRIMARY KEY,
    first_ts TEXT NOT NULL,
    last_ts TEXT NOT NULL,
    count INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    entry TEXT,
    pruned INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX reading_blocks_last_ts ON reading_blocks(last_ts);
"""

_FRONTIERS = """
CREATE TABLE frontiers (
    feed TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    stack BLOB NOT NULL
);
"""

# The feed that owns the file: claimed by the first writer, refused to any other key (a node
# given the wrong key or another node's database stops instead of starting a second feed in it),
# and the feed whose digests must have their blocks in the readings store here.
_OWNER = """
CREATE TABLE owner (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    feed TEXT NOT NULL
);
CREATE TRIGGER owner_no_update BEFORE UPDATE ON owner
BEGIN SELECT RAISE(ABORT, 'the ledger owner is set once: UPDATE refused'); END;
CREATE TRIGGER owner_no_delete BEFORE DELETE ON owner
BEGIN SELECT RAISE(ABORT, 'the ledger owner is set once: DELETE refused'); END;
"""

_ENGINE_STATE = """
CREATE TABLE engine_state (
    name TEXT PRIMARY KEY,
    feed TEXT NOT NULL,
    size INTEGER NOT NULL,
    state BLOB NOT NULL
);
"""

# Sync (issue 13, edge.ledger.replica). peer_heads: the highest checkpoint entry each peer
# announced of each feed, verified against the feed's key (size = entries it holds), and the size
# it announced last (announced); rollback evidence for our own feed. cosignatures and forks are
# evidence: append-only. sync_events: forks and rollbacks seen, until an entry on our own feed
# records them (recorded = that entry's id).
_SYNC = """
CREATE TABLE peer_heads (
    peer TEXT NOT NULL,
    feed TEXT NOT NULL,
    size INTEGER NOT NULL,
    head TEXT NOT NULL,
    checkpoint BLOB NOT NULL,
    seen TEXT NOT NULL,
    announced INTEGER NOT NULL,
    PRIMARY KEY (peer, feed)
);
CREATE TABLE cosignatures (
    feed TEXT NOT NULL,
    size INTEGER NOT NULL,
    head TEXT NOT NULL,
    root TEXT NOT NULL,
    witness TEXT NOT NULL,
    ts INTEGER NOT NULL,
    sig TEXT NOT NULL,
    PRIMARY KEY (feed, size, witness, head, root)
);
CREATE TABLE forks (
    feed TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    held TEXT NOT NULL,
    branch BLOB NOT NULL,
    source TEXT NOT NULL,
    seen TEXT NOT NULL,
    PRIMARY KEY (feed, seq, id)
);
CREATE TABLE sync_events (
    key TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    body BLOB NOT NULL,
    seen TEXT NOT NULL,
    recorded TEXT
);
CREATE TRIGGER cosignatures_no_update BEFORE UPDATE ON cosignatures
BEGIN SELECT RAISE(ABORT, 'cosignatures are append-only: UPDATE refused'); END;
CREATE TRIGGER cosignatures_no_delete BEFORE DELETE ON cosignatures
BEGIN SELECT RAISE(ABORT, 'cosignatures are append-only: DELETE refused'); END;
CREATE TRIGGER forks_no_update BEFORE UPDATE ON forks
BEGIN SELECT RAISE(ABORT, 'fork proofs are append-only: UPDATE refused'); END;
CREATE TRIGGER forks_no_delete BEFORE DELETE ON forks
BEGIN SELECT RAISE(ABORT, 'fork proofs are append-only: DELETE refused'); END;
"""

# Compressed readings (:mod:`edge.ledger.readings_codec`): ~2-5 bytes a reading instead of ~128
# as rows. ``bytes`` is a block's stored size, which the disk budget adds up; the partial index
# finds the oldest blocks still stored without reading past the pruned ones. Blocks stored as rows
# before count ~100 bytes a reading (their rows' measured size without SQLite's page overhead).
_COMPACT_READINGS = """
CREATE TABLE reading_data (
    block INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE reading_stage (
    block INTEGER NOT NULL,
    start INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (block, start)
) WITHOUT ROWID;
CREATE TABLE reading_summaries (
    point TEXT NOT NULL,
    seconds INTEGER NOT NULL,
    start INTEGER NOT NULL,
    count INTEGER NOT NULL,
    vmin REAL NOT NULL,
    vmax REAL NOT NULL,
    mean REAL NOT NULL,
    m2 REAL NOT NULL,
    PRIMARY KEY (point, seconds, start)
) WITHOUT ROWID;
ALTER TABLE reading_blocks ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
CREATE INDEX reading_blocks_kept ON reading_blocks(block) WHERE pruned = 0;
UPDATE reading_blocks SET bytes = 100 * count WHERE pruned = 0;
"""

_OUTBOX_CURSORS = """
CREATE TABLE outbox_cursors (
    stream TEXT NOT NULL,
    feed TEXT NOT NULL,
    seq INTEGER NOT NULL,
    updated TEXT NOT NULL,
    PRIMARY KEY (stream, feed)
);
"""

#: Every migration, in order. Append only: never edit one that has shipped.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "entries, entry_lots, checkpoints, append-only triggers", _ENTRIES),
    Migration(2, "readings store", _READINGS),
    Migration(3, "drop the entry id prefix index", "DROP INDEX IF EXISTS entries_id;"),
    Migration(4, "Merkle frontier of each written feed", _FRONTIERS),
    Migration(5, "the feed that owns the file", _OWNER),
    Migration(6, "rule engine state, written with the batch of its events", _ENGINE_STATE),
    Migration(
        8, "compressed readings blocks, staged pieces, per-minute/hour summaries", _COMPACT_READINGS
    ),
    Migration(9, "MQTT outbox delivery cursor per stream", _OUTBOX_CURSORS),
    Migration(10, "sync: peer heads, cosignatures, fork proofs, sync events", _SYNC),
)


def current_version(conn: sqlite3.Connection) -> int:
    """The highest migration applied to ``conn``'s database (0 for a new file)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied TEXT NOT NULL)"
    )
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring ``conn``'s database up to the newest schema.

    ``conn`` must be in autocommit mode (``isolation_level=None``) so that each migration
    gets its own explicit ``BEGIN IMMEDIATE`` .. ``COMMIT``.

    Returns:
        The schema version after migrating.

    Raises:
        StorageError: a migration failed (the database keeps its previous version), or the
            file was written by a newer edge-qc.
    """
    version = current_version(conn)
    newest = MIGRATIONS[-1].version
    if version > newest:
        raise StorageError(
            f"database schema version {version} is newer than this edge-qc ({newest})"
        )
    # by the versions applied, not the highest: migration numbers were handed out to work that
    # lands in any order, so a file may hold 10 and not yet 8 (each is independent of the others)
    applied = {int(v) for (v,) in conn.execute("SELECT version FROM schema_migrations")}
    for migration in MIGRATIONS:
        if migration.version in applied:
            continue
        statements = [s.strip() for s in _split(migration.sql) if s.strip()]
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations(version, name, applied) VALUES (?, ?, ?)",
                (
                    migration.version,
                    migration.name,
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                ),
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StorageError(
                f"schema migration {migration.version} ({migration.name}) failed: {exc}"
            ) from exc
        version = max(version, migration.version)
    return version


def _split(script: str) -> list[str]:
    """Split a script into statements; ``executescript`` would COMMIT on its own.

    Uses :func:`sqlite3.complete_statement` so trigger bodies (``BEGIN ... END;``) stay whole.
    """
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending)
            pending = ""
    if pending.strip():
        statements.append(pending)
    return statements
