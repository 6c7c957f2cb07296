"""The line budget and the breaker's probing, as pure functions (``now`` passed in)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from edge.drivers.budget import (
    LINE_BUDGET,
    LOSS_BUDGET,
    MAX_STRETCH,
    PROBE_SHARE,
    Load,
    probe_ceiling,
    spare_capacity,
    stretch_factors,
    utilisation,
)
from edge.drivers.health import Breaker

# the issue's line: one FC03 of 2 registers at 19200 baud is 13.7 ms on the wire
TX = 0.0137
LINE = [Load(0.1, TX), Load(0.25, TX), Load(0.25, TX), Load(1.0, TX)]


def test_a_healthy_line_is_not_stretched() -> None:
    assert stretch_factors(LINE) == [1, 1, 1, 1]
    assert math.isclose(utilisation(LINE), TX * (10 + 4 + 4 + 1))


def test_worked_example_slow_dosing() -> None:
    """The drivers reference's worked example: dosing answering at ~190 ms of 200 ms."""
    loads = [LINE[0], LINE[1], Load(0.25, 0.19), LINE[3]]
    # one 190 ms cycle costs press (100 ms) floor(1.9) = 1 cycle; press may lose 5 %:
    # dosing at most every 0.1 * 1 / 0.05 = 2 s = 8 x 250 ms
    assert stretch_factors(loads) == [1, 1, 8, 1]
    factors = stretch_factors(loads)
    assert utilisation(loads, factors) < 0.35
    assert spare_capacity(loads, factors) > 0.65


def test_huge_read_without_blocking_is_cut_by_utilisation() -> None:
    """Four 80 ms cycles every 100 ms on a line of 100 ms devices: no cycle outlasts another
    device's interval, but together they ask 3.2 lines: water-filled to 90 %."""
    loads = [Load(0.1, 0.08)] * 4
    factors = stretch_factors(loads)
    assert utilisation(loads, factors) <= LINE_BUDGET
    assert factors == [4, 4, 4, 4]  # all equal: none is out of proportion to the others


def test_only_the_out_of_proportion_device_is_stretched() -> None:
    loads = [Load(0.1, 0.01), Load(0.1, 0.01), Load(0.1, 0.09), Load(0.5, 0.02)]
    factors = stretch_factors(loads)
    assert factors[0] == factors[1] == factors[3] == 1
    assert factors[2] > 1
    assert utilisation(loads, factors) <= LINE_BUDGET


def test_unknown_or_dead_devices_are_left_to_the_breaker() -> None:
    loads = [Load(0.1, TX), Load(0.25, None)]
    assert stretch_factors(loads) == [1, 1]
    assert spare_capacity(loads) == 1 - TX * 10


loads_st = st.lists(
    st.builds(
        Load,
        st.sampled_from([0.05, 0.1, 0.25, 0.5, 1.0, 2.0]),
        st.one_of(st.none(), st.floats(0.001, 0.5)),
    ),
    min_size=1,
    max_size=8,
)


@given(loads_st)
def test_budget_properties(loads: list[Load]) -> None:
    factors = stretch_factors(loads)
    assert all(f >= 1 for f in factors)
    for i, load in enumerate(loads):
        if load.cost is None:
            assert factors[i] == 1
    # utilisation within the budget when devices share the line (one alone is never stretched)
    if sum(1 for ld in loads if ld.cost is not None) > 1:
        assert utilisation(loads, factors) <= LINE_BUDGET + 1e-9
    else:
        assert factors == [1] * len(loads)
    # every device loses at most LOSS_BUDGET of its cycles to the others' blocking, unless a
    # blocker is already at the MAX_STRETCH floor (e.g. seven 500 ms cycles on 50 ms polls: no
    # schedule can keep that promise; the stretch stops at once per MAX_STRETCH intervals)
    capped = any(f == MAX_STRETCH for f in factors)
    for i, victim in enumerate(loads):
        if victim.cost is None or capped:
            continue
        lost = sum(
            math.floor(b.cost / victim.interval) / (b.interval * factors[j])
            for j, b in enumerate(loads)
            if j != i and b.cost is not None
        )
        assert lost * victim.interval <= LOSS_BUDGET + 1e-9
    # a line with room and no cycle outlasting another device's interval keeps every interval
    live = [ld for ld in loads if ld.cost is not None]
    blocking = any(
        math.floor(b.cost / v.interval) > 0
        for i, b in enumerate(live)
        for j, v in enumerate(live)
        if i != j and b.cost is not None
    )
    if not blocking and utilisation(loads) <= LINE_BUDGET:
        assert factors == [1] * len(loads)


def test_probe_ceiling_follows_spare_capacity() -> None:
    cost = 0.2 + 0.01  # a timeout and the guard
    idle = probe_ceiling(1.0, cost, 1, base=0.25, cap=30.0)
    assert math.isclose(idle, cost / PROBE_SHARE)  # 2.1 s
    assert probe_ceiling(0.79, cost, 1, 0.25, 30.0) < 3.0  # the issue's line, one dead
    assert probe_ceiling(0.05, cost, 1, 0.25, 30.0) == 30.0  # busy: back to the cap
    assert probe_ceiling(0.0, cost, 1, 0.25, 30.0) == 30.0
    assert probe_ceiling(1.0, cost, 1, base=5.0, cap=30.0) == 5.0  # never below the interval
    assert probe_ceiling(1.0, cost, 1, base=0.25, cap=1.0) == 1.0  # never above the cap


def _comeback(dead_for: float, poll: float, timeout: float, spare: float, cap: float) -> float:
    """Seconds from a device answering again to its first answered probe.

    As the scheduler does it: at each of the device's deadlines (``k * poll``) the breaker is
    asked; a probe while dead costs a timeout and the guard; the ceiling comes from the spare
    capacity.
    """
    b = Breaker(base=poll, cap=cap)
    cost = timeout + 0.017
    k = 0
    while True:
        t = k * poll
        if b.allows(t):
            if t >= dead_for:
                return t - dead_for
            b.failure(t + cost, probe_ceiling(spare, cost, 1, poll, cap))
        k += 1


@given(
    dead_for=st.floats(1.0, 120.0),
    poll=st.sampled_from([0.1, 0.25, 0.5, 1.0]),
    timeout=st.floats(0.05, 0.2),
    spare=st.floats(0.9, 1.0),
)
def test_a_device_back_on_an_idle_line_is_probed_within_3s(
    dead_for: float, poll: float, timeout: float, spare: float
) -> None:
    assert _comeback(dead_for, poll, timeout, spare, cap=30.0) < 3.0


def test_after_30s_dead_on_a_busy_line_it_waits_up_to_the_cap() -> None:
    waits = [_comeback(30.0 + k * 0.37, 0.25, 0.2, 0.02, 30.0) for k in range(40)]
    assert max(waits) > 10.0  # the busy line is spared: probes back off towards the cap
    assert max(waits) <= 30.0 + 0.25 + 0.22


def test_exactly_30s_dead_on_the_issues_line() -> None:
    """The acceptance case: 30 s dead, 200 ms timeout, the issue's line (79 % spare) or idle."""
    for poll in (0.1, 0.25, 1.0):
        for spare in (0.79, 1.0):
            assert _comeback(30.0, poll, 0.2, spare, 30.0) < 3.0, (poll, spare)


def test_reclamp_cuts_a_long_backoff_short_when_the_line_frees_up() -> None:
    b = Breaker(base=0.25, cap=30.0)
    b.failure(0.0)
    for t in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0):
        b.failure(t)  # no ceiling: exponential up to 16 s
    assert not b.allows(20.0)
    b.reclamp(2.25)  # the line is idle now: probe within 2.25 s, at most 2 s + one interval
    assert not b.allows(8.9)
    assert b.allows(9.0)
    b.success()
    b.reclamp(2.0)  # closed: nothing to do
    assert b.allows(0.0)


def test_a_device_alone_on_its_bus_is_never_stretched() -> None:
    """It takes nothing from anyone: polled as fast as it asks, missed deadlines skipped."""
    assert stretch_factors([Load(0.0005, 0.023)]) == [1]
    assert stretch_factors([Load(0.0005, 0.023), Load(1.0, None)]) == [1, 1]  # other one dead
