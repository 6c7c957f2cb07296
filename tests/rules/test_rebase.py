"""rebase(state, now): time does not pass for rules while the node is down.

Properties over the shared random rule sets and recordings (_gen): after a restart at ``now``
no event is stamped before ``now``; what counts readings (alarm states, lots, SPC) carries on;
a rebased state survives the JSON round trip; rebasing at or before the clock changes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.readings import Reading
from edge.rules import AlarmState, Engine, EngineState, RuleSet
from edge.rules.model import LimitRule, RateRule, StaleRule
from edge.rules.state import rebase

sys.path.insert(0, str(Path(__file__).parent))
from _gen import recordings, rulesets

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_on_delay_running_at_the_kill_restarts_on_readings_after_the_restart() -> None:
    rs = RuleSet.build([LimitRule(id="hi", point="t", high=8.0, on_delay=30.0)])
    eng = Engine(rs)
    st, ev = eng.step(eng.initial_state(), [Reading("t", 0.0, 9.0)], 12.0)
    assert ev == []
    assert st.alarm("hi").due == 30.0
    # down from 12 s to 1000 s: the old due time (30 s) must not fire at the restart
    st = rebase(EngineState.from_json(st.to_json()), 1000.0)
    st, ev = eng.step(st, [], 1000.0)
    assert ev == []
    st, ev = eng.step(st, [Reading("t", 1001.0, 9.0)], 1001.0)  # seen again: the delay starts
    assert ev == []
    st, ev = eng.step(st, [], 1030.5)
    assert ev == []
    st, ev = eng.step(st, [], 1031.0)
    assert [(e.event, e.ts) for e in ev] == [("activated", 1031.0)]


def test_off_delay_running_at_the_kill_keeps_the_alarm_until_seen_clear_again() -> None:
    rs = RuleSet.build([LimitRule(id="hi", point="t", high=8.0, off_delay=5.0)])
    eng = Engine(rs)
    st, ev = eng.step(eng.initial_state(), [Reading("t", 0.0, 9.0)], 0.0)
    assert [e.event for e in ev] == ["activated"]
    st, ev = eng.step(st, [Reading("t", 1.0, 2.0)], 1.0)  # clearing, off-delay running
    st = rebase(st, 100.0)
    st, ev = eng.step(st, [], 200.0)
    assert ev == []
    assert st.alarm("hi").state is AlarmState.ACTIVE_UNACK
    st, ev = eng.step(st, [Reading("t", 201.0, 2.0)], 206.0)
    assert [(e.event, e.ts) for e in ev] == [("cleared", 206.0)]


def test_stale_and_rate_count_from_the_restart() -> None:
    rs = RuleSet.build(
        [
            StaleRule(id="stale", point="t", max_age=10.0),
            RateRule(id="rate", point="t", max_change=1.0, per=1.0, window=60.0),
        ]
    )
    eng = Engine(rs)
    st, _ = eng.step(eng.initial_state(), [Reading("t", 0.0, 0.0), Reading("t", 1.0, 0.5)], 1.0)
    st = rebase(st, 500.0)
    st, ev = eng.step(st, [], 509.0)
    assert ev == []  # the age counts from the restart, not from the reading at 1 s
    st, ev = eng.step(st, [], 511.0)
    assert [(e.rule, e.event, e.ts) for e in ev] == [("stale", "activated", 510.0)]
    # a reading after the restart is not compared with one before it (0.5 -> 100 over 510 s
    # would be a slow rise; over this run's window alone there is only one reading)
    st, ev = eng.step(st, [Reading("t", 512.0, 100.0)], 512.0)
    assert [e.rule for e in ev if e.event == "activated"] == []


def test_a_shelve_that_expired_while_down_ends_at_the_restart() -> None:
    rs = RuleSet.build([LimitRule(id="hi", point="t", high=8.0)])
    eng = Engine(rs)
    st, _ = eng.step(eng.initial_state(), [Reading("t", 0.0, 1.0)], 0.0)
    st, _ = eng.shelve(st, "hi", "ann", 60.0, 1.0)
    st = rebase(st, 1000.0)
    st, ev = eng.step(st, [], 1000.0)
    assert [(e.event, e.ts) for e in ev] == [("unshelved", 1000.0)]


@_SETTINGS
@given(rulesets(), recordings(), recordings(), st.floats(0.0, 500.0))
def test_no_event_after_a_restart_is_stamped_before_it(
    rs: RuleSet, before: list[Reading], after: list[Reading], down: float
) -> None:
    eng = Engine(rs)
    st = eng.initial_state()
    last = max((r.ts for r in before), default=0.0)
    st, _ = eng.step(st, before, last)
    restart = (st.clock or 0.0) + down
    st = rebase(EngineState.from_json(st.to_json()), restart)
    # the new run's readings come after its start
    shifted = [Reading(r.point, restart + abs(r.ts), r.value, r.quality) for r in after]
    st, events = eng.step(st, shifted, restart + 1.0)
    st, later = eng.step(st, [], restart + 1000.0)
    for ev in [*events, *later]:
        assert ev.ts >= restart, ev


@_SETTINGS
@given(rulesets(), recordings(), st.floats(0.0, 500.0))
def test_what_counts_readings_carries_over(rs: RuleSet, before: list[Reading], down: float) -> None:
    eng = Engine(rs)
    st, _ = eng.step(eng.initial_state(), before, max((r.ts for r in before), default=0.0))
    states, lot, acc = st.alarm_states(), st.lot, {p: list(v) for p, v in st.acc.items()}
    rebased = rebase(EngineState.from_json(st.to_json()), (st.clock or 0.0) + down + 1.0)
    assert rebased.alarm_states() == states
    assert (rebased.lot, rebased.acc) == (lot, acc)
    assert all(rt.due is None and rt.since is None for rt in rebased.rt)
    # and it is what a restart after it would load
    assert EngineState.from_json(rebased.to_json()).to_json() == rebased.to_json()


@_SETTINGS
@given(rulesets(), recordings())
def test_rebasing_at_or_before_the_clock_changes_nothing(
    rs: RuleSet, before: list[Reading]
) -> None:
    eng = Engine(rs)
    st, _ = eng.step(eng.initial_state(), before, max((r.ts for r in before), default=0.0))
    snapshot = st.to_json()
    assert rebase(st, st.clock or 0.0).to_json() == snapshot
    assert rebase(st, (st.clock or 0.0) - 5.0).to_json() == snapshot
    fresh = eng.initial_state()
    assert rebase(fresh, 100.0).to_json() == eng.initial_state().to_json()
