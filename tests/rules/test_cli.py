"""``edge rules check|test|explain`` run in-process through click, with the real engine."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from click.testing import CliRunner

from edge.cli import main

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples" / "rules"
BROKEN = Path(__file__).parent / "broken"
NODE = ROOT / "edge" / "demo" / "node.toml"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["rules", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("ts,point,value,quality\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


# -- check --------------------------------------------------------------------------------------


def test_check_passes_the_examples() -> None:
    code, out, _ = run("check", str(EXAMPLES / "tunnel.yaml"), str(EXAMPLES / "bottling.yaml"))
    assert code == 0
    assert out.startswith("ok: 13 rules in 2 file(s), set hash ")


def test_check_prints_every_problem_and_exits_1() -> None:
    path = BROKEN / "many_errors.yaml"
    code, out, err = run("check", str(path))
    assert code == 1
    assert [line.split(": ", 1)[0] for line in out.splitlines()] == [
        f"{path}:7:15",
        f"{path}:12:15",
        f"{path}:13:9",
    ]  # without --config, point names are not checked
    assert "4 problem" not in err
    assert "3 problem(s) in 1 file(s)" in err
    assert "Traceback" not in out + err


def test_check_against_a_node_config_checks_points_and_units(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    line_a = "  - {id: a, kind: limit, point: tunnel_tmp, high: 8}"
    line_b = "  - {id: b, kind: limit, point: tunnel_temp, high: 46 degF}"
    rules.write_text(f"rules:\n{line_a}\n{line_b}\n", encoding="utf-8")
    col_a, col_b = line_a.index("tunnel_tmp") + 1, line_b.index("46 degF") + 1
    code, out, _ = run("check", str(rules), "--config", str(NODE))
    assert code == 1
    assert out.splitlines() == [
        f"{rules}:2:{col_a}: unknown point 'tunnel_tmp' (did you mean 'tunnel_temp'?)",
        f"{rules}:3:{col_b}: high: unit 'degF' does not match the unit 'degC' of point "
        "'tunnel_temp' (units are checked, not converted)",
    ]


def test_check_json_is_one_object_with_positions() -> None:
    path = BROKEN / "duplicate_key.yaml"
    code, out, _ = run("check", "--json", str(path))
    assert code == 1
    body = json.loads(out)
    assert body["ok"] is False
    assert body["rules"] is None
    assert body["problems"] == [
        {
            "file": str(path),
            "line": 6,
            "col": 5,
            "message": "duplicate key 'high' (first at line 5, column 5)",
        },
    ]
    assert body["points_checked"] is False
    assert body["warnings"] == [
        "point names not checked: give --config node.toml (no node.toml beside the rule files)"
    ]
    code, out, _ = run("check", "--json", str(EXAMPLES / "tunnel.yaml"))
    body = json.loads(out)
    assert (code, body["ok"], body["problems"], body["rules"]) == (0, True, [], 3)
    assert len(body["hash"]) == 64


def test_format_json_is_a_hidden_alias_of_json() -> None:
    path = BROKEN / "duplicate_key.yaml"
    assert run("check", "--format", "json", str(path)) == run("check", "--json", str(path))
    _, help_text, _ = run("check", "--help")
    assert "--json" in help_text
    assert "--format" not in help_text


def test_a_node_toml_beside_the_rules_is_used_and_said(tmp_path: Path) -> None:
    (tmp_path / "node.toml").write_text(NODE.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "rules").mkdir()
    rules = tmp_path / "rules" / "r.yaml"
    rules.write_text("rules:\n  - {id: a, kind: limit, point: tunnel_tmp, high: 8}\n")
    code, out, err = run("check", str(rules))
    assert code == 1
    assert out == f"{rules}:2:33: unknown point 'tunnel_tmp' (did you mean 'tunnel_temp'?)\n"
    assert f"points checked against {tmp_path / 'node.toml'} (found beside the rules)" in err
    # the hash is the same whether the points were checked or not
    rules.write_text("rules:\n  - {id: a, kind: limit, point: tunnel_temp, high: 8}\n")
    checked = json.loads(run("check", "--json", str(rules))[1])
    (tmp_path / "node.toml").unlink()
    unchecked = json.loads(run("check", "--json", str(rules))[1])
    assert (checked["points_checked"], unchecked["points_checked"]) == (True, False)
    assert checked["hash"] == unchecked["hash"]


def test_without_any_config_a_misspelt_point_passes_with_a_warning(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text("rules:\n  - {id: a, kind: limit, point: tunnel_tmp, high: 8}\n")
    code, out, err = run("check", str(rules))
    assert code == 0
    assert out.startswith("ok: 1 rules")
    assert "warning: point names not checked: give --config node.toml" in err


def test_a_broken_node_toml_beside_the_rules_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    (tmp_path / "node.toml").write_text("[node\n", encoding="utf-8")
    rules = tmp_path / "r.yaml"
    rules.write_text("rules:\n  - {id: a, kind: limit, point: p, high: 8}\n")
    code, _, err = run("check", str(rules))
    assert code == 0
    assert "(found beside the rule files) has 1 problem(s); see edge config check" in err


def test_errors_are_json_in_json_mode(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "d.csv", ["0,tunnel_temp,4.0"])
    code, out, err = run("test", str(BROKEN / "duplicate_key.yaml"), "--data", str(data), "--json")
    assert (code, err) == (1, "")
    body = json.loads(out)
    assert (body["ok"], body["error"]) == (False, "bad rule files")
    assert body["problems"] == [
        {
            "file": str(BROKEN / "duplicate_key.yaml"),
            "line": 6,
            "col": 5,
            "message": "duplicate key 'high' (first at line 5, column 5)",
        }
    ]
    bad = write_csv(tmp_path / "bad.csv", ["0,tunnel_temp,4.0,great"])
    code, out, _ = run("test", str(EXAMPLES / "tunnel.yaml"), "--data", str(bad), "--json")
    body = json.loads(out)
    assert code == 1
    assert body["problems"][0]["line"] == 2
    assert "unknown quality 'great'" in body["problems"][0]["message"]


def test_check_of_a_missing_file_is_one_line() -> None:
    code, out, _ = run("check", "/nonexistent/rules.yaml")
    assert code == 1
    assert out == "/nonexistent/rules.yaml:1:1: cannot read: No such file or directory\n"


# -- test ---------------------------------------------------------------------------------------

TUNNEL_ROWS = [
    "0,tunnel_temp,4.0",
    "1,tunnel_temp,8.4",  # above 8.0 from t=1: on_delay 2 s -> fires at t=3
    "2,tunnel_temp,8.6",
    "3,tunnel_temp,8.7",
    "4,tunnel_temp,7.4",  # at/below 7.5 (8.0 - deadband) from t=4: off_delay 2 s -> clears at t=6
    "5,tunnel_temp,7.5",
    "6,tunnel_temp,7.0",
    "7,tunnel_temp,4.0",
]


def events_of(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


def test_replay_prints_the_transitions_of_the_spec(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "rec.csv", TUNNEL_ROWS)
    code, out, _ = run("test", str(EXAMPLES / "tunnel.yaml"), "--data", str(data), "--json")
    assert code == 0
    high = [
        (e["ts"], e["event"], e["to_state"])
        for e in events_of(out)
        if e["rule"] == "tunnel-temp-high"
    ]
    assert high == [(3.0, "activated", "active_unack"), (6.0, "cleared", "rtn_unack")]


def test_replay_runs_the_clock_on_until(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "rec.csv", TUNNEL_ROWS)
    args = ("test", str(EXAMPLES / "tunnel.yaml"), "--data", str(data), "--json")
    _, out, _ = run(*args)
    assert not any(e["rule"] == "tunnel-temp-stale" for e in events_of(out))
    _, out, _ = run(*args, "--until", "1970-01-01T00:00:20Z")
    stale = [(e["event"], e["ts"]) for e in events_of(out) if e["rule"] == "tunnel-temp-stale"]
    assert stale == [("activated", 12.0)]  # last reading at 7 s, max_age 5 s


def test_replay_table_output(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "rec.csv", TUNNEL_ROWS)
    code, out, _ = run("test", str(EXAMPLES / "tunnel.yaml"), "--data", str(data))
    assert code == 0
    assert "1970-01-01T00:00:03.000Z" in out
    assert "normal -> active_unack" in out
    assert out.rstrip().endswith(f"events from {len(TUNNEL_ROWS)} readings")


def test_expect_update_then_match_then_differ(tmp_path: Path) -> None:
    rules = str(EXAMPLES / "tunnel.yaml")
    data = write_csv(tmp_path / "rec.csv", TUNNEL_ROWS)
    expected = tmp_path / "expected.yaml"
    code, out, _ = run("test", rules, "--data", str(data), "--expect", str(expected), "--update")
    assert code == 0
    assert expected.read_text(encoding="utf-8").startswith("# edge rules test timeline")
    code, out, _ = run("test", rules, "--data", str(data), "--expect", str(expected))
    assert code == 0
    assert out.startswith("ok: ")
    assert out.rstrip().endswith(f"match {expected}")
    # the excursion is broken at t=2: above 8.0 for 1 s twice, never 2 s: the alarm never fires
    changed = write_csv(
        tmp_path / "changed.csv",
        [r.replace("2,tunnel_temp,8.6", "2,tunnel_temp,7.0") for r in TUNNEL_ROWS],
    )
    code, out, err = run("test", rules, "--data", str(changed), "--expect", str(expected))
    assert code == 1
    removed = [line for line in out.splitlines() if line.startswith("-at=")]
    assert any("rule=tunnel-temp-high  point=tunnel_temp  event=activated" in r for r in removed)
    assert any("rule=tunnel-temp-high  point=tunnel_temp  event=cleared" in r for r in removed)
    added = [line for line in out.splitlines() if line.startswith("+at=")]
    assert not any("tunnel-temp-high" in a for a in added)
    assert f"timeline differs from {expected}" in err


def test_update_needs_expect(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "rec.csv", TUNNEL_ROWS)
    code, _, err = run("test", str(EXAMPLES / "tunnel.yaml"), "--data", str(data), "--update")
    assert code == 2
    assert "--update needs --expect" in err


def test_bad_csv_rows_are_reported_by_line(tmp_path: Path) -> None:
    data = tmp_path / "bad.csv"
    data.write_text(
        "ts,point,value\nyesterday,tunnel_temp,4\n5,tunnel_temp\n6,t,1,great\n", encoding="utf-8"
    )
    code, _, err = run("test", str(EXAMPLES / "tunnel.yaml"), "--data", str(data))
    assert code == 1
    assert err.splitlines() == [
        f"{data}:2: bad time 'yesterday' (expected ISO-8601 like 2026-11-23T10:00:00Z or "
        "epoch seconds)",
        f"{data}:3: expected ts,point,value[,quality], got 2 columns",
        f"{data}:4: unknown quality 'great' (one of: good, stale, comm_fail, config_error)",
    ]


def test_broken_rules_stop_test_with_positions(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "rec.csv", TUNNEL_ROWS)
    code, _, err = run("test", str(BROKEN / "bad_severity.yaml"), "--data", str(data))
    assert code == 1
    assert err.startswith(f"{BROKEN / 'bad_severity.yaml'}:6:15: severity: unknown value 'hihg'")


def test_lot_end_checks_against_an_independent_computation(tmp_path: Path) -> None:
    good = [500.0, 500.4, 499.6, 500.2, 499.8, 500.1, 499.9, 500.3, 499.7, 500.0]
    short = [500.0, 503.0, 497.0]
    rows = ["0,lot_code,0042"]
    t = 1
    for v in good:
        rows += [f"{t},fill_weight,{v}", f"{t},cap_torque,1.7", f"{t},tunnel_temp,4.0"]
        t += 1
    rows.append(f"{t},lot_code,0043")
    for v in short:
        t += 1
        rows += [f"{t},fill_weight,{v}", f"{t},cap_torque,1.7", f"{t},tunnel_temp,4.0"]
    rows.append(f"{t + 1},lot_code,0044")
    data = write_csv(tmp_path / "rec.csv", rows)
    code, out, _ = run("test", str(EXAMPLES / "bottling.yaml"), "--data", str(data), "--json")
    assert code == 0
    ends = [e for e in events_of(out) if e["type"] == "lot" and e["kind"] == "lot_end"]
    assert [e["lot"] for e in ends] == ["0042", "0043"]  # lot codes stay text

    def verdicts(values: list[float]) -> dict[str, bool]:
        mean, sd = statistics.fmean(values), statistics.stdev(values)
        cpk = min(505 - mean, mean - 495) / (3 * sd)
        return {
            "count >= 10": len(values) >= 10,
            "mean >= 499": mean >= 499,
            "mean <= 501": mean <= 501,
            "std <= 1.5": sd <= 1.5,
            "cpk >= 1.33": cpk >= 1.33,
        }

    for end, values in zip(ends, [good, short], strict=True):
        got = {c["text"]: c["passed"] for c in end["checks"] if c["rule"] == "fill-weight-lot"}
        assert got == verdicts(values)
    assert verdicts(short)["count >= 10"] is False


def test_real_process_exit_codes_and_no_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    broken = BROKEN / "yaml_syntax.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "rules", "check", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"{broken}:5:9: invalid YAML: ")
    assert "Traceback" not in proc.stdout + proc.stderr


# -- explain ------------------------------------------------------------------------------------


def test_explain_reports_on_delay_progress(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "rec.csv", TUNNEL_ROWS)
    rules = str(EXAMPLES / "tunnel.yaml")
    args = ("explain", rules, "--data", str(data), "--rule", "tunnel-temp-high")
    code, out, _ = run(*args, "--at", "1970-01-01T00:00:02Z")
    assert code == 0
    # above 8.0 since t=1, asked at t=2: one second of the two-second on-delay has run
    assert "condition true for 1 s of the 2 s on-delay" in out
    code, out, _ = run(*args, "--at", "4.5")
    assert code == 0
    assert "active_unack" in out.splitlines()[0]
    # back at/below 7.5 since t=4, asked at t=4.5
    assert "condition false for 500 ms of the 2 s off-delay" in out


def test_explain_unknown_rule_and_bad_time(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "rec.csv", TUNNEL_ROWS)
    rules = str(EXAMPLES / "tunnel.yaml")
    code, _, err = run(
        "explain", rules, "--data", str(data), "--rule", "tunnel-temp-hgh", "--at", "3"
    )
    assert code == 1
    assert err == "unknown rule 'tunnel-temp-hgh' (did you mean 'tunnel-temp-high'?)\n"
    code, _, err = run(
        "explain", rules, "--data", str(data), "--rule", "tunnel-temp-high", "--at", "noon"
    )
    assert code == 2
    assert "bad time 'noon'" in err


def test_rules_test_warns_when_points_are_not_checked(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text("rules:\n  - {id: a, kind: limit, point: tunnel_tmp, high: 8}\n")
    data = write_csv(tmp_path / "rec.csv", TUNNEL_ROWS)
    code, _, err = run("test", str(rules), "--data", str(data))
    assert code == 0
    assert "warning: point names not checked: give --config node.toml" in err
    code, _, err = run("test", str(rules), "--data", str(data), "--config", str(NODE))
    assert code == 1
    assert "unknown point 'tunnel_tmp' (did you mean 'tunnel_temp'?)" in err
