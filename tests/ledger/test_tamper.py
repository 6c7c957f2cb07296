"""Tamper tests: a real ledger file changed with the sqlite3 module behind the ledger's back."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pytest
import stored_readings as sr
from click.testing import CliRunner

from edge.cli import main
from edge.errors import RollbackRefused
from edge.ledger.keys import NodeKey
from edge.ledger.readings_codec import Item, encode
from edge.ledger.store import Ledger, connect
from edge.ledger.verify import Kind, Report, verify_db
from edge.ledger.verify_readings import check_readings


def verify(path: Path) -> Report:
    conn = connect(path, readonly=True)
    try:
        return verify_db(conn)
    finally:
        conn.close()


@contextmanager
def attacker(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection with the append-only triggers dropped, as an attacker would."""
    conn = sqlite3.connect(path)
    for name in (
        "entries_no_update",
        "entries_no_delete",
        "entry_lots_no_update",
        "entry_lots_no_delete",
        "checkpoints_no_update",
        "checkpoints_no_delete",
    ):
        conn.execute(f"DROP TRIGGER {name}")
    yield conn
    conn.commit()
    conn.close()


def found(report: Report) -> set[tuple[int, Kind]]:
    return {(p.seq, p.kind) for p in report.problems}


def test_untouched_ledger_verifies(db: Path) -> None:
    report = verify(db)
    assert report.ok, report.problems
    assert report.entries == 18
    assert report.feeds[0].checkpoints == 3


def test_triggers_refuse_update_and_delete(db: Path) -> None:
    conn = sqlite3.connect(db)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE entries SET type = 'x' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM entries WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM entry_lots")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM checkpoints")
    conn.close()
    assert verify(db).ok


def test_one_byte_of_a_body_changed(db: Path) -> None:
    with attacker(db) as conn:
        raw = conn.execute("SELECT raw FROM entries WHERE seq = 7").fetchone()[0]
        at = raw.index(b'"value":"') + len(b'"value":"')
        forged = raw[:at] + bytes([raw[at] ^ 0x01]) + raw[at + 1 :]  # 9.75 -> 8.75
        assert len(forged) == len(raw)
        assert forged != raw
        conn.execute("UPDATE entries SET raw = ? WHERE seq = 7", (forged,))
    report = verify(db)
    assert found(report) == {(7, Kind.CHANGED)}
    assert "content hashes to" in report.problems[0].detail


def test_body_changed_and_id_recomputed_breaks_the_link(db: Path) -> None:
    """A smarter attacker also fixes the id column: the next entry's prev still names the old id."""
    with attacker(db) as conn:
        raw = conn.execute("SELECT raw FROM entries WHERE seq = 7").fetchone()[0]
        forged = raw.replace(b'"limit":"8.0"', b'"limit":"9.0"')
        conn.execute(
            "UPDATE entries SET raw = ?, id = ? WHERE seq = 7",
            (forged, hashlib.sha256(forged).hexdigest()),
        )
    kinds = found(verify(db))
    assert (8, Kind.BROKEN_LINK) in kinds
    assert (10, Kind.BAD_CHECKPOINT) in kinds  # the signed Merkle root covered the old id


def test_middle_entry_deleted(db: Path) -> None:
    with attacker(db) as conn:
        assert conn.execute("DELETE FROM entries WHERE seq = 8").rowcount == 1
    report = verify(db)
    assert found(report) == {(8, Kind.MISSING)}
    assert report.problems[0].detail == "entry 8 is missing"


def test_two_entries_swapped(db: Path) -> None:
    with attacker(db) as conn:
        conn.execute("UPDATE entries SET seq = -1 WHERE seq = 7")
        conn.execute("UPDATE entries SET seq = 7 WHERE seq = 8")
        conn.execute("UPDATE entries SET seq = 8 WHERE seq = -1")
    kinds = found(verify(db))
    assert {(7, Kind.REORDERED), (8, Kind.REORDERED)} <= kinds
    assert all(seq in (7, 8, 10) for seq, _ in kinds), kinds


def test_checkpoint_signature_altered(db: Path) -> None:
    with attacker(db) as conn:
        raw = conn.execute("SELECT raw FROM entries WHERE seq = 10").fetchone()[0]
        body = orjson.loads(raw)["body"]
        sig = body["sig"]
        bad = sig[:-2] + ("00" if sig[-2:] != "00" else "01")
        forged = raw.replace(sig.encode(), bad.encode())
        conn.execute(
            "UPDATE entries SET raw = ?, id = ? WHERE seq = 10",
            (forged, hashlib.sha256(forged).hexdigest()),
        )
    kinds = found(verify(db))
    assert (10, Kind.BAD_SIGNATURE) in kinds


def test_checkpoint_forged_with_another_key(db: Path) -> None:
    """Rewriting history and re-signing needs the feed's private key; another key is caught."""
    from edge.ledger.entry import checkpoint_message

    other = NodeKey.generate()
    with attacker(db) as conn:
        feed, raw = conn.execute("SELECT feed, raw FROM entries WHERE seq = 5").fetchone()
        body = orjson.loads(raw)["body"]
        sig = other.sign(checkpoint_message(feed, body["size"], body["head"], body["root"]))
        forged = raw.replace(body["sig"].encode(), sig.encode())
        conn.execute(
            "UPDATE entries SET raw = ?, id = ? WHERE seq = 5",
            (forged, hashlib.sha256(forged).hexdigest()),
        )
    assert (5, Kind.BAD_SIGNATURE) in found(verify(db))


@pytest.mark.parametrize("cut", [11, 14])
def test_tail_truncated_below_a_checkpoint(db: Path, key: NodeKey, cut: int) -> None:
    with attacker(db) as conn:
        conn.execute("DELETE FROM entries WHERE seq >= ?", (cut,))
        conn.execute("DELETE FROM entry_lots WHERE seq >= ?", (cut,))
    report = verify(db)
    kinds = found(report)
    assert (cut, Kind.ROLLBACK) in kinds
    rollback = next(p for p in report.problems if p.kind is Kind.ROLLBACK)
    assert "a signed checkpoint covered 17 entries" in rollback.detail
    if cut == 11:  # a clean prefix ending at a checkpoint: the rollback gives it away, and
        # the readings block whose digest (seq 11) went with the tail
        assert kinds == {(11, Kind.ROLLBACK), (-1, Kind.UNCOVERED_READINGS)}
    else:
        assert (11, Kind.UNSIGNED) in kinds
    with pytest.raises(RollbackRefused, match="restore the feed"):
        Ledger.open(db, key)


def test_entry_appended_behind_the_writers_back_is_unsigned(db: Path) -> None:
    from edge.ledger.entry import make_entry

    with attacker(db) as conn:
        feed, head = conn.execute(
            "SELECT feed, id FROM entries ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        e = make_entry(
            feed=feed,
            seq=18,
            prev=head,
            ts=0.0,
            type="alarm.ack",
            body={"rule": "x", "comment": "ok"},
        )
        conn.execute(
            "INSERT INTO entries(feed, seq, id, prev, ts, type, actor, raw) VALUES (?,?,?,?,?,?,?,?)",
            (e.feed, e.seq, e.id, e.prev, e.ts, e.type, e.actor, e.raw),
        )
    assert found(verify(db)) == {(18, Kind.UNSIGNED)}


def test_index_column_changed(db: Path) -> None:
    with attacker(db) as conn:
        conn.execute("UPDATE entries SET type = 'alarm.ack' WHERE seq = 3")
        seq = conn.execute("SELECT max(seq) FROM entry_lots").fetchone()[0]
        conn.execute("DELETE FROM entry_lots WHERE seq = ?", (seq,))
    assert found(verify(db)) == {(3, Kind.INDEX_MISMATCH), (seq, Kind.INDEX_MISMATCH)}


def test_raw_reading_changed(db: Path) -> None:
    with attacker(db) as conn:
        _change_a_reading(conn)
    report = verify(db)
    assert found(report) == {(11, Kind.CHANGED_READINGS)}


def test_cli_names_each_problem_and_exits_1(db: Path) -> None:
    with attacker(db) as conn:
        conn.execute("DELETE FROM entries WHERE seq = 2")
        conn.execute("DELETE FROM entries WHERE seq >= 14")
    result = CliRunner().invoke(main, ["ledger", "verify", "--db", str(db), "--json"])
    assert result.exit_code == 1, result.output
    payload = orjson.loads(result.output)
    assert payload["ok"] is False
    kinds = {(p["seq"], p["kind"]) for p in payload["problems"]}
    assert {(2, "missing entry"), (14, "rollback below a checkpoint")} <= kinds
    human = CliRunner().invoke(main, ["ledger", "verify", "--db", str(db)])
    assert human.exit_code == 1
    assert "missing entry" in human.output
    assert "rollback below a checkpoint" in human.output


def test_cli_ok_exits_0(db: Path) -> None:
    result = CliRunner().invoke(main, ["ledger", "verify", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "18 entries verified" in result.output


def test_cli_unreadable_db_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "x.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    result = CliRunner().invoke(main, ["ledger", "verify", "--db", str(bad)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_no_merkle_still_names_every_tampering(db: Path) -> None:
    with attacker(db) as conn:
        raw = conn.execute("SELECT raw FROM entries WHERE seq = 2").fetchone()[0]
        conn.execute("UPDATE entries SET raw = ? WHERE seq = 2", (raw.replace(b'"8.0"', b'"9.0"'),))
        conn.execute("DELETE FROM entries WHERE seq = 4")
        conn.execute("UPDATE entries SET seq = -1 WHERE seq = 7")
        conn.execute("UPDATE entries SET seq = 7 WHERE seq = 8")
        conn.execute("UPDATE entries SET seq = 8 WHERE seq = -1")
        raw = conn.execute("SELECT raw FROM entries WHERE seq = 10").fetchone()[0]
        sig = orjson.loads(raw)["body"]["sig"]
        forged = raw.replace(
            sig.encode(), (sig[:-2] + ("00" if sig[-2:] != "00" else "01")).encode()
        )
        conn.execute(
            "UPDATE entries SET raw = ?, id = ? WHERE seq = 10",
            (forged, hashlib.sha256(forged).hexdigest()),
        )
        conn.execute("DELETE FROM entries WHERE seq >= 14")
    conn = connect(db, readonly=True)
    kinds = {(p.seq, p.kind) for p in verify_db(conn, merkle=False).problems}
    conn.close()
    assert {
        (2, Kind.CHANGED),
        (4, Kind.MISSING),
        (7, Kind.REORDERED),
        (8, Kind.REORDERED),
        (10, Kind.BAD_SIGNATURE),
        (14, Kind.ROLLBACK),
    } <= kinds


# -- the checkpoints table against the checkpoint entries -------------------------------------


def test_signature_changed_only_in_the_checkpoints_table(db: Path) -> None:
    with attacker(db) as conn:
        sig = conn.execute("SELECT sig FROM checkpoints WHERE size = 10").fetchone()[0]
        bad = sig[:-2] + ("00" if sig[-2:] != "00" else "01")
        conn.execute("UPDATE checkpoints SET sig = ? WHERE size = 10", (bad,))
    report = verify(db)
    assert found(report) == {(10, Kind.CHECKPOINT_TABLE)}
    assert report.problems[0].detail.endswith("differs from checkpoint entry 10 in sig")


def test_checkpoints_table_row_deleted_or_invented(db: Path) -> None:
    with attacker(db) as conn:
        conn.execute("DELETE FROM checkpoints WHERE size = 5")
        feed = conn.execute("SELECT feed FROM entries LIMIT 1").fetchone()[0]
        conn.execute("INSERT INTO checkpoints VALUES (?, 7, 'x', 'y', 'z')", (feed,))
    report = verify(db)
    assert found(report) == {(5, Kind.CHECKPOINT_TABLE), (7, Kind.CHECKPOINT_TABLE)}
    details = sorted(p.detail for p in report.problems)
    assert "checkpoint entry 5 has no row in the checkpoints table" in details
    assert any("size 7" in d and "no such checkpoint" in d for d in details)


# -- the readings store against the chain ----------------------------------------------------
# The fixture's one readings block is block 1, committed by the digest entry at seq 11; its
# readings were taken at T0 + 11 .. T0 + 11.9.

DAY = 86400.0
T0 = 1_795_000_000.0  # the fixture's first entry (tests/ledger/conftest.py)


def _change_a_reading(conn: sqlite3.Connection) -> None:
    """The first temp reading of block 1 gets another value; the block is validly re-encoded."""

    def change(items: list[Item]) -> list[Item]:
        first = next(i for i, item in enumerate(items) if item[0] == "temp")
        assert items[first][3] != 4.5
        return sr.set_value(items, first, 4.5)

    sr.rewrite_block(conn, 1, change)


def _as_legacy_rows(conn: sqlite3.Connection, block: int) -> None:
    """Store ``block`` as a file written before migration 8 held it: rows of ``readings``."""
    from edge.ledger.commit import reading_rowid
    from edge.ledger.readings_codec import decode, format_micros
    from edge.ledger.readings_store import encode_value

    (data,) = conn.execute("SELECT data FROM reading_data WHERE block = ?", (block,)).fetchone()
    rows = [
        (
            reading_rowid(block, i),
            block,
            point,
            format_micros(micros),
            None if value is None else json.dumps(encode_value(value)),
            quality,
            unit,
        )
        for i, (point, unit, micros, value, quality) in enumerate(decode(data))
    ]
    conn.executemany(
        "INSERT INTO readings(rowid, block, point, ts, value, quality, unit)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.execute("DELETE FROM reading_data WHERE block = ?", (block,))


def details(report: Report) -> str:
    return "\n".join(p.detail for p in report.problems)


def test_changed_reading_whose_block_is_then_marked_pruned(db: Path) -> None:
    with attacker(db) as conn:
        _change_a_reading(conn)
        conn.execute("UPDATE reading_blocks SET pruned = 1 WHERE block = 1")
    report = verify(db)
    assert found(report) == {(11, Kind.CHANGED_READINGS), (11, Kind.BLOCK_ROW)}
    assert "marked pruned but its readings are stored" in details(report)


def test_changed_reading_then_deleted_and_marked_pruned(db: Path) -> None:
    with attacker(db) as conn:
        _change_a_reading(conn)
        conn.execute("DELETE FROM reading_data WHERE block = 1")
        conn.execute("UPDATE reading_blocks SET pruned = 1 WHERE block = 1")
    report = verify(db)
    assert found(report) == {(11, Kind.MISSING_READINGS)}
    assert "no readings.prune entry records it" in details(report)


@pytest.mark.parametrize("change", [False, True])
def test_block_row_digest_link_set_to_null(db: Path, change: bool) -> None:
    with attacker(db) as conn:
        if change:
            _change_a_reading(conn)
        conn.execute("UPDATE reading_blocks SET entry = NULL WHERE block = 1")
    report = verify(db)
    expected = {(11, Kind.BLOCK_ROW)} | ({(11, Kind.CHANGED_READINGS)} if change else set())
    assert found(report) == expected
    assert "links to NULL, not to its digest entry" in details(report)


@pytest.mark.parametrize("change", [False, True])
def test_block_row_deleted(db: Path, change: bool) -> None:
    with attacker(db) as conn:
        if change:
            _change_a_reading(conn)
        conn.execute("DELETE FROM reading_blocks WHERE block = 1")
    report = verify(db)
    expected = {(11, Kind.BLOCK_ROW)} | ({(11, Kind.CHANGED_READINGS)} if change else set())
    assert found(report) == expected
    assert "its reading_blocks row is gone" in details(report)


def test_block_and_its_row_deleted(db: Path) -> None:
    with attacker(db) as conn:
        conn.execute("DELETE FROM reading_data WHERE block = 1")
        conn.execute("DELETE FROM reading_blocks WHERE block = 1")
    report = verify(db)
    assert found(report) == {(11, Kind.MISSING_READINGS)}
    assert "row is deleted too); no readings.prune entry records it" in details(report)


def test_block_deleted_and_marked_pruned_seconds_after_it_was_written(db: Path) -> None:
    """What the node's own prune does (delete, mark pruned), seconds in, with no record."""
    from edge.ledger.commit import prune_readings

    conn = sqlite3.connect(db)
    assert prune_readings(conn, [1]) == 9
    conn.close()
    report = verify(db)
    assert found(report) == {(11, Kind.MISSING_READINGS)}
    assert "(marked pruned); no readings.prune entry records it" in details(report)


def test_prune_recorded_before_its_retention_is_named(db: Path, key: NodeKey) -> None:
    """A prune that is on the chain but came too early (a writer misconfigured or misused)."""
    with Ledger.open(db, key) as ledger:
        # 30 days of retention claimed, but the block is pruned 10 minutes after it was written
        assert ledger.prune_readings(T0 + 500, retention=30 * DAY, now=T0 + 600) == 9
    report = verify(db)
    assert found(report) == {(11, Kind.MISSING_READINGS)}
    assert "before its retention of 2592000 s ran out" in details(report)


def test_prune_at_its_retention_verifies(db: Path, key: NodeKey) -> None:
    with Ledger.open(db, key) as ledger:
        now = T0 + 12 + 30 * DAY
        assert ledger.prune_readings(now - 30 * DAY, retention=30 * DAY, now=now) == 9
        entry = ledger.latest("readings.prune")
    assert entry is not None
    assert entry.body["blocks"] == [[1, 1]]
    assert entry.body["reason"] == "retention"
    assert entry.body["retention"] == "2592000"
    report = verify(db)
    assert report.ok, report.problems
    assert report.feeds[0].pruned == {"retention": 1}


def test_operator_prune_names_who_and_verifies(db: Path, key: NodeKey) -> None:
    with Ledger.open(db, key) as ledger:
        ledger.prune_readings(T0 + 100, actor="qa.jane", comment="disk full", now=T0 + 200)
        entry = ledger.latest("readings.prune")
    assert entry is not None
    assert (entry.actor, entry.body["reason"], entry.body["comment"]) == (
        "qa.jane",
        "operator",
        "disk full",
    )
    report = verify(db)
    assert report.ok, report.problems
    assert report.feeds[0].pruned == {"operator:qa.jane": 1}


def test_prune_recorded_but_not_yet_deleted_verifies(db: Path, key: NodeKey) -> None:
    """A crash between the durable prune entry and the DELETE: readings still match."""
    from edge.ledger.readings_store import PRUNE, plan_prune

    with Ledger.open(db, key) as ledger:
        plan = plan_prune(ledger.conn, T0 + 100, retention=1.0)
        assert plan is not None
        ledger.append(PRUNE, plan.body, ts=T0 + 200)
        ledger.commit(now=T0 + 200)
    assert verify(db).ok


def test_readings_no_digest_commits_to(db: Path) -> None:
    with attacker(db) as conn:
        conn.execute(
            "INSERT INTO reading_data(block, data) VALUES (7, ?)",
            (encode([("temp", "degC", 1_795_000_000_000_000, 1, "good")]),),
        )
        conn.execute(
            "INSERT INTO reading_blocks(block, first_ts, last_ts, count, sha256, entry) "
            "VALUES (8, 'a', 'b', 1, 'c', NULL)"
        )
    report = verify(db)
    assert {p.kind for p in report.problems} == {Kind.UNCOVERED_READINGS}
    assert "readings block 7 is stored but no digest entry commits to it" in details(report)
    assert "reading_blocks row of block 8 has no digest entry on the chain" in details(report)


def test_cli_names_each_readings_problem(db: Path) -> None:
    with attacker(db) as conn:
        conn.execute("UPDATE reading_blocks SET entry = NULL WHERE block = 1")
        sig = conn.execute("SELECT sig FROM checkpoints WHERE size = 5").fetchone()[0]
        changed = ("01" if sig[:2] == "00" else "00") + sig[2:]  # always a different signature
        conn.execute("UPDATE checkpoints SET sig = ? WHERE size = 5", (changed,))
    result = CliRunner().invoke(main, ["ledger", "verify", "--db", str(db)])
    assert result.exit_code == 1, result.output
    assert "readings block row mismatch" in result.output
    assert "checkpoints table mismatch" in result.output


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"garbage",
        lambda data: data[:-5],
        lambda data: data[:1] + bytes([data[1] ^ 0xFF]) + data[2:],
        lambda data: b"\x07" + data[1:],
    ],
    ids=["garbage", "truncated", "flipped", "unknown format"],
)
def test_a_block_that_does_not_decode_is_named_not_a_stop(
    db: Path, damage: Callable[[bytes], bytes]
) -> None:
    """Stored bytes that do not decode are a changed block like any other, named at its digest."""
    with attacker(db) as conn:
        (data,) = conn.execute("SELECT data FROM reading_data WHERE block = 1").fetchone()
        conn.execute("UPDATE reading_data SET data = ? WHERE block = 1", (damage(data),))
        conn.execute("UPDATE checkpoints SET sig = 'forged' WHERE size = 5")
    report = verify(db)
    assert found(report) == {(11, Kind.CHANGED_READINGS), (5, Kind.CHECKPOINT_TABLE)}
    result = CliRunner().invoke(main, ["ledger", "verify", "--db", str(db)])
    assert result.exit_code == 1
    assert "changed readings" in result.output
    assert "Traceback" not in result.output


def test_every_single_byte_changed_in_a_block_is_named(db: Path) -> None:
    """Each byte of the stored block, changed alone, is found (no byte the digest misses)."""
    with attacker(db) as conn:
        (data,) = conn.execute("SELECT data FROM reading_data WHERE block = 1").fetchone()
    conn = sqlite3.connect(db)
    try:
        for offset in range(len(data)):
            changed = bytearray(data)
            changed[offset] ^= 0x10
            conn.execute("UPDATE reading_data SET data = ? WHERE block = 1", (bytes(changed),))
            report = Report()
            check_readings(conn, report, None)
            assert [(p.seq, p.kind) for p in report.problems] == [(11, Kind.CHANGED_READINGS)], (
                offset
            )
    finally:
        conn.close()


def test_a_file_with_row_stored_readings_verifies(db: Path) -> None:
    """Files written before migration 8 keep raw readings as rows: read and verified as they are."""
    before = sr.stored(db, block=1)
    with attacker(db) as conn:
        _as_legacy_rows(conn, 1)
        assert conn.execute("SELECT count(*) FROM reading_data").fetchone()[0] == 0
    assert verify(db).ok
    assert sr.stored(db, block=1) == before  # numbers come back from their decimals


@pytest.mark.parametrize("value", ["garbage", "1e999", "4.5", '[1, {"a": 1.5}]'])
def test_a_row_stored_reading_that_cannot_be_hashed_is_named_not_a_stop(
    db: Path, value: str
) -> None:
    """A legacy stored value that is not JSON (or a float the hash cannot take) is a changed
    reading like any other."""
    with attacker(db) as conn:
        _as_legacy_rows(conn, 1)
        rowid = conn.execute("SELECT min(rowid) FROM readings WHERE point = 'temp'").fetchone()[0]
        conn.execute("UPDATE readings SET value = ? WHERE rowid = ?", (value, rowid))
        conn.execute("UPDATE checkpoints SET sig = 'forged' WHERE size = 5")
    report = verify(db)
    assert found(report) == {(11, Kind.CHANGED_READINGS), (5, Kind.CHECKPOINT_TABLE)}
    result = CliRunner().invoke(main, ["ledger", "verify", "--db", str(db)])
    assert result.exit_code == 1
    assert "changed readings" in result.output
    assert "Traceback" not in result.output
