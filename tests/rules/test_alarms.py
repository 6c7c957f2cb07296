"""The ISA-18.2 alarm lifecycle: every state transition, operator actions, flags, flood/chatter."""

from __future__ import annotations

import pytest

from edge.readings import Reading
from edge.rules import AlarmState, Engine, RuleSet, Transition
from edge.rules.alarms import FLOOD_COUNT
from edge.rules.model import LimitRule

N, AU, AA, RU = (
    AlarmState.NORMAL,
    AlarmState.ACTIVE_UNACK,
    AlarmState.ACTIVE_ACK,
    AlarmState.RTN_UNACK,
)


def make(**kw: object) -> tuple[Engine, object]:
    rs = RuleSet.build([LimitRule(id="hi", point="t", high=8.0, tags=("cold",), **kw)])  # type: ignore[arg-type]
    eng = Engine(rs, max_shelve=3600.0)
    return eng, eng.initial_state()


def feed(eng: Engine, st: object, *pairs: tuple[float, float]) -> list[Transition]:
    out = []
    for ts, v in pairs:
        st, ev = eng.step(st, [Reading("t", ts, v)], ts)  # type: ignore[arg-type]
        out += ev
    return out  # type: ignore[return-value]


def moves(events: list) -> list[tuple[str, AlarmState, AlarmState]]:
    return [(e.event, e.from_state, e.to_state) for e in events]


def test_activate_clear_ack_from_rtn_unack() -> None:
    eng, st = make()
    ev = feed(eng, st, (0, 5.0), (1, 9.0), (2, 5.0))
    assert moves(ev) == [("activated", N, AU), ("cleared", AU, RU)]
    st, ev = eng.acknowledge(st, "hi", "ann", 3.0, comment="checked door")
    assert moves(ev) == [("acknowledged", RU, N)]
    assert ev[0].actor == "ann"
    assert "checked door" in ev[0].message


def test_ack_while_active_then_clear_goes_to_normal() -> None:
    eng, st = make()
    feed(eng, st, (0, 9.0))
    st, ev = eng.acknowledge(st, "hi", "bob", 1.0)
    assert moves(ev) == [("acknowledged", AU, AA)]
    ev = feed(eng, st, (2, 7.0))
    assert moves(ev) == [("cleared", AA, N)]


def test_reactivation_from_rtn_unack() -> None:
    eng, st = make()
    ev = feed(eng, st, (0, 9.0), (1, 7.0), (2, 9.0))
    assert moves(ev) == [("activated", N, AU), ("cleared", AU, RU), ("activated", RU, AU)]


def test_ack_with_nothing_to_ack_emits_nothing_and_unknown_rule_raises() -> None:
    eng, st = make()
    st, ev = eng.acknowledge(st, "hi", "ann", 1.0)
    assert ev == []
    with pytest.raises(KeyError, match="nope"):
        eng.acknowledge(st, "nope", "ann", 1.0)


def test_transition_carries_context() -> None:
    eng, st = make(unit="degC", message="{point} at {value} {unit} > {limit}")
    ev = feed(eng, st, (5, 8.5))
    t = ev[0]
    assert (t.rule, t.kind, t.point, t.severity) == ("hi", "limit", "t", "medium")
    assert (t.value, t.limit, t.ts, t.lot) == (8.5, 8.0, 5, None)
    assert t.message == "t at 8.5 degC > 8.0"
    assert t.annunciated


def test_shelve_expires_by_itself_and_is_capped() -> None:
    eng, st = make()
    st, ev = eng.shelve(st, "hi", "ann", 10_000.0, 100.0)  # capped at max_shelve 3600
    assert moves(ev) == [("shelved", N, N)]
    assert ev[0].shelved
    ev = feed(eng, st, (200, 9.0))
    assert moves(ev) == [("activated", N, AU)]
    assert ev[0].shelved
    assert not ev[0].annunciated
    st, ev = eng.step(st, [], 3699.0)
    assert ev == []
    st, ev = eng.step(st, [], 5000.0)
    assert moves(ev) == [("unshelved", AU, AU)]
    assert ev[0].ts == 3700.0  # stamped when the shelve ended, not when noticed
    assert not ev[0].shelved


def test_unshelve_early_and_bad_duration() -> None:
    eng, st = make()
    eng.shelve(st, "hi", "ann", 60.0, 0.0)
    st, ev = eng.unshelve(st, "hi", "ann", 10.0)
    assert [e.event for e in ev] == ["unshelved"]
    st, ev = eng.step(st, [], 100.0)
    assert ev == []  # no second unshelve at the old expiry
    with pytest.raises(ValueError, match="> 0"):
        eng.shelve(st, "hi", "ann", 0.0, 1.0)


def test_suppress_by_tag_and_out_of_service_are_flags() -> None:
    eng, st = make()
    st, ev = eng.suppress(st, "cold", True, 1.0)
    assert moves(ev) == [("suppressed", N, N)]
    ev = feed(eng, st, (2, 9.0))
    assert ev[0].event == "activated"
    assert ev[0].suppressed
    assert not ev[0].annunciated
    st, ev = eng.suppress(st, "cold", True, 3.0)
    assert ev == []  # already suppressed
    st, ev = eng.suppress(st, "hi", False, 4.0)
    assert [e.event for e in ev] == ["unsuppressed"]
    st, ev = eng.out_of_service(st, "hi", True, "maint", 5.0)
    assert [(e.event, e.actor) for e in ev] == [("out_of_service", "maint")]
    ev = feed(eng, st, (6, 7.0))
    assert ev[0].event == "cleared"
    assert ev[0].out_of_service
    st, ev = eng.out_of_service(st, "hi", False, "maint", 7.0)
    assert [e.event for e in ev] == ["in_service"]
    with pytest.raises(KeyError):
        eng.suppress(st, "no-such-tag", True, 8.0)


def test_flood_and_chatter_counts() -> None:
    eng, st = make()
    pairs = []
    for i in range(FLOOD_COUNT + 1):  # 11 activations within 10 minutes
        pairs += [(i * 50.0, 9.0), (i * 50.0 + 1, 7.0)]
    feed(eng, st, *pairs)
    stats = eng.alarm_stats(st, 520.0)["hi"]
    assert stats.activations_10min == FLOOD_COUNT + 1
    assert stats.flood
    assert stats.total == FLOOD_COUNT + 1
    assert not stats.chattering  # one per 50 s
    later = eng.alarm_stats(st, 1200.0)["hi"]
    assert later.activations_10min == 0
    assert not later.flood
    eng2, st2 = make()
    feed(eng2, st2, (0, 9.0), (1, 7.0), (2, 9.0), (3, 7.0), (4, 9.0))
    assert eng2.alarm_stats(st2, 5.0)["hi"].chattering


def test_deadband_suppresses_chatter() -> None:
    noisy = [(float(i), 8.0 + (0.2 if i % 2 else -0.2)) for i in range(40)]
    eng, st = make()
    plain = feed(eng, st, *noisy)
    eng, st = make(deadband=0.5)
    damped = feed(eng, st, *noisy)
    assert len([e for e in plain if e.event == "activated"]) == 20
    assert [e.event for e in damped] == ["activated"]


def test_on_delay_suppresses_chatter() -> None:
    noisy = [(float(i), 9.0 if i % 3 else 7.0) for i in range(30)]  # true for 2 s at most
    eng, st = make(on_delay=3.0)
    assert feed(eng, st, *noisy) == []
