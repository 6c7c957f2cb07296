"""Scenario files: shipped ones load; mistakes are reported with file:line:col and key path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.errors import ConfigError
from edge.firmware_sim import list_scenarios, load_scenario, parse_scenario

GOOD = """\
name: t
buses:
  rs485: {kind: rtu, baudrate: 9600}
devices:
  probe:
    bus: rs485
    unit: 3
    points:
      temp: {register: 0, type: float32, model: {kind: thermal, tau: 5s}}
"""


def problems(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "line.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    return info.value.problems


def test_shipped_scenarios_load():
    assert set(list_scenarios()) >= {"demo", "bottling", "cold-room"}
    demo = load_scenario("demo")
    assert demo.buses["tunnel-bus"].baudrate == 19200
    assert (demo.buses["tunnel-bus"].parity, demo.buses["tunnel-bus"].stopbits) == ("N", 1)
    tunnel = demo.devices["tunnel"]
    assert tunnel.unit == 1
    assert [(p.register, p.type, p.order) for p in tunnel.points.values()] == [
        (0, "float32", "ABCD"),
        (2, "uint16", "ABCD"),
        (3, "uint16", "ABCD"),
    ]
    cold = load_scenario("cold-room")
    assert cold.buses["cold-bus"].baudrate == 9600
    bottling = load_scenario("bottling")
    units = sorted(d.unit for d in bottling.devices.values() if d.bus == "line-bus")
    assert units == [1, 2, 3, 4]  # several units on one RS-485 bus


def test_good_file(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(GOOD)
    scenario = load_scenario(path)
    assert scenario.devices["probe"].points["temp"].params == {"tau": 5.0}


def test_unknown_key_with_suggestion_and_position(tmp_path):
    text = GOOD.replace("type: float32", "tpye: float32")
    assert problems(text, tmp_path) == [
        f"{tmp_path / 'line.yaml'}:9:27: devices.probe.points.temp.tpye: "
        "unknown key (did you mean 'type'?)"
    ]


def test_every_problem_is_reported_at_once(tmp_path):
    text = GOOD.replace("baudrate: 9600", "baudrate: fast").replace("unit: 3", "unit: 300")
    text = text.replace("float32", "flot32").replace("tau: 5s", "tau: 5")
    found = problems(text, tmp_path)
    assert len(found) == 4
    assert found[0].endswith(
        ":3:32: buses.rs485.baudrate: expected an integer, got a string 'fast'"
    )
    assert found[1].endswith(":7:11: devices.probe.unit: 300 is outside 1..247")
    assert "devices.probe.points.temp.type: 'flot32' is not one of" in found[2]
    assert "(did you mean 'float32'?)" in found[2]
    assert found[3].endswith(
        "devices.probe.points.temp.model.tau: "
        "expected a duration with a unit such as '5s' or '500ms', got 5"
    )
    assert all(line.startswith(str(tmp_path / "line.yaml") + ":") for line in found)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("bus: rs485", "bus: rs458"),
            "devices.probe.bus: no bus named 'rs458' (did you mean 'rs485'?)",
        ),
        (
            ("register: 0,", "register: 99,"),
            "holding 99..100 lies outside the device's holding table",
        ),
        (("kind: thermal", "kind: thermic"), "model.kind: 'thermic' is not one of"),
        (("tau: 5s", "tau: 5s, setpt: 2"), "model.setpt: unknown key (did you mean 'setpoint'?)"),
        (("kind: rtu", "kind: serial"), "buses.rs485.kind: 'serial' is not one of rtu, tcp, line"),
    ],
)
def test_single_mistakes(tmp_path, edit, expected):
    found = problems(GOOD.replace(*edit), tmp_path)
    assert len(found) == 1
    assert expected in found[0]
    assert found[0].split(":")[1].isdigit()  # carries a line number


def test_duplicate_unit_and_overlapping_registers(tmp_path):
    text = (
        GOOD
        + """\
  probe2:
    bus: rs485
    unit: 3
    points:
      a: {register: 0, type: uint32}
      b: {register: 1, type: uint16}
"""
    )
    found = problems(text, tmp_path)
    assert any(
        ":12:11: devices.probe2.unit: unit 3 on bus 'rs485' is already device 'probe'" in f
        for f in found
    )
    assert any(
        "devices.probe2.points.b.register: holding 1 is already used by point 'a'" in f
        for f in found
    )


def test_schedule_mistakes(tmp_path):
    text = (
        GOOD
        + """\
schedule:
  - {at: 1s, device: prbe, fault: noise}
  - {at: 1s, device: probe, point: temp, set: {setpoint: 3, colour: 2}}
  - {at: 2s, until: 1s, device: probe, fault: slow_response, params: {delay: fast}}
  - {at: 1s, device: probe, fault: smoke}
  - {at: 1s, device: probe}
"""
    )
    found = problems(text, tmp_path)
    text_all = "\n".join(found)
    assert ":11:22: schedule[0].device: no device named 'prbe' (did you mean 'probe'?)" in text_all
    assert "schedule[1].set.colour: not a parameter of model 'thermal'" in text_all
    assert "schedule[2].until: must be later than at" in text_all
    assert "schedule[2].params.delay: bad duration 'fast'" in text_all
    assert "schedule[3].fault: 'smoke' is not one of" in text_all
    assert "schedule[4]: an event needs exactly one of set (model parameters) or fault" in text_all


def test_yaml_syntax_error_has_position(tmp_path):
    found = problems("buses: [1,\n  b: 2\n", tmp_path)
    assert len(found) == 1
    assert found[0].startswith(f"{tmp_path / 'line.yaml'}:")
    assert "not valid YAML" in found[0]


def test_yaml_12_semantics():
    # YAML 1.1 would read `no` as false and 010 as octal 8
    scenario = parse_scenario(
        GOOD.replace("unit: 3", "unit: 010").replace("name: t", "name: no"), None
    )
    assert scenario.name == "no"
    assert scenario.devices["probe"].unit == 10


def test_missing_names_and_files(tmp_path):
    with pytest.raises(
        ConfigError, match=r"nosuch: no such scenario \(shipped: bottling, cold-room, demo"
    ):
        load_scenario("nosuch")
    with pytest.raises(ConfigError, match="no such scenario file"):
        load_scenario(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="a scenario must be a mapping"):
        parse_scenario("- 1\n", Path("x.yaml"))


def test_cli_rejects_bad_file_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("type: float32", "type: flot32").replace("bus: rs485", "bus: nope"))
    result = subprocess.run(
        [sys.executable, "-m", "edge", "sim", "run", str(bad), "--run-dir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"edge: {bad}:6:10: devices.probe.bus: no bus named 'nope'")
    assert lines[1].startswith(f"edge: {bad}:9:33: devices.probe.points.temp.type: 'flot32'")
    assert result.stdout == ""
