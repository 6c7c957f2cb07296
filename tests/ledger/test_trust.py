"""Trust is pinned outside the file: the owner check, the trust list, verify --trust, trace/export.

The two forgeries of issue 12 are built for real: a whole ledger re-chained under a new key (its
alarms dropped, its lot checks set to passed) put in place of the real file, and a forged second
feed added to the real file. Both verify as far as the chain goes; both are named untrusted once
the node's key is pinned.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from edge.cli import main
from edge.errors import StorageError, TrustError
from edge.ledger.entry import parse_entry
from edge.ledger.keys import NodeKey, create_key_file
from edge.ledger.store import Ledger, connect
from edge.ledger.trust import (
    TRUST_FILE,
    add_trusted,
    load_trust,
    parse_key,
    remove_trusted,
    trust_for,
)
from edge.ledger.verify import Kind, verify_db

T0 = 1_795_000_000.0
LOT = "L-42"


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def _real_line(db: Path, key: NodeKey) -> None:
    """A node's ledger: a lot with an alarm and a failed lot check."""
    with Ledger.open(db, key) as led:
        led.append("node.start", {"node_id": "filler-gw", "site": "plant-1"}, ts=T0)
        led.append("lot.start", {"lot": LOT, "station": "filler-1"}, ts=T0 + 1, lots=[LOT])
        led.append(
            "alarm",
            {"rule": "fill-low", "event": "activated", "value": "480", "limit": "495"},
            ts=T0 + 2,
            lots=[LOT],
        )
        led.append(
            "lot.end",
            {
                "lot": LOT,
                "station": "filler-1",
                "checks": [{"rule": "fill-mean", "statistic": "mean", "passed": False}],
            },
            ts=T0 + 3,
            lots=[LOT],
        )
        led.commit(now=T0 + 4)


def _entries(db: Path) -> list[Any]:
    conn = sqlite3.connect(db)
    try:
        return [parse_entry(r) for (r,) in conn.execute("SELECT raw FROM entries ORDER BY seq")]
    finally:
        conn.close()


def _verify(db: Path, **kwargs: Any) -> Any:
    conn = connect(db, readonly=True)
    try:
        return verify_db(conn, **kwargs)
    finally:
        conn.close()


@pytest.fixture
def node(tmp_path: Path) -> tuple[Path, NodeKey]:
    """A node's data directory (key file, .pub beside it) with its ledger."""
    data = tmp_path / "data"
    key = create_key_file(data / "node.key")
    _real_line(data / "ledger.db", key)
    return data, key


# -- the owner check ---------------------------------------------------------------------------


def test_a_node_refuses_a_database_of_another_key(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    mine, other = NodeKey.generate(), NodeKey.generate()
    _real_line(db, mine)
    with pytest.raises(StorageError, match=r"belongs to feed .*not this node key.s feed") as exc:
        Ledger.open(db, other)
    assert "\n" not in str(exc.value)
    with Ledger.open(db, mine) as led:  # its own key still opens it; the lock was released
        assert led.size == 5


def test_an_old_file_is_claimed_by_its_own_feed_only(tmp_path: Path) -> None:
    """A file from before the owner table: refused to a key whose feed it does not hold."""
    db = tmp_path / "ledger.db"
    mine, other = NodeKey.generate(), NodeKey.generate()
    _real_line(db, mine)
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER owner_no_delete")
    conn.execute("DELETE FROM owner")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match=r"holds feed .*not this node key.s feed"):
        Ledger.open(db, other)
    with Ledger.open(db, mine):
        pass
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT feed FROM owner").fetchall() == [(mine.feed,)]
    conn.close()


def test_node_run_with_the_wrong_key_is_one_line(node: tuple[Path, NodeKey]) -> None:
    data, _ = node
    toml = data.parent / "node.toml"
    toml.write_text(
        '[node]\nid = "filler-gw"\ndata_dir = "data"\n\n[ledger]\nkey_file = "other.key"\n'
    )
    create_key_file(data / "other.key")
    result = run("ledger", "correct", "00000000", "-c", str(toml), "--reason", "x")
    assert result.exit_code == 1
    assert "belongs to feed" in result.output
    assert "Traceback" not in result.output


# -- the trust list ----------------------------------------------------------------------------


def test_parse_key_takes_hex_pub_files_and_pem_keys(tmp_path: Path) -> None:
    key = create_key_file(tmp_path / "n.key")
    assert parse_key(key.feed) == key.feed
    assert parse_key(key.feed.upper()) == key.feed
    assert parse_key(str(tmp_path / "n.key.pub")) == key.feed
    assert parse_key(str(tmp_path / "n.key")) == key.feed  # the public half of a private key
    public = tmp_path / "n.pem"
    public.write_bytes(
        key.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert parse_key(str(public)) == key.feed


@pytest.mark.parametrize(
    "text",
    ["abc", "g" * 64, "ab" * 31, "ab" * 33, "/no/such/file"],
)
def test_malformed_keys_are_one_line_errors(text: str) -> None:
    with pytest.raises(TrustError) as exc:
        parse_key(text)
    assert "\n" not in str(exc.value)


def test_a_file_that_is_no_key_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pub"
    junk.write_text("hello\n")
    with pytest.raises(TrustError, match="not a key file"):
        parse_key(str(junk))
    pem = tmp_path / "bad.pem"
    pem.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(TrustError, match="not a PEM Ed25519 key"):
        parse_key(str(pem))


def test_add_list_remove_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / TRUST_FILE
    own, a, b = NodeKey.generate(), NodeKey.generate(), NodeKey.generate()
    add_trusted(path, a.feed, "packer-gw")
    add_trusted(path, b.feed, "hub")
    with pytest.raises(TrustError, match="name 'hub' is taken"):
        add_trusted(path, NodeKey.generate().feed, "hub")
    with pytest.raises(TrustError, match="already trusted as 'packer-gw'"):
        add_trusted(path, a.feed, "again")
    with pytest.raises(TrustError, match="own key"):
        add_trusted(path, own.feed, "me", own=own.feed)
    with pytest.raises(TrustError, match=r"is not a name|use 1-64"):
        add_trusted(path, NodeKey.generate().feed, 'bad "name"')
    listed = load_trust(path, own=own.feed, own_name="filler-gw")
    assert [t.name for t in listed.all] == ["filler-gw", "packer-gw", "hub"]
    assert listed.contains(own.feed)
    assert listed.contains(a.feed)
    assert a.feed in listed
    assert listed.name_of(b.feed) == "hub"
    assert listed.names[own.feed] == "filler-gw"
    assert remove_trusted(path, "packer-gw").key == a.feed
    assert remove_trusted(path, b.feed).name == "hub"
    with pytest.raises(TrustError, match="no trusted key"):
        remove_trusted(path, "hub")
    with pytest.raises(TrustError, match="own key"):
        remove_trusted(path, own.feed, own=own.feed)
    assert load_trust(path).entries == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[trusted]\n", "not valid TOML"),
        ('[[trusted]]\nname = "x"\nkey = "12"\n', "trusted #1: key"),
        ('[[trusted]]\nname = ""\nkey = "' + "ab" * 32 + '"\n', "trusted #1: name"),
        ("trusted = 3\n", "must be a list"),
    ],
)
def test_a_malformed_trust_file_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / TRUST_FILE
    path.write_text(text)
    with pytest.raises(TrustError, match=message) as exc:
        load_trust(path)
    assert str(exc.value).startswith(str(path))
    assert "\n" not in str(exc.value)


def test_cli_trust_add_list_remove(node: tuple[Path, NodeKey], tmp_path: Path) -> None:
    data, own = node
    peer = create_key_file(tmp_path / "peer" / "node.key")
    added = run("trust", "add", str(tmp_path / "peer" / "node.key.pub"), "--name", "packer-gw",
                "--data-dir", str(data))  # fmt: skip
    assert added.exit_code == 0, added.output
    assert peer.feed in added.output
    listed = run("trust", "list", "--data-dir", str(data), "--json")
    assert listed.exit_code == 0, listed.output
    rows = orjson.loads(listed.output)
    assert [(r["name"], r["key"], r["own"]) for r in rows] == [
        ("self", own.feed, True),
        ("packer-gw", peer.feed, False),
    ]
    human = run("trust", "list", "--data-dir", str(data))
    assert peer.feed in human.output
    assert "(this node)" in human.output
    for args, message in [
        (["add", peer.feed, "--name", "again"], "already trusted as 'packer-gw'"),
        (["add", NodeKey.generate().feed, "--name", "packer-gw"], "name 'packer-gw' is taken"),
        (["add", "xyz", "--name", "n"], "not a key"),
        (["add", own.feed, "--name", "me"], "own key"),
        (["remove", "nobody"], "no trusted key"),
    ]:
        result = run("trust", *args, "--data-dir", str(data))
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert "Traceback" not in result.output
    removed = run("trust", "remove", "packer-gw", "--data-dir", str(data))
    assert removed.exit_code == 0, removed.output
    assert trust_for(data).entries == ()


# -- the two forgeries -------------------------------------------------------------------------


def _rechain(real: Path, forged: Path) -> NodeKey:
    """The real feed's history rewritten under a new key: alarms dropped, lot checks passed."""
    new = NodeKey.generate()
    with Ledger.open(forged, new) as led:
        for entry in _entries(real):
            if entry.type in ("checkpoint", "alarm"):
                continue
            body = dict(entry.body)
            if entry.type == "lot.end":
                body["checks"] = [{**c, "passed": True} for c in body["checks"]]
            led.append(entry.type, body, ts=_epoch(entry.ts), lots=entry.lots, actor=entry.actor)
        led.commit(now=T0 + 4)
    return new


def _epoch(ts: str) -> float:
    from edge.ledger.entry import parse_ts

    return parse_ts(ts)


def test_a_ledger_rechained_under_a_new_key_is_untrusted(node: tuple[Path, NodeKey]) -> None:
    data, own = node
    db = data / "ledger.db"
    forged = data.parent / "forged.db"
    new = _rechain(db, forged)
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{forged}{suffix}")
        if src.exists():
            src.replace(f"{db}{suffix}")
        else:
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    entries = _entries(db)
    assert {e.feed for e in entries} == {new.feed}
    assert "alarm" not in {e.type for e in entries}
    # The chain holds: without a pinned key nothing is wrong with it.
    assert _verify(db).ok
    report = _verify(db, trusted={own.feed: "self"})
    assert [(p.feed, p.kind) for p in report.problems] == [(new.feed, Kind.UNTRUSTED)]
    copy = data.parent / "audit" / "ledger.db"  # an auditor's copy: no key file beside it
    copy.parent.mkdir()
    sqlite3.connect(db).execute("VACUUM INTO ?", (str(copy),)).connection.close()
    plain = run("ledger", "verify", "--db", str(copy))
    assert plain.exit_code == 0
    assert "trust: not checked" in plain.output
    pinned = run("ledger", "verify", "--db", str(copy), "--trust", own.feed, "--json")
    assert pinned.exit_code == 1, pinned.output
    payload = orjson.loads(pinned.output)
    assert [(p["feed"], p["kind"]) for p in payload["problems"]] == [(new.feed, "untrusted feed")]
    assert payload["feeds"][0]["trusted_as"] is None
    # The node's data directory pins its own key: verify there needs no option at all.
    beside = run("ledger", "verify", "--db", str(db))
    assert beside.exit_code == 1
    assert "untrusted feed" in beside.output
    assert new.feed in beside.output
    # And the node itself refuses to write into it.
    with pytest.raises(StorageError, match="belongs to feed"):
        Ledger.open(db, own)


def _forge_second_feed(db: Path) -> NodeKey:
    """A forged feed (another key) claiming the lot passed, added to the real file."""
    rogue = NodeKey.generate()
    side = db.with_name("rogue.db")
    with Ledger.open(side, rogue) as led:
        led.append("node.start", {"node_id": "filler-gw", "site": "plant-1"}, ts=T0)
        led.append("lot.start", {"lot": LOT, "station": "filler-1"}, ts=T0 + 1, lots=[LOT])
        led.append(
            "lot.end",
            {"lot": LOT, "station": "filler-1", "checks": [{"rule": "fill-mean", "passed": True}]},
            ts=T0 + 3,
            lots=[LOT],
        )
        led.commit(now=T0 + 4)
    conn = sqlite3.connect(db)
    conn.execute("ATTACH DATABASE ? AS src", (str(side),))
    for table in ("entries", "entry_lots", "checkpoints"):
        conn.execute(f"INSERT INTO main.{table} SELECT * FROM src.{table}")
    conn.commit()
    conn.close()
    return rogue


def test_a_forged_second_feed_is_untrusted_and_not_traced(node: tuple[Path, NodeKey]) -> None:
    data, own = node
    db = data / "ledger.db"
    rogue = _forge_second_feed(db)
    assert _verify(db).ok  # a well-formed feed of its own key
    result = run("ledger", "verify", "--db", str(db), "--trust", str(data / "node.key.pub"),
                 "--json")  # fmt: skip
    assert result.exit_code == 1
    payload = orjson.loads(result.output)
    assert [(p["feed"], p["kind"]) for p in payload["problems"]] == [(rogue.feed, "untrusted feed")]
    # trace: the trust beside the database (the node's key) shows the real station only
    trace = run("ledger", "trace", LOT, "--db", str(db), "--json")
    assert trace.exit_code == 0, trace.output
    document = orjson.loads(trace.stdout)
    assert [(s["feed"], s["feed_name"]) for s in document["stations"]] == [(own.feed, "self")]
    assert "1 untrusted feed(s) also name lot" in trace.stderr
    both = run("ledger", "trace", LOT, "--db", str(db), "--all-feeds", "--json")
    stations = orjson.loads(both.stdout)["stations"]
    assert {s["feed"] for s in stations} == {own.feed, rogue.feed}
    # the text table names each station's feed: its trust name, else its full id
    table = CliRunner().invoke(
        main, ["ledger", "trace", LOT, "--db", str(db), "--all-feeds"], env={"COLUMNS": "300"}
    )
    assert "self" in table.output
    assert rogue.feed in table.output
    # exports follow the same rule
    csv_out = run("ledger", "export", "--lot", LOT, "--format", "csv", "--db", str(db))
    assert csv_out.exit_code == 0, csv_out.output
    assert own.feed in csv_out.stdout
    assert rogue.feed not in csv_out.stdout
    epcis = run("ledger", "export", "--lot", LOT, "--format", "epcis", "--db", str(db),
                "--all-feeds")  # fmt: skip
    assert rogue.feed in epcis.stdout
    # once trusted by name, it is shown, named
    add = run("trust", "add", rogue.feed, "--name", "line2-gw", "--data-dir", str(data))
    assert add.exit_code == 0, add.output
    named = orjson.loads(run("ledger", "trace", LOT, "--db", str(db), "--json").stdout)
    assert {s["feed_name"] for s in named["stations"]} == {"self", "line2-gw"}
    assert run("ledger", "verify", "--db", str(db)).exit_code == 0


def test_verify_with_the_nodes_config(node: tuple[Path, NodeKey]) -> None:
    data, own = node
    toml = data.parent / "node.toml"
    toml.write_text('[node]\nid = "filler-gw"\ndata_dir = "data"\n')
    ok = run("ledger", "verify", "-c", str(toml), "--json")
    assert ok.exit_code == 0, ok.output
    payload = orjson.loads(ok.output)
    assert payload["trust"]["checked"] is True
    assert payload["feeds"][0]["trusted_as"] == "filler-gw"
    assert payload["owner"] == own.feed
    _forge_second_feed(data / "ledger.db")
    bad = run("ledger", "verify", "-c", str(toml))
    assert bad.exit_code == 1
    assert "untrusted feed" in bad.output


def test_verify_trust_option_errors_are_one_line(node: tuple[Path, NodeKey]) -> None:
    data, _ = node
    result = run("ledger", "verify", "--db", str(data / "ledger.db"), "--trust", "nokey")
    assert result.exit_code == 2
    assert "not a key" in result.output
    assert "Traceback" not in result.output


def test_an_owner_row_switched_to_another_feed_is_named(node: tuple[Path, NodeKey]) -> None:
    """Switching the owner row would take the node's readings out of the readings check; the
    node's key (beside the database, or -c) says whose file it is."""
    data, own = node
    db = data / "ledger.db"
    rogue = _forge_second_feed(db)
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER owner_no_update")
    conn.execute("UPDATE owner SET feed = ?", (rogue.feed,))
    conn.commit()
    conn.close()
    result = run("ledger", "verify", "--db", str(db), "--json")
    assert result.exit_code == 1
    details = [p["detail"] for p in orjson.loads(result.output)["problems"]]
    assert (
        f"the database belongs to feed {rogue.feed}, not to this node's key {own.feed}" in details
    )


def test_edge_run_refuses_a_database_of_another_key(node: tuple[Path, NodeKey]) -> None:
    """The real process: one line, exit 1, nothing written to the file."""
    import shutil
    import subprocess
    import sys
    from importlib import resources

    data, _ = node
    for name in ("node.toml", "tunnel.yaml"):
        with resources.as_file(resources.files("edge.demo") / name) as src:
            shutil.copyfile(src, data.parent / name)
    toml = data.parent / "node.toml"
    toml.write_text(toml.read_text().replace("[ledger]", '[ledger]\nkey_file = "other.key"'))
    create_key_file(data / "other.key")
    before = _entries(data / "ledger.db")
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "run", "-c", str(toml)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "belongs to feed" in lines[0]
    assert "wrong node key, or another node's database" in lines[0]
    assert _entries(data / "ledger.db") == before


# -- forgeries found by examination -------------------------------------------------------------


def test_an_owner_row_naming_a_feed_not_in_the_file_is_named_and_readings_still_checked(
    tmp_path: Path,
) -> None:
    """The owner row switched to a made-up feed and every reading deleted: with only --trust
    (an auditor with the file alone, no node key beside it) this verified."""
    from edge.readings import Reading

    key = NodeKey.generate()
    db = tmp_path / "ledger.db"
    with Ledger.open(db, key) as led:
        led.append("node.start", {"node_id": "filler-gw"}, ts=T0)
        led.append_readings([Reading("temp", T0 + k / 10, 4.0 + k) for k in range(5)])
        led.commit(now=T0 + 1)
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER owner_no_update")
    conn.execute("UPDATE owner SET feed = ?", ("ab" * 32,))
    conn.execute("DELETE FROM reading_data")
    conn.execute("DELETE FROM reading_blocks")
    conn.commit()
    conn.close()
    report = _verify(db, trusted={key.feed: "filler-gw"})
    kinds = {p.kind for p in report.problems}
    assert {Kind.WRONG_OWNER, Kind.MISSING_READINGS} <= kinds, report.problems
    assert {p.kind for p in _verify(db).problems} == {Kind.WRONG_OWNER, Kind.MISSING_READINGS}
    result = run("ledger", "verify", "--db", str(db), "--trust", key.feed)
    assert result.exit_code == 1
    assert "wrong owner" in result.output
    assert "missing readings" in result.output


def test_a_trust_entry_taking_the_nodes_own_name_is_refused(node: tuple[Path, NodeKey]) -> None:
    """A forged feed listed as 'self' (or the node id) would show as this node in every trace."""
    data, own = node
    rogue = NodeKey.generate()
    (data / TRUST_FILE).write_text(f'[[trusted]]\nname = "self"\nkey = "{rogue.feed}"\n')
    with pytest.raises(TrustError, match="takes this node's own name"):
        trust_for(data)
    with pytest.raises(TrustError, match="takes this node's own name"):
        load_trust(data / TRUST_FILE, own=own.feed, own_name="self")
    result = run("ledger", "verify", "--db", str(data / "ledger.db"))
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert "own name" in result.output
    (data / TRUST_FILE).unlink()
    added = run("trust", "add", rogue.feed, "--name", "self", "--data-dir", str(data))
    assert added.exit_code == 1
    assert "this node's own" in added.output
    assert "Traceback" not in added.output
    assert not (data / TRUST_FILE).exists()


def test_a_shared_list_naming_the_nodes_own_key_keeps_the_nodes_name(
    node: tuple[Path, NodeKey],
) -> None:
    data, own = node
    (data / TRUST_FILE).write_text(f'[[trusted]]\nname = "packer-gw"\nkey = "{own.feed}"\n')
    listed = trust_for(data)
    assert listed.names == {own.feed: "self"}


def test_verify_table_shows_every_column_when_piped(node: tuple[Path, NodeKey]) -> None:
    """Piped (80 columns), the 64-digit feed id squeezed the other columns to nothing: the
    table showed no 'UNTRUSTED' beside a forged feed."""
    data, own = node
    rogue = _forge_second_feed(data / "ledger.db")
    result = run("ledger", "verify", "--db", str(data / "ledger.db"))
    assert result.exit_code == 1
    rows = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│")}
    assert "UNTRUSTED" in rows[rogue.feed]
    assert " self " in rows[own.feed]
    assert "trusted as" in result.output
    assert "checkpoints" in result.output
