"""Benchmarks of the rules engine: streaming a 20-rule set and replaying 10,000,000 rows.

Each prints its figure, the limit it is measured against, and the ratio (figure / limit).
The figure is readings per second of CPU time of this (single-threaded) process, the "one core"
of the target; the wall-clock figure is printed too (it drops when other work shares the CPU).
"""

from __future__ import annotations

import time

import numpy as np

from edge.readings import Reading
from edge.rules import Engine, replay_arrays
from edge.rules.expressions import compile_expression
from edge.rules.model import (
    DerivedRule,
    LimitRule,
    LotCheck,
    LotRule,
    QualityRule,
    RateRule,
    RuleSet,
    SpcRule,
    StaleRule,
)

STREAM_LIMIT = 200_000.0
REPLAY_LIMIT = 5_000_000.0
POINTS = [f"p{i}" for i in range(10)]


def twenty_rules() -> RuleSet:
    """Twenty rules of every alarming kind over ten points (plus a derived point and lots)."""
    rules: list = [
        DerivedRule(id="spread", point="spread", expression=compile_expression("p0 - p1", None))
    ]
    for i, p in enumerate(POINTS):
        rules.append(
            LimitRule(
                id=f"{p}-spec",
                point=p,
                low=40.0,
                high=60.0,
                deadband=0.5,
                on_delay=2.0,
                off_delay=1.0,
            )
        )
        if i < 3:
            rules.append(
                SpcRule(id=f"{p}-spc", point=p, center=50.0, sigma=2.0, nelson=(1, 2, 5, 6))
            )
        elif i < 5:
            rules.append(RateRule(id=f"{p}-rate", point=p, max_change=30.0, per=1.0, window=2.0))
        elif i < 7:
            rules.append(StaleRule(id=f"{p}-stale", point=p, max_age=5.0))
        elif i < 8:
            rules.append(QualityRule(id=f"{p}-quality", point=p, duration=1.0))
    rules.append(LimitRule(id="spread-spec", point="spread", low=-15.0, high=15.0))
    rules.append(
        LotRule(
            id="p0-lot",
            point="p0",
            low=40.0,
            high=60.0,
            checks=(LotCheck("cpk", ">=", 1.0, "cpk >= 1"),),
        )
    )
    alarming = [r for r in rules if not isinstance(r, DerivedRule)]
    assert len(alarming) == 20, len(alarming)
    return RuleSet.build(rules, lot="lot")


def recording(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, str]]:
    rng = np.random.default_rng(seed)
    ts = np.arange(n, dtype=np.float64) * 0.001
    pid = rng.integers(0, len(POINTS), n)
    values = rng.normal(50.0, 2.0, n)
    values[rng.random(n) < 0.0005] = 75.0  # rare excursions
    lots = {i: f"LOT-{i // 1_000_000}" for i in range(0, n, 1_000_000)}
    pid[list(lots)] = len(POINTS)  # the lot point's rows
    return ts, pid, values, lots


def report(name: str, figure: float, limit: float, wall: float) -> None:
    print(
        f"\n{name}: {figure:,.0f} readings/s (CPU time of this process; wall clock "
        f"{wall:,.0f}/s)  limit {limit:,.0f}  ratio {figure / limit:.2f}"
    )


def test_bench_streaming_20_rules() -> None:
    rs = twenty_rules()
    eng = Engine(rs)
    ts, pid, values, lots = recording(400_000)
    names = [*POINTS, "lot"]
    readings = [
        Reading(names[p], float(t), lots.get(i, float(v)))
        for i, (t, p, v) in enumerate(zip(ts.tolist(), pid.tolist(), values.tolist(), strict=True))
    ]
    best = wall = 0.0
    for _ in range(3):
        state = eng.initial_state()
        events = 0
        t0, c0 = time.perf_counter(), time.process_time()
        for k in range(0, len(readings), 100):
            batch = readings[k : k + 100]
            state, ev = eng.step(state, batch, batch[-1].ts)
            events += len(ev)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        best = max(best, len(readings) / dc)
        wall = max(wall, len(readings) / dt)
    report(f"streaming, 20 rules, batches of 100 ({events} events)", best, STREAM_LIMIT, wall)
    assert events > 0


def test_bench_replay_10m_rows() -> None:
    rs = twenty_rules()
    ts, pid, values, lots = recording(10_000_000)
    points = [*POINTS, "lot"]
    best = wall = 0.0
    for _ in range(2):
        t0, c0 = time.perf_counter(), time.process_time()
        events = replay_arrays(rs, ts, pid, values, points=points, lots=lots)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        best = max(best, ts.size / dc)
        wall = max(wall, ts.size / dt)
    report(f"replay, 20 rules, 10,000,000 rows ({len(events)} events)", best, REPLAY_LIMIT, wall)
    assert events
