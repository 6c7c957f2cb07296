"""Process models and the demo's physics, deterministic per seed (no ports needed)."""

from __future__ import annotations

import pytest

from edge.firmware_sim import Model, Plant, decode, load_scenario


def series(plant: Plant, device: str, point: str, times: list[float]) -> list[float]:
    return [plant.value(device, point, t) for t in times]


TIMES = [i * 0.1 for i in range(300)]


@pytest.mark.parametrize("name", ["demo", "bottling", "cold-room"])
def test_same_seed_same_values(name):
    scenario = load_scenario(name)
    for device, points in Plant(scenario).points.items():
        for point in points:
            a = series(Plant(scenario, seed=7), device, point, TIMES)
            b = series(Plant(scenario, seed=7), device, point, TIMES)
            assert a == b, f"{device}.{point}"


def test_other_seed_other_values():
    scenario = load_scenario("demo")
    a = series(Plant(scenario, seed=1), "tunnel", "temperature", TIMES)
    b = series(Plant(scenario, seed=2), "tunnel", "temperature", TIMES)
    assert a != b
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 0.2  # only the noise differs


def test_values_do_not_depend_on_how_often_they_are_read():
    scenario = load_scenario("bottling")
    dense = Plant(scenario, seed=5)
    sparse = Plant(scenario, seed=5)
    weights = series(dense, "scale", "weight", TIMES)
    temperatures = series(dense, "tunnel-2", "temperature", TIMES)
    for i in (30, 173, 299):
        assert sparse.value("scale", "weight", TIMES[i]) == weights[i]
        assert sparse.value("tunnel-2", "temperature", TIMES[i]) == temperatures[i]


@pytest.mark.parametrize("seed", range(10))
def test_demo_cooling_failure_timeline(seed):
    """The contract `edge demo` relies on: above 8 degC before 11 s, back below 7 before 25 s."""
    plant = Plant(load_scenario("demo"), seed=seed)
    values = {
        round(t, 1): plant.value("tunnel", "temperature", t) for t in [i * 0.1 for i in range(301)]
    }
    assert abs(values[0.0] - 4.0) < 0.1
    assert all(v < 5.0 for t, v in values.items() if t < 4.0)  # steady at 4 before the failure
    first_above = min(t for t, v in values.items() if v > 8.0)
    assert 4.0 < first_above < 11.0
    back_below = min(t for t, v in values.items() if t > 12.0 and v < 7.0)
    assert back_below < 25.0
    assert max(values.values()) < 12.0
    assert all(v < 7.0 for t, v in values.items() if t >= back_below)


def test_demo_register_map():
    plant = Plant(load_scenario("demo"), seed=0)
    plant.refresh("tunnel", 8.0)
    bank = plant.modbus["tunnel"].bank
    words = bank.get("holding", 0, 4)
    assert decode(words[0:2], "float32", "ABCD") == pytest.approx(
        plant.value("tunnel", "temperature", 8.0), abs=1e-5
    )
    assert 800 <= words[2] <= 900  # %RH x10 around 85 %
    assert words[3] == 1
    assert plant.modbus["tunnel"].unit == 1


def test_thermal_lag_reaches_63_percent_in_tau():
    model = Model("thermal", {"start": 0.0, "setpoint": 10.0, "tau": 5.0})
    assert model.value_at(5.0) == pytest.approx(10 * (1 - 2.718281828**-1), rel=1e-3)


def test_normal_drift_and_scatter():
    model = Model("normal", {"mean": 500.0, "sd": 2.0, "drift": -0.1, "period": 1.0}, key=(1, "x"))
    early = [model.value_at(t) for t in range(1, 201)]
    # expected means 500 - 0.1 * 10.5 and 500 - 0.1 * 190.5, each +- 3 standard errors (1.34)
    assert 497.6 < sum(early[:20]) / 20 < 500.3
    assert 479.6 < sum(early[-20:]) / 20 < 482.3


def test_scheduled_parameter_change_is_deterministic():
    plant = Plant(load_scenario("demo"), seed=0)
    before = plant.value("tunnel", "temperature", 3.9)
    during = plant.value("tunnel", "temperature", 11.0)
    assert before < 4.1 < 9.0 < during
