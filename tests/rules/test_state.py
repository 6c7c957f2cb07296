"""Engine state persistence: alarm states and running timers survive a restart."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.readings import Reading
from edge.rules import AlarmState, Engine, EngineState, RuleSet
from edge.rules.model import LimitRule, RateRule, SpcRule

sys.path.insert(0, str(Path(__file__).parent))
from _gen import recordings, rulesets


def test_on_delay_timer_survives_restart(tmp_path: Path) -> None:
    rs = RuleSet.build([LimitRule(id="hi", point="t", high=8.0, on_delay=30.0)])
    eng = Engine(rs)
    st, ev = eng.step(eng.initial_state(), [Reading("t", 0.0, 9.0)], 12.0)
    assert ev == []
    path = tmp_path / "state.json"
    path.write_bytes(st.to_json())
    # a new process: new engine, state from disk
    eng2 = Engine(rs)
    st2 = EngineState.from_json(path.read_bytes())
    st2, ev = eng2.step(st2, [], 29.0)
    assert ev == []
    st2, ev = eng2.step(st2, [], 31.0)
    assert [(e.event, e.ts, e.value) for e in ev] == [("activated", 30.0, 9.0)]


def test_alarm_states_flags_and_learned_limits_survive_restart() -> None:
    rs = RuleSet.build(
        [
            LimitRule(id="hi", point="t", high=8.0),
            SpcRule(id="spc", point="t", baseline=3, nelson=(1,)),
            RateRule(id="rate", point="t", max_change=100.0, window=10.0),
        ]
    )
    eng = Engine(rs)
    st = eng.initial_state()
    st, _ = eng.step(
        st,
        [Reading("t", 0, 5.0), Reading("t", 1, 6.0), Reading("t", 2, 5.0), Reading("t", 3, 9.0)],
        3,
    )
    st, _ = eng.acknowledge(st, "hi", "ann", 4)
    st, _ = eng.shelve(st, "spc", "ann", 100.0, 5)
    loaded = EngineState.from_json(st.to_json())
    assert loaded.alarm_states() == st.alarm_states()
    assert loaded.alarm("hi").state is AlarmState.ACTIVE_ACK
    assert loaded.alarm("spc").shelved_until == 105.0
    assert loaded.alarm("spc").state is AlarmState.ACTIVE_UNACK
    assert loaded.alarm("spc").aux["limits"] == st.alarm("spc").aux["limits"]
    assert loaded.to_json() == st.to_json()
    more = [Reading("t", 6, 30.0), Reading("t", 7, 5.0)]
    a = eng.step(st, more, 200)[1]
    b = Engine(rs).step(loaded, more, 200)[1]
    assert a == b
    # spc fired on 9.0 (UCL 5.33 + 3 * 0.887) before the restart; 5.0 clears it
    assert [(e.event, e.shelved) for e in a if e.rule == "spc"] == [
        ("cleared", True),
        ("unshelved", False),
    ]


def test_bad_state_documents_are_refused() -> None:
    with pytest.raises(ValueError, match="not JSON"):
        EngineState.from_json(b"{nope")
    with pytest.raises(ValueError, match="version"):
        EngineState.from_json(b'{"version": 99}')


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rulesets(), st.data())
def test_restart_anywhere_changes_nothing(rs: RuleSet, data: st.DataObject) -> None:
    readings = data.draw(recordings())
    cut = data.draw(st.integers(0, len(readings)))
    eng = Engine(rs)

    def go(
        state: EngineState, chunk: list[Reading], clock: float | None
    ) -> tuple[EngineState, list, float | None]:
        if not chunk:
            return state, [], clock
        clock = max([r.ts for r in chunk] + ([clock] if clock is not None else []))
        state, ev = eng.step(state, chunk, clock)
        return state, ev, clock

    st1, ev1, c1 = go(eng.initial_state(), readings[:cut], None)
    st1b, ev1b, _ = go(st1, readings[cut:], c1)
    st2, ev2, c2 = go(eng.initial_state(), readings[:cut], None)
    restarted = EngineState.from_json(st2.to_json())
    st2b, ev2b, _ = go(restarted, readings[cut:], c2)
    assert ev1 + ev1b == ev2 + ev2b
    assert st1b.to_json() == st2b.to_json()


def test_state_of_another_rule_set_is_refused_then_adopted() -> None:
    old_rs = RuleSet.build([LimitRule(id="hi", point="t", high=8.0, on_delay=10.0)])
    eng = Engine(old_rs)
    st, _ = eng.step(eng.initial_state(), [Reading("t", 0.0, 9.0)], 5.0)
    saved = st.to_json()
    new_rs = RuleSet.build(
        [
            LimitRule(id="hi", point="t", high=8.5, on_delay=10.0),
            LimitRule(id="lo", point="t", low=1.0),
        ]
    )
    eng2 = Engine(new_rs)
    loaded = EngineState.from_json(saved)
    with pytest.raises(ValueError, match="another rule set"):
        eng2.step(loaded, [], 6.0)
    adopted = eng2.adopt(loaded)
    adopted, ev = eng2.step(adopted, [], 11.0)
    assert ev == []  # "hi" changed (8.0 -> 8.5): its running on-delay is dropped
    # an unchanged rule keeps its running timer across a restart with other rules changed
    eng3 = Engine(RuleSet.build([*old_rs.rules, LimitRule(id="lo", point="t", low=1.0)]))
    kept, ev = eng3.step(eng3.adopt(EngineState.from_json(saved)), [], 11.0)
    assert [(e.rule, e.event, e.ts) for e in ev] == [("hi", "activated", 10.0)]
    assert eng3.alarm_states(kept)["lo"] is AlarmState.NORMAL
    # reload() from a loaded state works the same way (what the runtime does at start)
    _, again = eng3.reload(EngineState.from_json(saved), eng3.ruleset)
    assert [e.rule for e in eng3.step(again, [], 11.0)[1]] == ["hi"]
