"""The disk budget's plan (oldest blocks first, until the bound is met) and how verify judges a
``budget`` prune: accepted when it names the limit it enforced, named when it does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.ledger.keys import NodeKey
from edge.ledger.readings_store import PRUNE, plan_budget_prune
from edge.ledger.store import Ledger
from edge.ledger.verify import Kind, verify_db
from edge.readings import Reading

T0 = 1_795_000_000.0


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    led = Ledger.open(tmp_path / "l.db", NodeKey.generate())
    for b in range(5):
        led.append_readings([Reading("w", T0 + b * 10 + i / 10, 500.0 + i * b) for i in range(40)])
    led.commit(now=T0 + 60)
    return led


def _sizes(led: Ledger) -> list[int]:
    return [b for (b,) in led.conn.execute("SELECT bytes FROM reading_blocks ORDER BY block")]


def test_max_bytes_prunes_the_oldest_until_the_rest_fits(ledger: Ledger) -> None:
    sizes = _sizes(ledger)
    assert all(s > 0 for s in sizes)
    assert plan_budget_prune(ledger.conn, max_bytes=sum(sizes)) is None
    plan = plan_budget_prune(ledger.conn, max_bytes=sum(sizes[2:]))
    assert plan is not None
    assert plan.blocks == (1, 2)
    assert (plan.body["reason"], plan.body["max_bytes"], plan.body["stored_bytes"]) == (
        "budget", sum(sizes[2:]), sum(sizes),
    )  # fmt: skip
    assert plan.body["readings"] == 80
    ledger.close()


def test_a_free_space_floor_prunes_what_makes_it_up(ledger: Ledger) -> None:
    sizes = _sizes(ledger)
    assert plan_budget_prune(ledger.conn, min_free_bytes=1000, free_bytes=5000) is None
    plan = plan_budget_prune(ledger.conn, min_free_bytes=1000, free_bytes=1000 - sizes[0] - 1)
    assert plan is not None
    assert plan.blocks == (1, 2)  # one block frees too little by a byte
    assert (plan.body["min_free_bytes"], plan.body["free_bytes"]) == (1000, 999 - sizes[0])
    ledger.close()


def test_verify_accepts_a_budget_prune_that_names_its_limit(ledger: Ledger) -> None:
    plan = plan_budget_prune(ledger.conn, max_bytes=sum(_sizes(ledger)[3:]))
    assert plan is not None
    ledger.append(PRUNE, plan.body, ts=T0 + 70)
    ledger.commit(now=T0 + 70)
    ledger.delete_blocks(plan.blocks)
    report = verify_db(ledger.conn)
    assert report.ok, report.problems
    assert report.feeds[0].pruned == {"budget": 3}
    ledger.close()


def test_verify_names_a_budget_prune_without_a_limit(ledger: Ledger) -> None:
    plan = plan_budget_prune(ledger.conn, max_bytes=0)
    assert plan is not None
    body = {k: v for k, v in plan.body.items() if k != "max_bytes"}
    ledger.append(PRUNE, body, ts=T0 + 70)
    ledger.commit(now=T0 + 70)
    ledger.delete_blocks(plan.blocks)
    problems = verify_db(ledger.conn).problems
    assert {p.kind for p in problems} == {Kind.MISSING_READINGS}
    assert len(problems) == 5
    assert "names no limit" in problems[0].detail
    ledger.close()
