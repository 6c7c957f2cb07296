"""``edge.ledger.query`` and ``edge ledger query`` on a real two-gateway ledger."""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ledger_scenario as sc
import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.cli import main
from edge.errors import ConfigError, StorageError
from edge.ledger.entry import parse_entry
from edge.ledger.query import (
    EntryFilter,
    StoredEntry,
    entries_by_id,
    load_stations,
    open_ledger_db,
    parse_time,
    query_entries,
    summarize,
)

_scenario_module = Path(__file__).with_name("test_query_scenario.py")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return sc.build(tmp_path_factory.mktemp("query") / "ledger.db")


@pytest.fixture(scope="module")
def everything(scenario: Any) -> list[StoredEntry]:
    """Every entry, decoded independently of query.py (the oracle for the filters)."""
    conn = sqlite3.connect(scenario.db)
    rows = conn.execute("SELECT feed, seq, id, raw FROM entries").fetchall()
    conn.close()
    out = []
    for feed, seq, entry_id, raw in rows:
        parsed = parse_entry(raw)
        assert parsed.id == entry_id
        out.append(StoredEntry.from_row(feed, seq, entry_id, raw))
    return out


def run(*args: str) -> Any:
    return CliRunner().invoke(main, ["ledger", *args], catch_exceptions=False)


def test_filter_by_type_lot_and_node(scenario: Any) -> None:
    conn = open_ledger_db(scenario.db)
    stations = load_stations(conn, every_feed=True)
    alarms = query_entries(conn, EntryFilter(type="alarm"))
    assert [a.body["event"] for a in alarms] == ["activated", "cleared"]
    lot = query_entries(conn, EntryFilter(lot=sc.LOT))
    assert [e.type for e in lot] == [
        "lot.start",
        "alarm",
        "alarm",
        "lot.end",
        "lot.start",
        "lot.end",
    ]
    assert [e.ts for e in lot] == sorted(e.ts for e in lot)
    packer = query_entries(conn, EntryFilter(feeds=frozenset(stations.feeds_matching("packer-gw"))))
    assert {e.feed for e in packer} == {scenario.packer}
    assert stations.feeds_matching("plant-1") == {scenario.filler, scenario.packer}
    assert stations.feeds_matching(scenario.filler[:10]) == {scenario.filler}
    assert stations.feeds_matching("nobody") == set()


def test_entries_by_id_finds_exactly_the_ids_asked_for(
    scenario: Any, everything: list[StoredEntry]
) -> None:
    conn = open_ledger_db(scenario.db)
    picked = everything[:: max(1, len(everything) // 7)]
    unknown = "0" * 64
    found = entries_by_id(conn, [*(e.id for e in picked), unknown, picked[0].id])
    assert found == {e.id: e for e in picked}
    assert entries_by_id(conn, []) == {}


def test_time_window_and_limit(scenario: Any) -> None:
    conn = open_ledger_db(scenario.db)
    since = "2026-11-23T08:02:30.000000Z"
    until = "2026-11-23T08:03:00.000000Z"
    window = query_entries(conn, EntryFilter(since=since, until=until))
    assert [e.ts for e in window] == [
        "2026-11-23T08:02:30.000000Z",
        "2026-11-23T08:02:40.000000Z",
        "2026-11-23T08:02:41.000000Z",
        "2026-11-23T08:02:50.000000Z",
    ]
    newest = query_entries(conn, EntryFilter(limit=2, newest_first=True))
    # the newest: carol's late acknowledgement two days on, and the checkpoint covering it
    assert [(e.type, e.actor) for e in newest] == [("checkpoint", ""), ("alarm.ack", "carol")]


_TYPES = ["alarm", "alarm.ack", "lot.start", "lot.end", "checkpoint", "rules.change", "nothing"]
_TIMES = [
    None,
    "2026-11-23T08:00:00.000000Z",
    "2026-11-23T08:02:40.000000Z",
    "2026-11-25T00:00:00Z",
]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    type_=st.sampled_from([None, *_TYPES]),
    lot=st.sampled_from([None, sc.LOT, "L-OTHER", "L-NONE"]),
    feed=st.sampled_from([None, "filler", "packer"]),
    since=st.sampled_from(_TIMES),
    until=st.sampled_from(_TIMES),
    limit=st.sampled_from([None, 1, 3, 100]),
    newest=st.booleans(),
)
def test_query_matches_a_plain_python_filter(
    scenario: Any,
    everything: list[StoredEntry],
    type_: str | None,
    lot: str | None,
    feed: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
    newest: bool,
) -> None:
    feeds = None if feed is None else frozenset({getattr(scenario, feed)})
    expected = [
        e
        for e in everything
        if (type_ is None or e.type == type_)
        and (lot is None or lot in e.lots)
        and (feeds is None or e.feed in feeds)
        and (since is None or e.ts >= since)
        and (until is None or e.ts < until)
    ]
    expected.sort(key=lambda e: (e.ts, e.feed, e.seq), reverse=newest)
    conn = open_ledger_db(scenario.db)
    got = query_entries(conn, EntryFilter(type_, lot, feeds, since, until, limit, newest))
    conn.close()
    assert [e.id for e in got] == [e.id for e in expected[:limit]]


def test_parse_time_forms() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert parse_time("2026-11-23", now) == "2026-11-23T00:00:00.000000Z"
    assert parse_time("2026-11-23T10:31:40Z", now) == "2026-11-23T10:31:40.000000Z"
    assert parse_time("2026-11-23 11:31:40.5+01:00", now) == "2026-11-23T10:31:40.500000Z"
    assert parse_time("2h", now) == "2026-11-23T10:00:00.000000Z"
    assert parse_time("1d", now) == "2026-11-22T12:00:00.000000Z"
    with pytest.raises(ConfigError, match=r"--since: 'last tuesday' is neither"):
        parse_time("last tuesday", now, "--since")


def test_summaries_name_what_happened(scenario: Any) -> None:
    e = {k: StoredEntry.from_row(v.feed, v.seq, v.id, v.raw) for k, v in scenario.entries.items()}
    assert summarize(e["a_start"]).startswith("node filler-gw at plant-1 started")
    assert "fill_weight = 498.2 g (limit 499.0)" in summarize(e["a_alarm_on"])
    assert summarize(e["a_ack"]).startswith("fill_weight_low acknowledged by alice")
    assert summarize(e["b_lot_end"]).endswith("1 points, 0/1 checks passed")
    assert summarize(e["b_correction"]).endswith("case scale was not tared")


def test_open_refuses_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no such ledger database"):
        open_ledger_db(tmp_path / "absent.db")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t(x)").connection.commit()
    with pytest.raises(StorageError, match="not an edge-qc ledger"):
        open_ledger_db(other)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="cannot read ledger database"):
        open_ledger_db(junk)


def test_cli_json_lines(scenario: Any) -> None:
    result = run(
        "query", "--db", str(scenario.db), "--lot", sc.LOT, "--node", "filler-gw", "--json"
    )
    assert result.exit_code == 0, result.output
    rows = [orjson.loads(line) for line in result.output.splitlines()]
    assert [r["type"] for r in rows] == ["lot.start", "alarm", "alarm", "lot.end"]
    assert {r["node"] for r in rows} == {"filler-gw"}
    assert rows[1]["body"]["value"] == "498.2"
    assert rows[1]["id"] == scenario.entries["a_alarm_on"].id


def test_cli_csv_parses_back(scenario: Any) -> None:
    result = run("query", "--db", str(scenario.db), "--type", "lot.end", "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [(r["node"], r["lots"]) for r in rows] == [("filler-gw", sc.LOT), ("packer-gw", sc.LOT)]
    assert all(datetime.fromisoformat(r["ts"]).tzinfo is not None for r in rows)


def test_cli_table_and_sort(scenario: Any) -> None:
    result = run("query", "--db", str(scenario.db), "--type", "lot.start", "--sort", "node")
    assert result.exit_code == 0, result.output
    assert "3 entries" in result.output
    lines = [line for line in result.output.splitlines() if "lot.start" in line]
    nodes = [line.split("│")[2].strip() for line in lines]
    assert nodes == sorted(nodes) == ["filler-gw", "filler-gw", "packer-gw"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--since", "soonish"], 2, "--since: 'soonish' is neither"),
        (["--node", "nobody"], 1, "--node 'nobody': no node, site or feed key matches"),
        (["--json", "--csv"], 2, "--json and --csv exclude each other"),
        (["--limit", "0"], 2, "--limit"),
    ],
)
def test_cli_errors_are_one_line(scenario: Any, args: list[str], code: int, message: str) -> None:
    result = CliRunner().invoke(main, ["ledger", "query", "--db", str(scenario.db), *args])
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output
    if args[0] != "--limit":  # click's own range check prints its usage lines
        assert len(result.output.strip().splitlines()) == 1


def test_cli_missing_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["ledger", "query", "--db", str(tmp_path / "nope.db")])
    assert result.exit_code == 1
    assert result.output.strip() == f"edge: {tmp_path / 'nope.db'}: no such ledger database"


def test_node_matches_a_feed_without_node_start(tmp_path: Path) -> None:
    from edge.ledger.keys import NodeKey
    from edge.ledger.store import Ledger

    db = tmp_path / "ledger.db"
    keys = [NodeKey.generate() for _ in range(3)]
    for n, key in enumerate(keys):  # one file per node (a node writes only its own), then merged
        own = db if n == 0 else tmp_path / f"node{n}.db"
        with Ledger.open(own, key) as led:
            led.append("lot.start", {"lot": "Z", "station": "s"}, ts=sc.T0, lots=["Z"])
            led.commit(now=sc.T0 + 1)
        if own != db:
            sc.copy_feed(own, db)
    conn = open_ledger_db(db)
    stations = load_stations(conn, every_feed=True)
    assert set(stations.starts) == {k.feed for k in keys}
    assert stations.at(keys[0].feed).name == keys[0].feed[:12]
    result = run("query", "--db", str(db), "--node", keys[1].feed[:8], "--json")
    assert result.exit_code == 0, result.output
    rows = [orjson.loads(line) for line in result.output.splitlines()]
    assert {r["feed"] for r in rows} == {keys[1].feed}
    assert [r["type"] for r in rows] == ["lot.start"]  # checkpoints hidden by default
    result = run("query", "--db", str(db), "--node", keys[1].feed[:8], "--json", "--checkpoints")
    assert [orjson.loads(line)["type"] for line in result.output.splitlines()] == [
        "lot.start",
        "checkpoint",
    ]
    empty = tmp_path / "empty.db"
    with Ledger.open(empty):
        pass
    assert load_stations(open_ledger_db(empty), every_feed=True).starts == {}


def test_summary_of_a_rate_or_stale_alarm_names_what_was_measured() -> None:
    def alarm(kind: str, value: str, unit: str) -> StoredEntry:
        body = {"rule": "r", "kind": kind, "point": "tunnel_temp", "event": "activated",
                "from": "normal", "to": "active_unack", "value": value, "limit": "2.0",
                "unit": unit, "severity": "high"}  # fmt: skip
        return StoredEntry("0" * 64, "f" * 64, 3, None, "2026-11-23T00:00:00Z", "alarm", "", (),
                           body, ())  # fmt: skip

    assert "tunnel_temp rate = 2.76 degC per 1m (limit 2.0)" in summarize(
        alarm("rate", "2.76", "degC per 1m")
    )
    assert "tunnel_temp age = 30.0 s (limit 2.0)" in summarize(alarm("stale", "30.0", "s"))
    assert "tunnel_temp = 8.2 degC (limit 2.0)" in summarize(alarm("limit", "8.2", "degC"))


def test_summary_of_a_config_change_names_both_hashes() -> None:
    def change(previous: str | None) -> StoredEntry:
        body = {"hash": "ab" * 32, "file": "/etc/edge/node.toml", "previous": previous}
        return StoredEntry(
            "0" * 64, "f" * 64, 1, None, "2026-11-23T00:00:00Z", "config.change", "", (), body, ()
        )

    assert summarize(change(None)).endswith("in force: abababababab… (first run)")
    assert "changed from cdcdcdcdcdcd… to abababababab…" in summarize(change("cd" * 32))


def test_parse_time_keeps_the_fixed_width_form_at_the_ends_of_the_calendar() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert parse_time("0999-01-01", now) == "0999-01-01T00:00:00.000000Z"
    assert parse_time("0001-01-01T01:00+01:00", now) == "0001-01-01T00:00:00.000000Z"
    assert parse_time("9999-12-31T23:59:59.999999Z", now) == "9999-12-31T23:59:59.999999Z"
    assert parse_time("0999-01-01", now) < parse_time("2026-01-01", now)  # ordered as text
    for text in ("0001-01-01T00:00+01:00", "9999-12-31T23:30-01:00", "999999d"):
        with pytest.raises(ConfigError, match=re.escape(f"--since: '{text}' is out of range")):
            parse_time(text, now, "--since")
