"""SPC alarms: on_delay/off_delay against the independent Nelson oracle, and their messages.

The oracle composes two independent pieces: the naive Nelson rules of test_nelson.py (which
points signal) and a time-stepped reading of "held for at least the delay" (as in
test_alarms_oracle.py), so the engine's event-driven timers are checked against neither of its
own parts.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.readings import Reading
from edge.rules import Engine, RuleSet, Transition, replay
from edge.rules.kinds import DEFAULT_MESSAGES
from edge.rules.model import LotCheck, LotRule, SpcRule

sys.path.insert(0, str(Path(__file__).parent))
from test_nelson import C, S, naive

STEP = 0.5
SPC_MESSAGE = DEFAULT_MESSAGES["spc"]


def oracle(
    readings: list[tuple[float, float]], rules: set[int], on: float, off: float, end: float
) -> list[tuple[str, float]]:
    flags = naive([v for _, v in readings])
    signal = {t: bool(f & rules) for (t, _), f in zip(readings, flags, strict=True)}
    n_ticks = round(end / STEP) + 1
    history: list[tuple[float, bool]] = []
    cond = False
    active = False
    events = []
    for tick in (i * STEP for i in range(n_ticks)):
        delay = off if active else on
        if delay > 0 and history:
            window = [h for h in history if tick - delay <= h[0] < tick]
            covered = window and window[0][0] == tick - delay
            if covered and all(h[1] != active for h in window):
                active = not active
                events.append(("activated" if active else "cleared", tick))
        if tick in signal:
            cond = signal[tick]
            if cond != active and (off if active else on) == 0:
                active = not active
                events.append(("activated" if active else "cleared", tick))
        history.append((tick, cond))
    return events


grid = st.sampled_from([C + k * S for k in (-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5)])
delays = st.sampled_from([0.0, 0.5, 1.0, 2.0])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 3), grid), min_size=1, max_size=40),
    st.sets(st.integers(1, 8), min_size=1),
    delays,
    delays,
    st.integers(0, 3),
)
def test_spc_delays_match_the_oracle(
    steps: list[tuple[int, float]], rules: set[int], on: float, off: float, tail: int
) -> None:
    t = 0.0
    readings = []
    for gap, v in steps:
        readings.append((t, v))
        t += gap * STEP
    end = readings[-1][0] + tail * STEP
    rule = SpcRule(
        id="s", point="p", center=C, sigma=S, nelson=tuple(sorted(rules)), on_delay=on,
        off_delay=off,
    )  # fmt: skip
    rs = RuleSet.build([rule])
    eng = Engine(rs)
    state = eng.initial_state()
    got = []
    for ts, v in readings:
        state, ev = eng.step(state, [Reading("p", ts, v)], ts)
        got += ev
    # the columnar replay (clock ends at the last reading) drives the same state machine
    replayed = replay(rs, [Reading("p", ts, v) for ts, v in readings])
    assert [(e.event, e.ts, e.message) for e in replayed if isinstance(e, Transition)] == [
        (e.event, e.ts, e.message) for e in got if isinstance(e, Transition)
    ]
    state, ev = eng.step(state, [], end)
    got += ev
    assert [(e.event, e.ts) for e in got if isinstance(e, Transition)] == oracle(
        readings, rules, on, off, end
    )


def run(rule: SpcRule | LotRule, readings: list[Reading], lot: str | None = None) -> list:
    eng = Engine(RuleSet.build([rule], lot=lot))
    state = eng.initial_state()
    out = []
    for r in readings:
        state, ev = eng.step(state, [r], r.ts)
        out += ev
    return [e for e in out if isinstance(e, Transition)]


def test_a_rule_5_message_names_the_2_sigma_line_not_the_ucl() -> None:
    rule = SpcRule(
        id="s", point="t", unit="degC", center=4.0, sigma=0.25, nelson=(1, 5), decimals=2,
        message=SPC_MESSAGE,
    )  # fmt: skip
    values = [4.6, 4.7, 4.0, 4.0]
    got = run(rule, [Reading("t", i, v) for i, v in enumerate(values)])
    assert [e.message for e in got] == [
        "t = 4.7 degC: out of statistical control "
        "[Nelson 5: 2 of 3 points beyond 2 sigma on one side (+2 sigma line 4.50 degC)]",
        "t = 4.0 degC: back in statistical control",
    ]
    assert got[0].limit == 4.5


def test_rule_1_names_the_lcl_below_the_centre_and_learned_lines_are_rounded() -> None:
    rule = SpcRule(id="s", point="t", baseline=5, nelson=(1,), message=SPC_MESSAGE)
    base = [4.0, 4.1, 3.9, 4.05, 3.95]
    got = run(rule, [Reading("t", i, v) for i, v in enumerate([*base, 3.0])])
    assert len(got) == 1
    # learned: LCL = 4.0 - 3 * (mean moving range 0.1375 / 1.128) = 3.634308..., 6 digits
    assert got[0].message.endswith("(LCL 3.63431)]")
    assert got[0].limit is not None
    assert abs(got[0].limit - (4.0 - 3 * 0.1375 / 1.128)) < 1e-9


def test_rules_2_and_7_name_the_centre_line_and_the_1_sigma_band() -> None:
    rule = SpcRule(
        id="s", point="t", center=10.0, sigma=1.0, nelson=(2, 7), decimals=1,
        message=SPC_MESSAGE,
    )  # fmt: skip
    above = [Reading("t", i, 10.5) for i in range(9)]
    got = run(rule, above)
    assert got[0].message == (
        "t = 10.5: out of statistical control "
        "[Nelson 2: 9 points on one side of the centre line (centre line 10.0)]"
    )
    assert got[0].limit == 10.0
    near = [Reading("t", i, 10.1 if i % 2 else 9.9) for i in range(15)]
    got = run(rule, near)
    assert "Nelson 7: 15 points within 1 sigma (1 sigma lines 9.0 and 11.0)" in got[0].message


def test_a_lot_alarm_says_it_is_cpk() -> None:
    rule = LotRule(
        id="w", point="w", low=490.0, high=510.0,
        checks=(LotCheck(stat="cpk", op=">=", value=1.33, text="cpk >= 1.33"),),
        message=DEFAULT_MESSAGES["lot"],
    )  # fmt: skip
    readings = [Reading("lot", 0, "L1")]
    readings += [Reading("w", 1 + i, 500 + d) for i, d in enumerate([-8, 6, -5, 9, -7, 4])]
    readings += [Reading("lot", 10, "L2")]
    got = run(rule, readings, lot="lot")
    assert len(got) == 1
    assert got[0].message.startswith("lot L1: w Cpk = 0.")
    assert got[0].message.endswith(", limit 1.33 (fails 'cpk >= 1.33')")
    assert "0.680183922817" not in got[0].message
