"""The node config loader: every key documented in the README, every mistake one precise line."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.cli import main
from edge.config import load_config, parse_config
from edge.errors import ConfigError

GOOD = """
[node]
id = "line1-gw1"
site = "plant-a"
data_dir = "var"

[buses.rs485-1]
kind = "rtu"
port = "/dev/ttyUSB0"
baudrate = 19200
parity = "E"
timeout = "150ms"

[buses.plc]
kind = "tcp"
address = "127.0.0.1:5020"

[devices.tunnel]
bus = "rs485-1"
unit = 3
poll = "500ms"
address_base = 1
forbidden = [[100, 110]]

[points.tunnel_temp]
device = "tunnel"
register = 1
type = "float32"
order = "CDAB"
scale = 0.1
unit = "degC"

[points.running]
device = "tunnel"
register = 5
table = "coil"
type = "bool"

[rules]
files = ["rules/tunnel.yaml"]

[ledger]
flush_interval = "20ms"
readings_retention = "7d"

[mqtt]
host = "broker.local"
port = 8883
"""


def test_good_config_loads_into_typed_values(tmp_path: Path) -> None:
    f = tmp_path / "node.toml"
    f.write_text(GOOD)
    cfg = load_config(f)
    assert cfg.node_id == "line1-gw1"
    assert cfg.data_dir == tmp_path / "var"
    bus = cfg.buses["rs485-1"]
    assert (bus.kind, bus.baudrate, bus.parity, bus.timeout) == ("rtu", 19200, "E", 0.15)
    assert cfg.buses["plc"].address == "127.0.0.1:5020"
    dev = cfg.devices["tunnel"]
    assert (dev.unit, dev.poll, dev.address_base, dev.forbidden) == (3, 0.5, 1, ((100, 110),))
    p = cfg.points["tunnel_temp"]
    assert (p.type, p.order, p.scale, p.unit, p.register) == ("float32", "CDAB", 0.1, "degC", 1)
    assert cfg.points["running"].table == "coil"
    assert cfg.rules.files == (tmp_path / "rules/tunnel.yaml",)
    assert cfg.ledger.flush_interval == pytest.approx(0.02)
    assert cfg.ledger.readings_retention == 7 * 86400
    assert cfg.mqtt is not None
    assert cfg.mqtt.port == 8883


def test_node_files_live_in_the_data_dir_unless_the_key_is_placed_elsewhere(tmp_path: Path) -> None:
    cfg = parse_config(GOOD, tmp_path / "node.toml")
    var = tmp_path / "var"
    assert (cfg.ledger_path, cfg.key_path, cfg.control_socket) == (
        var / "ledger.db", var / "node.key", var / "control.sock",
    )  # fmt: skip
    keyed = parse_config(
        GOOD.replace('flush_interval = "20ms"', 'key_file = "/etc/edge/gw.key"'),
        tmp_path / "n.toml",
    )
    assert keyed.key_path == Path("/etc/edge/gw.key")


def test_mqtt_is_optional(tmp_path: Path) -> None:
    text = GOOD.split("[mqtt]")[0]
    assert parse_config(text, tmp_path / "n.toml").mqtt is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('poll = "500ms"', 'poll = "5 parsecs"'),
            "n.toml: devices.tunnel.poll: bad duration '5 parsecs'",
        ),
        (("unit = 3", "unit = 300"), "n.toml: devices.tunnel.unit: 300 is outside 0..247"),
        (
            ("unit = 3", 'unit = "3"'),
            "n.toml: devices.tunnel.unit: expected an integer, got a string '3'",
        ),
        (
            ("baudrate = 19200", "baudrat = 19200"),
            "n.toml: buses.rs485-1.baudrat: unknown key (did you mean 'baudrate'?)",
        ),
        (
            ('type = "float32"', 'type = "float23"'),
            "n.toml: points.tunnel_temp.type: 'float23' is not one of",
        ),
        (
            ('order = "CDAB"', 'order = "ACBD"'),
            "n.toml: points.tunnel_temp.order: 'ACBD' is not one of ABCD, DCBA, BADC, CDAB",
        ),
        (
            ('bus = "rs485-1"', 'bus = "rs485-2"'),
            "n.toml: devices.tunnel.bus: no bus named 'rs485-2' (did you mean 'rs485-1'?)",
        ),
        (('id = "line1-gw1"\n', ""), "n.toml: node.id: missing required key"),
        (
            ('parity = "E"', 'parity = "X"'),
            "n.toml: buses.rs485-1.parity: 'X' is not one of N, E, O",
        ),
        (
            ('address = "127.0.0.1:5020"', 'address = "127.0.0.1"'),
            "n.toml: buses.plc.address: expected host:port",
        ),
        (
            ("forbidden = [[100, 110]]", "forbidden = [[110, 100]]"),
            "n.toml: devices.tunnel.forbidden[0]: expected [first, last]",
        ),
        (
            ("register = 1\n", "register = 0\n"),
            "n.toml: points.tunnel_temp.register: 0 is outside 1..65536",
        ),
        (
            ("scale = 0.1", "scale = true"),
            "n.toml: points.tunnel_temp.scale: expected an integer or a number, got a boolean true",
        ),
        (("port = 8883", "port = 88830"), "n.toml: mqtt.port: 88830 is outside 1..65535"),
        (
            ('flush_interval = "20ms"', 'flush_interval = "0s"'),
            "n.toml: ledger.flush_interval: duration must be positive",
        ),
        (
            ('type = "bool"', 'type = "float32"'),
            "n.toml: points.running.type: a coil point holds one bit",
        ),
    ],
)
def test_each_mistake_gives_one_precise_line(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    old, new = change
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    # the line is that of the changed key (of its table when the key was removed), found here
    # by reading the text, independently of the loader's TOML scan
    at = GOOD.index(old) if new.strip() else GOOD.index("[node]")
    line = GOOD[:at].count("\n") + 1
    with pytest.raises(ConfigError) as info:
        parse_config(text, Path("n.toml"))
    assert len(info.value.problems) == 1, info.value.problems
    expected = expected.replace("n.toml: ", f"n.toml:{line}: ", 1)
    assert info.value.problems[0].startswith(expected), info.value.problems


def test_all_problems_are_reported_together() -> None:
    text = GOOD.replace('poll = "500ms"', 'poll = "soon"').replace(
        "baudrate = 19200", "baudrate = -1"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, Path("n.toml"))
    assert [p.split(": ")[1] for p in info.value.problems] == [
        "buses.rs485-1.baudrate",
        "devices.tunnel.poll",
    ]


def test_toml_syntax_error_names_line_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("[node]\nid = \n", Path("n.toml"))
    assert str(info.value) == "n.toml:2:6: TOML syntax: Invalid value"


def test_cli_config_check_prints_lines_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        GOOD.replace('poll = "500ms"', 'poll = "5 parsecs"').replace("unit = 3", "unit = 999")
    )
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    result = CliRunner().invoke(main, ["config", "check", str(bad), str(good)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    unit_line = GOOD[: GOOD.index("unit = 3")].count("\n") + 1
    assert lines[0] == f"{bad}:{unit_line}: devices.tunnel.unit: 999 is outside 0..247"
    poll_line = GOOD[: GOOD.index('poll = "500ms"')].count("\n") + 1
    assert lines[1].startswith(f"{bad}:{poll_line}: devices.tunnel.poll: bad duration '5 parsecs'")
    assert lines[2].startswith(f"{good}: ok (2 buses, 1 devices, 2 points, 1 rule files)")
    assert "Traceback" not in result.output


def test_cli_config_check_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["config", "check", str(tmp_path / "nope.toml")])
    assert result.exit_code == 1
    assert (
        result.output.strip() == f"{tmp_path / 'nope.toml'}: cannot read: No such file or directory"
    )


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('poll = "500ms"', "poll = 1", "devices.tunnel.poll"),
        ('poll = "500ms"', "poll = 0.5", "devices.tunnel.poll"),
        ('timeout = "150ms"', "timeout = 150", "buses.rs485-1.timeout"),
        ('flush_interval = "20ms"', "flush_interval = 20", "ledger.flush_interval"),
    ],
)
def test_a_bare_number_duration_gets_the_add_a_unit_hint(old: str, new: str, key: str) -> None:
    number = new.split("= ")[1]
    line = GOOD[: GOOD.index(old)].count("\n") + 1
    with pytest.raises(ConfigError) as info:
        parse_config(GOOD.replace(old, new), Path("n.toml"))
    assert info.value.problems == [
        f'n.toml:{line}: {key}: bad duration {number}: add a unit (ms, s, m, h, d), e.g. "{number}s"'
    ]


def test_lines_for_dotted_quoted_inline_and_missing_keys() -> None:
    text = """# a node
[node]
id = "gw"
description = \"\"\"
x = 1
[not a table]
\"\"\"

[buses."rs485.1"]
kind = "rtu"
port = "/dev/ttyUSB0"
parity = "Q"

[devices]
tunnel = { bus = "rs485.1", unit = 999 }
dryer.bus = "nope"

[points.t]
device = "tunnel"
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, Path("n.toml"))
    problems = info.value.problems
    assert problems == [
        "n.toml:4: node.description: unknown key",
        "n.toml:12: buses.rs485.1.parity: 'Q' is not one of N, E, O",
        "n.toml:15: devices.tunnel.unit: 999 is outside 0..247",
        "n.toml:16: devices.dryer.bus: no bus named 'nope'",
        "n.toml:18: points.t.register: missing required key",
    ]


def test_a_missing_table_has_no_line() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config('[buses.b]\nkind = "tcp"\naddress = "h:1"\n', Path("n.toml"))
    assert info.value.problems == [
        "n.toml: node: missing required key",
        "n.toml: node.id: missing required key",
    ]


def test_config_check_json(tmp_path: Path) -> None:
    import json

    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace('poll = "500ms"', "poll = 1"))
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    result = CliRunner().invoke(main, ["config", "check", "--json", str(bad), str(good)])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    line = GOOD[: GOOD.index('poll = "500ms"')].count("\n") + 1
    assert report == {
        "ok": False,
        "files": [
            {"file": str(bad), "ok": False, "problems": [
                {"file": str(bad), "line": line, "key": "devices.tunnel.poll",
                 "message": 'bad duration 1: add a unit (ms, s, m, h, d), e.g. "1s"'}]},
            {"file": str(good), "ok": True, "problems": [], "buses": 2, "devices": 1,
             "points": 2, "rule_files": 1},
        ],
    }  # fmt: skip
    ok = CliRunner().invoke(main, ["config", "check", "--json", str(good)])
    assert ok.exit_code == 0
    assert json.loads(ok.stdout)["ok"] is True


@pytest.mark.parametrize(
    ("data", "where", "byte"),
    [
        (b"\xff\xfe[node]\n", "1:1", "0xff at offset 0"),
        (b'[node]\nid = "gw"\nsite = "Stra\xdfe"\n', "3:13", "0xdf at offset 29"),
    ],
)
def test_a_node_config_that_is_not_utf8_is_one_line_with_its_place(
    tmp_path: Path, data: bytes, where: str, byte: str
) -> None:
    # it was a UnicodeDecodeError traceback in every command taking -c/--config
    import subprocess
    import sys

    path = tmp_path / "node.toml"
    path.write_bytes(data)
    rules = tmp_path / "r.yaml"
    rules.write_text("rules: []\n", encoding="utf-8")
    for args in (["config", "check", str(path)], ["rules", "check", "--config", str(path), str(rules)]):  # fmt: skip
        result = subprocess.run(
            [sys.executable, "-m", "edge", *args], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 1, args
        said = result.stdout + result.stderr  # config check reports on stdout
        assert "Traceback" not in said
        assert f"{path}:{where}: not UTF-8 text (byte {byte}: invalid " in said
        assert said.count("\n") == 1, said


def test_commit_journal_defaults_on_also_on_a_sync_node(tmp_path: Path) -> None:
    base = 'node.id = "n1"\n'
    assert parse_config(base, tmp_path / "node.toml").ledger.commit_journal is True
    with_sync = base + '[sync]\nhost = "127.0.0.1"\n'
    assert parse_config(with_sync, tmp_path / "node.toml").ledger.commit_journal is True
    chosen = with_sync + "[ledger]\ncommit_journal = false\n"
    assert parse_config(chosen, tmp_path / "node.toml").ledger.commit_journal is False


def test_commit_worker_is_a_thread_unless_a_process_is_asked_for(tmp_path: Path) -> None:
    from edge.config import COMMIT_WORKERS as CONFIG_WORKERS
    from edge.ledger.writer_commits import COMMIT_WORKERS

    assert CONFIG_WORKERS == COMMIT_WORKERS  # the config's list is the writer's
    base = 'node.id = "n1"\n'
    assert parse_config(base, tmp_path / "node.toml").ledger.commit_worker == "thread"
    chosen = base + '[ledger]\ncommit_worker = "process"\n'
    assert parse_config(chosen, tmp_path / "node.toml").ledger.commit_worker == "process"
    with pytest.raises(ConfigError, match=r"node\.toml:3.*commit_worker.*fork"):
        parse_config(base + '[ledger]\ncommit_worker = "fork"\n', tmp_path / "node.toml")
