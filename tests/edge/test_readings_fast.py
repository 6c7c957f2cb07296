"""``new_reading`` (the drivers' fast constructor) builds the very Reading ``Reading(...)`` does."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.readings import Quality, Reading, Value, new_reading

values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)


@given(
    point=st.text(max_size=12),
    ts=st.floats(allow_nan=False),
    value=values,
    quality=st.sampled_from(list(Quality)),
    unit=st.text(max_size=4),
    latency=st.floats(min_value=0.0, max_value=10.0),
)
def test_new_reading_is_the_same_reading(
    point: str, ts: float, value: Value | None, quality: Quality, unit: str, latency: float
) -> None:
    slow = Reading(point, ts, value, quality, unit, latency)
    fast = new_reading(point, ts, value, quality, unit, latency)
    assert type(fast) is Reading
    assert fast == slow
    assert hash(fast) == hash(slow)
    assert repr(fast) == repr(slow)
    assert dataclasses.astuple(fast) == (point, ts, value, quality, unit, latency)
    assert pickle.loads(pickle.dumps(fast)) == slow


def test_new_reading_is_still_frozen() -> None:
    r = new_reading("p", 1.0, 2.5, Quality.GOOD, "degC", 0.01)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.value = 3.0  # type: ignore[misc]
    assert dataclasses.replace(r, value=3.0) == Reading("p", 1.0, 3.0, Quality.GOOD, "degC", 0.01)
