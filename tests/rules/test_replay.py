"""The vectorised replay gives exactly the events of streaming step() over the same readings."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.readings import Reading
from edge.rules import Engine, replay, replay_arrays
from edge.rules.model import LimitRule, RuleSet, SpcRule
from edge.rules.replay import to_columns

sys.path.insert(0, str(Path(__file__).parent))
import itertools

from _gen import chunkings, recordings, rulesets


def streamed(rs: RuleSet, readings: list[Reading], cuts: list[int]) -> list:
    eng = Engine(rs)
    state = eng.initial_state()
    out: list = []
    bounds = [0, *cuts, len(readings)]
    clock = None
    for a, b in itertools.pairwise(bounds):
        chunk = readings[a:b]
        if not chunk:
            continue
        clock = max([r.ts for r in chunk] + ([clock] if clock is not None else []))
        state, ev = eng.step(state, chunk, clock)
        out += ev
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rulesets(), st.data())
def test_replay_equals_streaming(rs: RuleSet, data: st.DataObject) -> None:
    readings = data.draw(recordings())
    cuts = data.draw(chunkings(len(readings)))
    assert replay(rs, readings) == streamed(rs, readings, cuts)


@settings(max_examples=50, deadline=None)
@given(rulesets(), st.data())
def test_columnar_input_equals_reading_input(rs: RuleSet, data: st.DataObject) -> None:
    readings = data.draw(recordings())
    ts, pid, vals, qual, points, lots, _ = to_columns(readings, rs.lot)
    via_arrays = replay_arrays(rs, ts, pid, vals, points=points, quality=qual, lots=lots)
    expected = replay(rs, readings)
    # units come from readings only through replay(); compare everything else
    strip = [
        (type(e).__name__, getattr(e, "rule", None), getattr(e, "event", None), e.ts)
        for e in expected
    ]
    assert [
        (type(e).__name__, getattr(e, "rule", None), getattr(e, "event", None), e.ts)
        for e in via_arrays
    ] == strip


def test_replay_of_a_long_noisy_recording_matches_streaming() -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    rs = RuleSet.build(
        [
            LimitRule(id="hi", point="a", high=12.0, deadband=0.5, on_delay=0.02, off_delay=0.01),
            SpcRule(id="spc", point="a", center=10.0, sigma=1.0, nelson=(1, 2, 3, 4, 5, 6, 7, 8)),
        ]
    )
    ts = np.round(np.cumsum(rng.choice([0.0, 0.005, 0.01], n)), 3)
    vals = np.round(rng.normal(10.0, 1.0, n), 2)
    readings = [Reading("a", float(t), float(v)) for t, v in zip(ts, vals, strict=True)]
    expected = streamed(rs, readings, list(range(0, n, 997)))
    assert len(expected) > 100
    assert replay(rs, readings) == expected


def test_empty_recording() -> None:
    rs = RuleSet.build([LimitRule(id="hi", point="a", high=1.0)])
    assert replay(rs, []) == []
