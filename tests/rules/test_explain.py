"""explain(): why did a rule (not) fire at a given time."""

from __future__ import annotations

import pytest

from edge.readings import Quality, Reading
from edge.rules import RuleSet, explain
from edge.rules.model import LimitRule, QualityRule, SpcRule, StaleRule

RS = RuleSet.build(
    [
        LimitRule(
            id="hi", point="t", high=8.0, deadband=0.5, on_delay=30.0, off_delay=10.0, unit="degC"
        ),
        StaleRule(id="stale", point="t", max_age=60.0),
        SpcRule(id="spc", point="t", baseline=5, nelson=(1, 2)),
        QualityRule(id="q", point="t", duration=5.0),
    ]
)
DATA = [
    Reading("t", 0.0, 5.0),
    Reading("t", 10.0, 9.0),
    Reading("t", 20.0, 9.5),
    Reading("t", 50.0, 7.9),
]


def test_running_on_delay_is_reported() -> None:
    text = explain(RS, DATA, "hi", 22.0)
    assert "hi (limit on t) at 22: normal" in text
    assert "condition true for 12 s of the 30 s on-delay" in text
    assert "no transitions so far" in text


def test_after_firing_and_inside_deadband() -> None:
    text = explain(RS, DATA, "hi", 55.0)
    assert "active_unack" in text
    assert "40 activated" in text
    assert "condition still true (not back inside by the deadband)" in text


def test_readings_after_at_are_ignored() -> None:
    assert "last value 5 degC" in explain(RS, DATA, "hi", 5.0)


def test_stale_spc_and_quality() -> None:
    assert "last reading 40 s ago; allowed 60 s" in explain(RS, DATA, "stale", 90.0)
    assert "learning limits: 4 of 5 baseline readings" in explain(RS, DATA, "spc", 60.0)
    bad = [Reading("t", 0.0, None, Quality.COMM_FAIL)]
    assert "condition true for 2 s of the 5 s on-delay" in explain(RS, bad, "q", 2.0)


def test_unknown_rule() -> None:
    with pytest.raises(KeyError, match="nope"):
        explain(RS, DATA, "nope", 1.0)
