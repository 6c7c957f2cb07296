"""Circuit breaker and point quality bookkeeping (pure, time passed in)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge.config import PointConfig
from edge.drivers.health import Breaker, BreakerState, PointState
from edge.readings import Quality


def test_breaker_trips_after_two_failures_and_backs_off_exponentially() -> None:
    b = Breaker(base=1.0, cap=8.0)
    assert b.allows(0.0)
    assert b.state == BreakerState.OK
    assert b.failure(0.0) == 0.0
    assert b.allows(0.1)
    delays = [b.failure(t) for t in (1.0, 3.0, 7.0, 15.0, 30.0)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert b.state == BreakerState.BACKOFF
    assert not b.allows(37.9)
    assert b.allows(38.0)
    b.success()
    assert b.state == BreakerState.OK
    assert b.allows(0.0)


@given(st.lists(st.floats(0.01, 5.0), min_size=1, max_size=30))
def test_dead_device_costs_at_most_one_timeout_per_backoff_period(gaps: list[float]) -> None:
    """Whenever the device is allowed, ask it; it never answers: asks never exceed the periods."""
    b = Breaker(base=0.5, cap=4.0)
    now, asks = 0.0, 0
    for gap in gaps:
        now += gap
        if b.allows(now):
            asks += 1
            b.failure(now)
    # after tripping, each ask is preceded by a full backoff period of at least `base`
    assert asks <= 2 + now / 0.5


def test_point_quality_sequence() -> None:
    s = PointState(PointConfig("p", "d", unit="g"), stale_after=3)
    assert s.miss(1.0).quality == Quality.COMM_FAIL  # no value yet
    r = s.good(5.0, ts=2.0, latency=0.01)
    assert (r.value, r.quality, r.unit, r.latency) == (5.0, Quality.GOOD, "g", 0.01)
    m1, m2, m3 = s.miss(3.0), s.miss(4.0), s.miss(5.0)
    assert (m1.quality, m1.value, m1.ts) == (Quality.STALE, 5.0, 2.0)  # age = now - 2.0
    assert m1.age(3.0) == 1.0
    assert m2.quality == Quality.STALE
    assert (m3.quality, m3.value) == (Quality.COMM_FAIL, None)
    assert s.good(6.0, ts=6.0, latency=0.0).quality == Quality.GOOD
    rej = s.rejected(7.0)
    assert rej.quality == Quality.CONFIG_ERROR
    assert s.miss(8.0).quality == Quality.CONFIG_ERROR
