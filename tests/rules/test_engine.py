"""Each rule kind, with the boundary values (exactly at the limit, exactly at the delay)."""

from __future__ import annotations

import math
import statistics

import pytest

from edge.readings import Quality, Reading
from edge.rules import AlarmState, Engine, LotEvent, RuleSet, Transition
from edge.rules.expressions import compile_expression
from edge.rules.model import (
    DerivedRule,
    LimitRule,
    LotCheck,
    LotRule,
    QualityRule,
    RateRule,
    SpcRule,
    StaleRule,
)


def run(
    rules: list, readings: list[Reading], now: float | None = None, lot: str | None = None
) -> list:
    eng = Engine(RuleSet.build(rules, lot=lot))
    st = eng.initial_state()
    out = []
    for r in readings:
        st, ev = eng.step(st, [r], r.ts)
        out += ev
    if now is not None:
        st, ev = eng.step(st, [], now)
        out += ev
    return out


def rd(ts: float, v: object, point: str = "t", q: Quality = Quality.GOOD) -> Reading:
    return Reading(point, ts, v, q)  # type: ignore[arg-type]


def ev(events: list) -> list[tuple[str, float]]:
    return [(e.event, e.ts) for e in events if isinstance(e, Transition)]


# ---- limits, deadband, delays ------------------------------------------------------------------
def test_exactly_at_the_limit_is_in_spec() -> None:
    rules = [LimitRule(id="x", point="t", low=2.0, high=8.0)]
    assert ev(run(rules, [rd(0, 8.0), rd(1, 2.0)])) == []
    assert ev(run(rules, [rd(0, 8.000001), rd(1, 5.0), rd(2, 1.999999)])) == [
        ("activated", 0),
        ("cleared", 1),
        ("activated", 2),
    ]


def test_deadband_boundary() -> None:
    rules = [LimitRule(id="x", point="t", high=8.0, deadband=0.5)]
    # 7.6 is below the limit but not back inside by the deadband: stays active
    assert ev(run(rules, [rd(0, 9.0), rd(1, 7.6)])) == [("activated", 0)]
    # exactly high - deadband clears
    assert ev(run(rules, [rd(0, 9.0), rd(1, 7.6), rd(2, 7.5)])) == [
        ("activated", 0),
        ("cleared", 2),
    ]
    low = [LimitRule(id="x", point="t", low=2.0, deadband=0.5)]
    assert ev(run(low, [rd(0, 1.0), rd(1, 2.4), rd(2, 2.5)])) == [("activated", 0), ("cleared", 2)]


def test_on_delay_exactly_at_the_delay_fires() -> None:
    rules = [LimitRule(id="x", point="t", high=8.0, on_delay=30.0)]
    assert ev(run(rules, [rd(0, 9.0)], now=29.999)) == []
    assert ev(run(rules, [rd(0, 9.0)], now=30.0)) == [("activated", 30.0)]
    # a reading stamped exactly at the due time comes after the timer: it fired already
    out = run(rules, [rd(0, 9.0), rd(30, 5.0)])
    assert ev(out) == [("activated", 30.0), ("cleared", 30)]
    # condition gone before the delay: nothing, and the timer restarts
    assert ev(run(rules, [rd(0, 9.0), rd(29, 5.0), rd(30, 9.0)], now=59.0)) == []
    assert ev(run(rules, [rd(0, 9.0), rd(29, 5.0), rd(30, 9.0)], now=60.0)) == [("activated", 60.0)]


def test_delayed_activation_reports_last_value_before_due() -> None:
    rules = [LimitRule(id="x", point="t", high=8.0, on_delay=10.0)]
    out = run(rules, [rd(0, 9.0), rd(5, 9.7), rd(12, 9.9)])
    t = next(e for e in out if isinstance(e, Transition))
    assert (t.ts, t.value, t.limit) == (10.0, 9.7, 8.0)


def test_off_delay_exactly_at_the_delay_clears() -> None:
    rules = [LimitRule(id="x", point="t", high=8.0, off_delay=5.0)]
    assert ev(run(rules, [rd(0, 9.0), rd(1, 7.0)], now=5.9)) == [("activated", 0)]
    assert ev(run(rules, [rd(0, 9.0), rd(1, 7.0)], now=6.0)) == [("activated", 0), ("cleared", 6.0)]
    # back over the limit during the off-delay: stays active
    assert ev(run(rules, [rd(0, 9.0), rd(1, 7.0), rd(3, 9.0)], now=20.0)) == [("activated", 0)]


def test_value_already_over_the_limit_at_start_fires() -> None:
    rules = [LimitRule(id="x", point="t", high=8.0, on_delay=10.0)]
    assert ev(run(rules, [rd(100, 12.0)], now=110.0)) == [("activated", 110.0)]


def test_bad_quality_readings_do_not_move_value_rules() -> None:
    rules = [LimitRule(id="x", point="t", high=8.0)]
    assert (
        ev(
            run(
                rules, [rd(0, 9.0, q=Quality.STALE), rd(1, None, q=Quality.COMM_FAIL), rd(2, "n/a")]
            )
        )
        == []
    )


def test_out_of_order_reading_is_evaluated_at_the_clock() -> None:
    rules = [LimitRule(id="x", point="t", high=8.0)]
    out = run(rules, [rd(10, 5.0), rd(4, 9.0)])
    assert ev(out) == [("activated", 10)]


# ---- rate -----------------------------------------------------------------------------------------
def test_rate_of_change_boundary_and_direction() -> None:
    both = [RateRule(id="r", point="t", max_change=2.0, per=60.0, window=60.0)]
    # exactly 2 per minute is allowed; a little more is not
    assert ev(run(both, [rd(0, 10.0), rd(30, 11.0), rd(60, 12.0)])) == []
    assert ev(run(both, [rd(0, 10.0), rd(60, 12.5)])) == [("activated", 60)]
    assert ev(run(both, [rd(0, 10.0), rd(60, 7.5)])) == [("activated", 60)]
    rise = [RateRule(id="r", point="t", max_change=2.0, per=60.0, window=60.0, direction="rise")]
    assert ev(run(rise, [rd(0, 10.0), rd(60, 7.5)])) == []
    out = run(rise, [rd(0, 10.0), rd(60, 12.5), rd(61, 12.5)])
    # at 61 the reading at 0 has left the window: (12.5 - 12.5) / 1 s
    assert ev(out) == [("activated", 60), ("cleared", 61)]
    t = next(e for e in out if isinstance(e, Transition))
    assert t.value == pytest.approx(2.5)
    assert t.limit == 2.0


def test_rate_window_includes_its_start() -> None:
    r = [RateRule(id="r", point="t", max_change=1.0, per=1.0, window=10.0)]
    # the reading exactly 10 s back is still in the window: (13 - 0) / 10 > 1
    assert ev(run(r, [rd(0, 0.0), rd(10, 13.0)])) == [("activated", 10)]


def test_transitions_carry_the_unit_of_their_value() -> None:
    rules = [
        LimitRule(id="hi", point="t", high=8.0, unit="degC"),
        RateRule(id="rate", point="t", max_change=2.0, per=60.0, window=60.0, unit="degC"),
        StaleRule(id="stale", point="t", max_age=30.0, unit="degC"),
    ]
    out = run(rules, [rd(0, 5.0), rd(60, 9.0), rd(200, 9.0)])
    units = {(e.rule, e.event): e.unit for e in out if isinstance(e, Transition)}
    assert units == {
        ("hi", "activated"): "degC",
        ("rate", "activated"): "degC per 1m",  # 4 degC in a minute, against 2 per minute
        ("stale", "activated"): "s",  # nothing from 60 to 200: 30 s of age is the limit
        ("stale", "cleared"): "s",
        ("rate", "cleared"): "degC per 1m",
    }


def test_lot_transition_unit_follows_the_failing_statistic() -> None:
    def failing(check: LotCheck) -> Transition:
        rules = [LotRule(id="l", point="w", low=495.0, high=505.0, checks=(check,), unit="g")]
        values = [rd(1 + i, v, "w") for i, v in enumerate([500.0, 504.0, 496.0])]
        out = run(rules, [rd(0, "A", "lot"), *values, rd(9, "B", "lot")], lot="lot")
        return next(e for e in out if isinstance(e, Transition))

    assert failing(LotCheck("mean", ">=", 501.0, "mean >= 501")).unit == "g"
    assert failing(LotCheck("cpk", ">=", 1.33, "cpk >= 1.33")).unit == ""
    assert failing(LotCheck("count", ">=", 10, "count >= 10")).unit == ""


# ---- stale and quality ----------------------------------------------------------------------------
def test_stale_boundary() -> None:
    rules = [StaleRule(id="s", point="t", max_age=10.0)]
    # a reading exactly max_age later is in time
    assert ev(run(rules, [rd(0, 1.0), rd(10, 1.0)], now=20.0)) == []
    assert ev(run(rules, [rd(0, 1.0)], now=10.0)) == []
    out = run(rules, [rd(0, 1.0), rd(25, 1.0)])
    assert ev(out) == [("activated", 10.0), ("cleared", 25)]
    t = [e for e in out if isinstance(e, Transition)]
    assert t[1].value == 25.0  # the gap


def test_stale_point_never_seen_counts_from_start() -> None:
    rules = [StaleRule(id="s", point="other", max_age=5.0)]
    assert ev(run(rules, [rd(100, 1.0)], now=105.5)) == [("activated", 105.0)]


def test_quality_rule_duration_boundary() -> None:
    rules = [QualityRule(id="q", point="t", duration=5.0)]
    bad = Quality.COMM_FAIL
    assert ev(run(rules, [rd(0, None, q=bad), rd(4, None, q=bad), rd(4.5, 1.0)], now=20)) == []
    out = run(rules, [rd(0, None, q=bad), rd(5, None, q=bad), rd(6, 1.0)])
    assert ev(out) == [("activated", 5.0), ("cleared", 6)]
    assert ev(run([QualityRule(id="q", point="t")], [rd(0, 1.0, q=Quality.STALE)])) == [
        ("activated", 0)
    ]


# ---- derived --------------------------------------------------------------------------------------
def derived(expr: str, name: str = "d") -> DerivedRule:
    return DerivedRule(id=name, point=name, expression=compile_expression(expr, None))


def test_derived_point_feeds_rules() -> None:
    rules = [derived("a - b"), LimitRule(id="x", point="d", high=1.0)]
    out = run(rules, [rd(0, 5.0, "a"), rd(1, 3.0, "b"), rd(2, 4.5, "b"), rd(3, 6.0, "a")])
    # d is made only once both inputs have a value: 2.0 at t=1, 0.5 at t=2, 1.5 at t=3
    assert ev(out) == [("activated", 1), ("cleared", 2), ("activated", 3)]
    assert [e.value for e in out] == [2.0, 0.5, 1.5]


def test_derived_quality_and_undefined_arithmetic() -> None:
    rules = [
        derived("a / b"),
        QualityRule(id="q", point="d"),
        LimitRule(id="x", point="d", high=1.0),
    ]
    out = run(
        rules, [rd(0, 1.0, "a"), rd(1, 0.0, "b"), rd(2, 4.0, "b"), rd(3, 1.0, "a", Quality.STALE)]
    )
    # 1/0 is NaN -> config_error quality (quality alarm), then 1/4 good, then a stale input
    assert [(e.rule, e.event, e.ts) for e in out] == [
        ("q", "activated", 1),
        ("q", "cleared", 2),
        ("q", "activated", 3),
    ]


# ---- SPC ------------------------------------------------------------------------------------------
def test_spc_given_limits_rule1_and_rule2() -> None:
    rules = [SpcRule(id="s", point="t", center=10.0, sigma=1.0, nelson=(1, 2))]
    out = run(rules, [rd(0, 13.5), rd(1, 10.0)] + [rd(2 + i, 10.5) for i in range(9)])
    assert ev(out) == [("activated", 0), ("cleared", 1), ("activated", 10)]
    assert "Nelson 1" in out[0].message
    assert "Nelson 2" in out[2].message
    assert out[0].limit == 13.0


def test_spc_learns_limits_from_baseline_first() -> None:
    base = [10.0, 11.0, 10.0, 11.0]  # centre 10.5, MRbar 1, sigma 1/1.128
    rules = [SpcRule(id="s", point="t", baseline=4, nelson=(1,))]
    sigma = 1 / 1.128
    far = 10.5 + 3 * sigma + 0.01
    out = run(rules, [rd(i, v) for i, v in enumerate(base)] + [rd(4, far)])
    assert ev(out) == [("activated", 4)]
    assert out[0].limit == pytest.approx(10.5 + 3 * sigma)
    # a far value inside the baseline is not evaluated
    assert ev(run(rules, [rd(0, 100.0), rd(1, 10.0)])) == []


# ---- lots -----------------------------------------------------------------------------------------
def test_lot_boundaries_aggregates_and_checks() -> None:
    rules = [
        LotRule(
            id="fill",
            point="w",
            low=495.0,
            high=505.0,
            checks=(
                LotCheck("mean", ">=", 499.0, "mean >= 499"),
                LotCheck("cpk", ">=", 1.0, "cpk >= 1"),
            ),
        ),
        LimitRule(id="x", point="w", high=503.0),
    ]
    a_vals = [500.0, 501.0, 499.5, 500.5, 499.0]
    b_vals = [497.0, 504.0]
    readings = [rd(0, "A", "lot")] + [rd(1 + i, v, "w") for i, v in enumerate(a_vals)]
    readings += (
        [rd(10, "B", "lot")]
        + [rd(11 + i, v, "w") for i, v in enumerate(b_vals)]
        + [rd(20, "", "lot")]
    )
    out = run(rules, readings, lot="lot")
    lots = [e for e in out if isinstance(e, LotEvent)]
    assert [(e.kind, e.lot, e.ts) for e in lots] == [
        ("lot_start", "A", 0),
        ("lot_end", "A", 10),
        ("lot_start", "B", 10),
        ("lot_end", "B", 20),
    ]
    agg = lots[1].aggregates["w"]
    assert agg.count == 5
    assert agg.mean == pytest.approx(statistics.mean(a_vals))
    assert agg.std == pytest.approx(statistics.stdev(a_vals))
    assert (agg.min, agg.max) == (499.0, 501.0)
    assert lots[1].passed
    cpk_a = min(505.0 - statistics.mean(a_vals), statistics.mean(a_vals) - 495.0) / (
        3 * statistics.stdev(a_vals)
    )
    assert lots[1].checks[1].value == pytest.approx(cpk_a)
    assert not lots[3].passed
    # the limit rule's transition carries the lot; the lot rule fails at B's end
    tr = [e for e in out if isinstance(e, Transition)]
    assert [(e.rule, e.event, e.lot) for e in tr] == [
        ("x", "activated", "B"),
        ("fill", "activated", "B"),
    ]
    assert tr[1].ts == 20
    assert tr[1].limit == 1.0


def test_lot_with_one_reading_has_no_std_and_fails_std_checks() -> None:
    rules = [
        LotRule(
            id="l",
            point="w",
            checks=(LotCheck("std", "<", 1.0, "std < 1"), LotCheck("count", ">=", 1, "count >= 1")),
        )
    ]
    out = run(rules, [rd(0, "A", "lot"), rd(1, 5.0, "w"), rd(2, "B", "lot")], lot="lot")
    end = next(e for e in out if isinstance(e, LotEvent) and e.kind == "lot_end")
    assert end.aggregates["w"].std is None
    assert [(c.stat, c.value, c.passed) for c in end.checks] == [
        ("std", None, False),
        ("count", 1.0, True),
    ]


def test_numerically_hard_lot_aggregates() -> None:
    vals = [74.0 + i * 1e-9 for i in range(1000)]
    rules: list = []
    out = run(
        rules,
        [rd(0, "A", "lot")]
        + [rd(1 + i, v, "w") for i, v in enumerate(vals)]
        + [rd(5000, "B", "lot")],
        lot="lot",
    )
    agg = next(e for e in out if isinstance(e, LotEvent) and e.kind == "lot_end").aggregates["w"]
    assert agg.std == pytest.approx(statistics.stdev(vals), rel=1e-6)
    assert math.isclose(agg.mean, statistics.fmean(vals), rel_tol=1e-15)


# ---- ordering, reload -----------------------------------------------------------------------------
def test_events_are_time_ordered_across_rules() -> None:
    rules = [
        LimitRule(id="slow", point="a", high=1.0, on_delay=5.0),
        LimitRule(id="fast", point="b", high=1.0),
    ]
    eng = Engine(RuleSet.build(rules))
    st = eng.initial_state()
    st, out = eng.step(st, [rd(0, 2.0, "a"), rd(7, 2.0, "b")], 7.0)
    assert [(e.rule, e.ts) for e in out] == [("slow", 5.0), ("fast", 7)]


def test_reload_keeps_unchanged_rules_and_their_timers() -> None:
    keep = LimitRule(id="keep", point="t", high=8.0, on_delay=10.0)
    change = LimitRule(id="change", point="t", high=8.0)
    eng = Engine(RuleSet.build([keep, change]))
    st = eng.initial_state()
    st, out = eng.step(st, [rd(0, 9.0)], 5.0)
    assert [e.rule for e in out] == ["change"]
    new_rs = RuleSet.build(
        [
            keep,
            LimitRule(id="change", point="t", high=8.5),
            LimitRule(id="new", point="t", high=1.0),
        ]
    )
    eng2, st2 = eng.reload(st, new_rs)
    assert eng2.alarm_states(st2) == {
        "keep": AlarmState.NORMAL,
        "change": AlarmState.NORMAL,
        "new": AlarmState.NORMAL,
    }
    st2, out = eng2.step(st2, [], 10.0)
    assert [(e.rule, e.ts) for e in out] == [("keep", 10.0)]  # its on-delay kept running
    assert eng2.alarm_states(st2)["keep"] is AlarmState.ACTIVE_UNACK


@pytest.mark.parametrize(
    "template",
    [
        "{rule}: {point} = {value} {unit} (limit {limit})",
        "braces {{kept}} {point} in {lot}",
        "{value:.1f} > {limit!r} ({severity})",
        "no placeholders",
    ],
)
def test_messages_render_like_the_model(template: str) -> None:
    rule = LimitRule(id="r{x}", point="t", high=1.0, unit="g", message=template)
    out = run([rule], [rd(0, "L1", "lot"), rd(1, 1.25)], lot="lot")
    tr = next(e for e in out if isinstance(e, Transition))
    assert tr.message == rule.render(value=1.25, limit=1.0, lot="L1")


def test_readings_of_points_no_rule_reads_still_move_the_clock_the_count_and_lot_sums() -> None:
    """They skip the rules (the cheap path), not the engine's clock, sequence or lot sums."""
    eng = Engine(RuleSet.build([LimitRule(id="hi", point="t", high=8.0, on_delay=5.0)]))
    st = eng.initial_state()
    st, ev = eng.step(st, [Reading("x", 10.0, 1.0), Reading("t", 2.0, 9.0)], 10.0)
    assert (ev, st.seq, st.clock) == ([], 2, 10.0)
    # the late reading of t counts from the clock x moved (10 s), not from its own 2 s
    st, ev = eng.step(st, [], 14.9)
    assert ev == []
    st, ev = eng.step(st, [], 15.0)
    assert [e.event for e in ev] == ["activated"]

    lots = Engine(RuleSet.build([LimitRule(id="hi", point="t", high=8.0)], lot="lot"))
    st = lots.initial_state()
    readings = [Reading("lot", 0.0, "A"), Reading("x", 1.0, 2.0), Reading("x", 2.0, 4.0)]
    st, _ = lots.step(st, readings, 2.0)
    agg = lots.aggregates(st)["x"]
    assert (st.seq, agg.count, agg.mean, agg.min, agg.max) == (3, 2, 3.0, 2.0, 4.0)
