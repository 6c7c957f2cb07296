"""Limit alarms (deadband, on/off delays) against a time-stepped oracle written independently.

The engine is event-driven (timers with due times, fired lazily). The oracle below instead walks
a fine grid of instants and asks, at every instant, whether the condition has held on the whole
window ``[T - delay, T)`` just before it — the textbook reading of "held for at least the delay".
With readings and delays on the grid the two must agree exactly, boundaries included.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.readings import Reading
from edge.rules import Engine, RuleSet, Transition
from edge.rules.model import LimitRule

STEP = 0.5
LOW, HIGH = 2.0, 8.0


def oracle(
    readings: list[tuple[float, float]], db: float, on: float, off: float, end: float
) -> list:
    at = dict(readings)  # strictly increasing times
    n_ticks = round(end / STEP) + 1
    ticks = [i * STEP for i in range(n_ticks)]
    value: float | None = None
    history: list[tuple[float, float | None, bool, bool]] = []  # (tick, value, entry, hold)
    active = False
    events = []

    def entry(v: float | None) -> bool:
        return v is not None and (v > HIGH or v < LOW)

    def hold(v: float | None) -> bool:
        return v is not None and (v > HIGH - db or v < LOW + db)

    for tick in ticks:
        # 1. a delay met at this instant (condition held on all of [tick - delay, tick))
        delay = off if active else on
        if delay > 0 and history:
            window = [h for h in history if tick - delay <= h[0] < tick]
            covered = window and window[0][0] == tick - delay
            if covered and (all(not h[3] for h in window) if active else all(h[2] for h in window)):
                active = not active
                events.append(("activated" if active else "cleared", tick, window[-1][1]))
        # 2. the reading at this instant
        if tick in at:
            value = at[tick]
            flips = (not hold(value)) if active else entry(value)
            if flips and (off if active else on) == 0:
                active = not active
                events.append(("activated" if active else "cleared", tick, value))
        history.append((tick, value, entry(value), hold(value)))
    return events


values = st.sampled_from([1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 7.0, 7.5, 8.0, 8.5, 9.0])
delays = st.sampled_from([0.0, 0.5, 1.0, 2.0])


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 4), values), min_size=1, max_size=40),
    st.sampled_from([0.0, 0.5, 1.0]),
    delays,
    delays,
    st.integers(0, 3),
    st.integers(1, 7),
)
def test_engine_matches_time_stepped_oracle(
    steps: list[tuple[int, float]], db: float, on: float, off: float, tail: int, chunk: int
) -> None:
    t = 0.0
    readings = []
    for gap, v in steps:
        readings.append((t, v))
        t += gap * STEP
    end = readings[-1][0] + tail * STEP
    rule = LimitRule(id="x", point="p", low=LOW, high=HIGH, deadband=db, on_delay=on, off_delay=off)
    eng = Engine(RuleSet.build([rule]))
    state = eng.initial_state()
    got = []
    for i in range(0, len(readings), chunk):
        part = [Reading("p", ts, v) for ts, v in readings[i : i + chunk]]
        state, ev = eng.step(state, part, part[-1].ts)
        got += ev
    state, ev = eng.step(state, [], end)
    got += ev
    assert all(isinstance(e, Transition) for e in got)
    assert [(e.event, e.ts, e.value) for e in got] == oracle(readings, db, on, off, end)
