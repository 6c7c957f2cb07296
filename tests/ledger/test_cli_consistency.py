"""The same flags mean the same across ``edge ledger ...``: env, --json errors, repeats, lots.

Against the real two-gateway ledger of ``ledger_scenario`` (written through the real Ledger);
the oracle for the accumulated filters is the raw table read with sqlite3 independently.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import ledger_scenario as sc
import pytest
from click.testing import CliRunner

from edge.cli import main


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return sc.build(tmp_path_factory.mktemp("consistency") / "ledger.db")


def _edge(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def _raw_ids(db: Path, where: str, *params: str) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute(f"SELECT id FROM entries WHERE {where}", params)}
    finally:
        conn.close()


@pytest.mark.parametrize(
    "args",
    [
        ["ledger", "verify", "--json"],
        ["ledger", "query", "--json"],
        ["ledger", "trace", sc.LOT, "--json"],
        ["ledger", "export", "--lot", sc.LOT, "--format", "csv"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_every_db_option_reads_edge_ledger_db(scenario: Any, args: list[str]) -> None:
    result = _edge(*args, env={"EDGE_LEDGER_DB": str(scenario.db)})
    assert result.exit_code == 0, result.output
    assert result.output.strip()
    # and --db still wins over the environment
    missing = _edge(
        *args, "--db", "/nonexistent/ledger.db", env={"EDGE_LEDGER_DB": str(scenario.db)}
    )
    assert missing.exit_code != 0


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["ledger", "verify", "--json", "--db", "/nonexistent/ledger.db"], 2),
        (["ledger", "query", "--json", "--db", "/nonexistent/ledger.db"], 1),
        (["ledger", "trace", "L1", "--json", "--db", "/nonexistent/ledger.db"], 1),
        (["ledger", "query", "--json", "--since", "yesterday-ish"], 2),
        (["ledger", "query", "--json", "--limit", "0"], 2),
    ],
    ids=lambda a: " ".join(a) if isinstance(a, list) else str(a),
)
def test_errors_are_json_with_json_and_one_line_without(args: list[str], code: int) -> None:
    as_json = _edge(*args)
    assert as_json.exit_code == code
    error = json.loads(as_json.stdout)
    assert error["ok"] is False
    assert error["error"]
    assert "\n" not in error["error"]
    text = _edge(*[a for a in args if a != "--json"])
    assert text.exit_code == code
    assert text.stdout == ""
    assert text.stderr.count("\n") == 1
    assert text.stderr.startswith("edge: ")


def test_repeated_type_and_lot_accumulate(scenario: Any) -> None:
    result = _edge("ledger", "query", "--db", str(scenario.db), "--json",
                   "--type", "alarm", "--type", "alarm.ack")  # fmt: skip
    assert result.exit_code == 0, result.output
    got = {json.loads(line)["id"] for line in result.stdout.splitlines()}
    want = _raw_ids(scenario.db, "type IN (?, ?)", "alarm", "alarm.ack")
    assert got == want
    assert len({json.loads(line)["type"] for line in result.stdout.splitlines()}) == 2
    both = _edge("ledger", "query", "--db", str(scenario.db), "--json",
                 "--lot", sc.LOT, "--lot", "L-OTHER")  # fmt: skip
    assert both.exit_code == 0, both.output
    ids = [json.loads(line)["id"] for line in both.stdout.splitlines()]
    assert len(ids) == len(set(ids))  # an entry naming both lots is listed once
    conn = sqlite3.connect(scenario.db)
    want_lots = {
        r[0]
        for r in conn.execute(
            "SELECT e.id FROM entries e JOIN entry_lots l ON l.feed = e.feed AND l.seq = e.seq "
            "WHERE l.lot IN (?, ?)",
            (sc.LOT, "L-OTHER"),
        )
    }
    conn.close()
    assert set(ids) == want_lots
    assert len(want_lots) > len(_raw_ids(scenario.db, "id IN (SELECT e.id FROM entries e JOIN entry_lots l ON l.feed = e.feed AND l.seq = e.seq WHERE l.lot = ?)", sc.LOT))  # fmt: skip


@pytest.mark.parametrize("command", ["query", "trace", "export"])
def test_an_unknown_lot_gets_did_you_mean(scenario: Any, command: str) -> None:
    typo = sc.LOT.lower().replace("a", "b")  # "l-2611-b": wrong case and one letter off
    args = {
        "query": ["query", "--lot", typo],
        "trace": ["trace", typo],
        "export": ["export", "--lot", typo, "--format", "csv"],
    }[command]
    result = _edge("ledger", *args, "--db", str(scenario.db))
    assert result.exit_code == 1
    assert result.stderr == (
        f"edge: lot {typo!r}: no entries in {scenario.db} (did you mean {sc.LOT!r}?)\n"
    )


def test_an_unknown_lot_far_from_all_gets_no_guess(scenario: Any) -> None:
    result = _edge("ledger", "trace", "ZZZZZZZZZZZZ", "--db", str(scenario.db))
    assert result.exit_code == 1
    assert result.stderr == f"edge: lot 'ZZZZZZZZZZZZ': no entries in {scenario.db}\n"


def test_usage_errors_are_one_line_with_a_help_hint() -> None:
    result = _edge("ledger", "query", "--tpye", "alarm")
    assert result.exit_code == 2
    assert result.stderr == (
        "edge: No such option '--tpye'. Did you mean '--type'? (try 'main ledger query --help')\n"
    )


def test_a_mistyped_type_gets_did_you_mean_and_an_absent_one_an_empty_answer(
    scenario: Any,
) -> None:
    typo = _edge("ledger", "query", "--db", str(scenario.db), "--type", "alarms")
    assert typo.exit_code == 2
    assert typo.stderr == "edge: --type 'alarms': no entries of this type (did you mean 'alarm'?)\n"
    absent = _edge("ledger", "query", "--db", str(scenario.db), "--type", "config.change", "--json")
    assert absent.exit_code == 0
    assert absent.stdout == ""
