"""The model contract: defaults, rendering, lot checks, canonical hash."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from edge.rules.expressions import compile_expression
from edge.rules.model import (
    DerivedRule,
    LimitRule,
    Location,
    LotCheck,
    RuleSet,
    Severity,
    StaleRule,
)


def test_rules_are_frozen_and_slotted() -> None:
    rule = LimitRule(id="x", point="p", high=1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.high = 2.0  # type: ignore[misc]
    assert not hasattr(rule, "__dict__")
    assert rule.kind == "limit"
    assert StaleRule.kind == "stale"


def test_severity_rank_orders_by_urgency() -> None:
    assert sorted(Severity, key=lambda s: s.rank) == [
        Severity.LOW,
        Severity.MEDIUM,
        Severity.HIGH,
        Severity.CRITICAL,
    ]


def test_render_fills_own_fields_and_blanks_missing() -> None:
    rule = LimitRule(
        id="t",
        point="tunnel_temp",
        high=8.0,
        unit="degC",
        message="{rule}/{point}: {value} {unit} > {limit} (lot {lot}) {severity}",
    )
    assert rule.render(value=8.4, limit=8.0) == "t/tunnel_temp: 8.4 degC > 8.0 (lot ) medium"
    assert rule.render(value=1, limit=2, lot="L1", point="other") == (
        "t/other: 1 degC > 2 (lot L1) medium"
    )


@pytest.mark.parametrize(
    ("op", "actual", "holds"),
    [
        (">=", 1.33, True),
        (">=", 1.3299, False),
        (">", 1.33, False),
        ("<=", 1.33, True),
        ("<", 1.33, False),
        ("==", 1.33, True),
        ("!=", 1.33, False),
        (">=", math.nan, False),
        ("!=", math.nan, False),
    ],
)
def test_lot_check_boundaries(op: str, actual: float, holds: bool) -> None:
    assert LotCheck(stat="cpk", op=op, value=1.33).holds(actual) is holds


def test_hash_ignores_locations_and_rule_order() -> None:
    a = LimitRule(id="a", point="p", high=1.0, location=Location("x.yaml", 3, 5))
    b = StaleRule(id="b", point="p", max_age=5.0)
    a2 = dataclasses.replace(a, location=Location("y.yaml", 9, 1))
    assert RuleSet.build([a, b]).hash == RuleSet.build([b, a2]).hash
    assert RuleSet.build([a, b]).hash != RuleSet.build([a, b], lot="lot_code").hash
    assert RuleSet.build([a]).hash != RuleSet.build([dataclasses.replace(a, high=1.0000001)]).hash


def test_canonical_bytes_are_sorted_compact_json_with_floats_as_text() -> None:
    d = DerivedRule(id="d", point="q", expression=compile_expression("p*2"))
    data = json.loads(RuleSet.canonical_bytes([d, LimitRule(id="a", point="q", high=2.5)], None))
    assert [r["id"] for r in data["rules"]] == ["a", "d"]
    assert data["rules"][0]["high"] == "2.5"
    assert data["rules"][1]["expression"] == "p * 2"
    assert data["version"] == 1
    assert data["lot"] is None


def test_input_points_excludes_derived_and_includes_lot() -> None:
    rs = RuleSet.build(
        [
            DerivedRule(id="d", point="q", expression=compile_expression("p + r")),
            LimitRule(id="a", point="q", high=1.0),
            StaleRule(id="s", point="z"),
        ],
        lot="lot_code",
    )
    assert rs.input_points() == {"p", "r", "z", "lot_code"}
    assert [r.id for r in rs.derived] == ["d"]
