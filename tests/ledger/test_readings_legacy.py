"""A file written before migration 8 (raw readings as rows of ``readings``) opens, migrates,
recovers the block a killed run left open from its rows, goes on in compressed blocks, and
verifies; every reading reads back as it was recorded."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from stored_readings import stored

from edge.ledger.commit import reading_rowid
from edge.ledger.keys import NodeKey
from edge.ledger.readings_codec import decode, format_micros
from edge.ledger.readings_store import encode_value
from edge.ledger.store import Ledger
from edge.ledger.verify import verify_db
from edge.readings import Reading

T0 = 1_795_000_000.0


def _rows(block: int, items: list[tuple[str, str, int, object, str]]) -> list[tuple[object, ...]]:
    return [
        (
            reading_rowid(block, i),
            block,
            point,
            format_micros(micros),
            None if value is None else json.dumps(encode_value(value)),
            quality,
            unit,
        )
        for i, (point, unit, micros, value, quality) in enumerate(items)
    ]


def _as_version_6(path: Path) -> None:
    """Turn a file into what edge-qc wrote before migration 8: rows, no compressed tables."""
    conn = sqlite3.connect(path)
    insert = (
        "INSERT INTO readings(rowid, block, point, ts, value, quality, unit)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)"
    )
    for block, data in conn.execute("SELECT block, data FROM reading_data").fetchall():
        conn.executemany(insert, _rows(block, decode(data)))
    pieces = conn.execute("SELECT block, start, data FROM reading_stage ORDER BY start").fetchall()
    open_items = [item for _, _, data in pieces for item in decode(data)]
    if pieces:
        conn.executemany(insert, _rows(pieces[0][0], open_items))
    conn.executescript(
        """
        DROP TABLE reading_data;
        DROP TABLE reading_stage;
        DROP TABLE reading_summaries;
        DROP INDEX reading_blocks_kept;
        ALTER TABLE reading_blocks DROP COLUMN bytes;
        DELETE FROM schema_migrations WHERE version = 8;
        """
    )
    conn.commit()
    conn.close()


def test_a_file_with_row_stored_readings_opens_migrates_and_verifies(tmp_path: Path) -> None:
    path, key = tmp_path / "l.db", NodeKey.generate()
    first = [Reading("temp", T0 + i / 10, 4.0 + i / 8, unit="degC") for i in range(30)]
    text = [Reading("lot", T0 + 5 + i, f"L-{i}") for i in range(3)]
    left_open = [Reading("flag", T0 + 9 + i, i % 2 == 0) for i in range(4)]
    with Ledger.open(path, key) as ledger:
        ledger.append_readings(first)
        ledger.append_readings(text)
        ledger.add_readings(left_open)
        ledger.commit()  # the open block is staged: a kill now leaves it open
    _as_version_6(path)
    conn = sqlite3.connect(path)
    assert (8,) not in conn.execute("SELECT version FROM schema_migrations").fetchall()
    assert conn.execute("SELECT count(*) FROM readings").fetchone()[0] == 37
    conn.close()

    with Ledger.open(path, key) as ledger:  # migrates (8), recovers the open block from rows
        assert (ledger.open_block.number, len(ledger.open_block)) == (3, 4)
        ledger.add_readings([Reading("flag", T0 + 20, True)])
        ledger.close_block()
        ledger.append_readings([Reading("temp", T0 + 30, 9.5, unit="degC")])
        ledger.commit()
        assert verify_db(ledger.conn).ok
        # the recovered block is stored compressed now, its rows gone; closed blocks keep theirs
        blocks = ledger.conn.execute("SELECT DISTINCT block FROM readings ORDER BY block")
        assert blocks.fetchall() == [(1,), (2,)]
    back = stored(path)
    recorded = [*first, *text, *left_open, Reading("flag", T0 + 20, True)]
    recorded.append(Reading("temp", T0 + 30, 9.5, unit="degC"))
    assert [(r.point, r.ts, r.value, r.quality, r.unit) for r in back] == [
        (r.point, format_micros(round(r.ts * 1e6)), r.value, str(r.quality), r.unit)
        for r in recorded
    ]
    assert [type(r.value) for r in back[30:33]] == [str, str, str]
    assert [r.block for r in back].count(3) == 5  # the recovered block, closed with the new one
    with Ledger.open(path, key) as ledger:  # prunes reach both stores
        assert ledger.prune_readings(T0 + 100, actor="qa", now=T0 + 200) == len(recorded)
        assert stored(ledger.conn) == []
        assert verify_db(ledger.conn).ok
