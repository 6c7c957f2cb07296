"""The demo compresses its story's clock to fit a shorter run (``edge demo --seconds``)."""

from __future__ import annotations

import pytest

from edge.demo import MIN_SECONDS, run_demo, scaled_scenario
from edge.firmware_sim import load_scenario


def test_schedule_and_time_constants_scale_together() -> None:
    story = load_scenario("demo")
    short = scaled_scenario(story, 1 / 3)
    (fault,) = short.schedule
    assert (fault.at, fault.until) == pytest.approx((4 / 3, 4.0))
    temperature = short.devices["tunnel"].points["temperature"]
    assert temperature.params["tau"] == pytest.approx(5 / 3)
    # what is not a time stays as it is
    assert temperature.params["setpoint"] == story.devices["tunnel"].points["temperature"].params["setpoint"]  # fmt: skip
    assert fault.set == story.schedule[0].set
    assert scaled_scenario(story, 1.0) == story


def test_too_short_a_run_is_refused_before_anything_starts() -> None:
    with pytest.raises(ValueError, match="10 s to 3600 s"):
        run_demo(seconds=MIN_SECONDS - 1)
