"""The line-fairness config keys: buses.guard, devices.priority, devices.backoff_cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import BusConfig, parse_config
from edge.drivers.scheduler import DeviceRuntime
from edge.drivers.transport import default_guard, guard_window
from edge.errors import ConfigError

BASE = """
[node]
id = "n"

[buses.line]
kind = "rtu"
port = "/dev/ttyUSB0"
{bus}

[devices.press]
bus = "line"
{device}
"""


def load(bus: str = "", device: str = "") -> tuple[BusConfig, object]:
    cfg = parse_config(BASE.format(bus=bus, device=device), Path("/etc/edge/node.toml"))
    return cfg.buses["line"], cfg.devices["press"]


def test_defaults() -> None:
    bus, dev = load()
    assert bus.guard is None
    assert guard_window(bus) == default_guard(bus) == pytest.approx(32 * 10 / 19200)  # 16.7 ms
    assert default_guard(BusConfig("b", "rtu", baudrate=9600)) == pytest.approx(32 * 10 / 9600)
    assert default_guard(BusConfig("b", "rtu", baudrate=115200)) == 0.01  # the floor
    assert (dev.priority, dev.backoff_cap) == (0, 30.0)  # type: ignore[attr-defined]


def test_values() -> None:
    bus, dev = load('guard = "25ms"', 'priority = 3\nbackoff_cap = "2m"\npoll = "100ms"')
    assert guard_window(bus) == 0.025
    assert (dev.priority, dev.backoff_cap) == (3, 120.0)  # type: ignore[attr-defined]
    rt = DeviceRuntime.build(dev, [])  # type: ignore[arg-type]
    assert rt.breaker.cap == 120.0
    off, _ = load('guard = "0ms"')
    assert guard_window(off) == 0.0  # no guard: the old behaviour


@pytest.mark.parametrize(
    ("bus", "device", "message"),
    [
        ('guard = "soon"', "", "buses.line.guard: bad duration 'soon'"),
        ('guard = "11s"', "", "buses.line.guard: must be within 0..10s, got '11s'"),
        ("guard = 5", "", "buses.line.guard: expected a string, got an integer 5"),
        ("", 'priority = "high"', "devices.press.priority: expected an integer"),
        ("", "priority = 5000", "devices.press.priority: 5000 is outside -1000..1000"),
        ("", 'backoff_cap = "0s"', "devices.press.backoff_cap: duration must be positive"),
        ("", 'backof_cap = "5s"', "devices.press.backof_cap: unknown key (did you mean"),
    ],
)
def test_mistakes_are_one_line_each(bus: str, device: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(bus, device)
    line = 8 if bus else 12  # the line of the key in BASE
    assert str(err.value).startswith(f"/etc/edge/node.toml:{line}: {message}"), err.value
