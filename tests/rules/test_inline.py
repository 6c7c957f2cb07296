"""Inline rule tests (``edge rules test TESTFILE``): series, expected alarms, diffs, exit codes."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.cli import main
from edge.rules.fields import Ctx
from edge.rules.inline_tests import _expand
from edge.rules.yamlpos import parse_yaml

ROOT = Path(__file__).parents[2]
SAMPLE = Path(__file__).parent / "inline" / "tunnel_test.yaml"
TUNNEL = ROOT / "examples" / "rules" / "tunnel.yaml"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["rules", "test", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t_test.yaml"
    body = textwrap.dedent(text).replace("TUNNEL", str(TUNNEL))
    path.write_text(body, encoding="utf-8")
    return path


def test_the_sample_test_file_passes() -> None:
    code, out, err = run(str(SAMPLE))
    assert code == 0, out + err
    assert out.count("\nok ") + out.startswith("ok ") == 4
    assert "4 test(s), 0 failed" in err + out


def test_a_missing_expected_alarm_fails_with_a_diff_and_exit_1(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rule_files: [TUNNEL]
        tests:
          - name: the excursion is too short to alarm, but we expect one
            input_series:
              - {point: tunnel_temp, values: "4 8.5 4 4 4"}
            rules: [tunnel-temp-high]
            expected_alarms:
              - {at: 3s, rule: tunnel-temp-high, event: activated}
        """,
    )
    code, out, _ = run(str(path))
    assert code == 1
    assert out.splitlines() == [
        f"FAILED  {path}:4: the excursion is too short to alarm, but we expect one",
        "        expected alarms (-) missing, actual (+) not expected:",
        "          - at 3s: tunnel-temp-high activated",
    ]


def test_an_unexpected_alarm_and_a_wrong_value_are_shown(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rule_files: [TUNNEL]
        tests:
          - name: wrong
            input_series:
              - {point: tunnel_temp, values: "4 9x4 4x4"}
            rules: [tunnel-temp-high]
            expected_alarms:
              - {at: 3s, rule: tunnel-temp-high, event: activated, value: 8}
        """,
    )
    code, out, _ = run(str(path), "--json")
    assert code == 1
    body = json.loads(out)
    assert body["passed"] is False
    assert body["diff"] == [
        "- at 3s: tunnel-temp-high activated value 8",
        "+ at 3s: tunnel-temp-high activated value 9 limit 8",
        "+ at 8s: tunnel-temp-high cleared value 4 limit 8",
    ]


def test_problems_in_a_test_file_have_file_line_col(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rule_files: [TUNNEL]
        tests:
          - name: bad
            input_serie: []
            expected_alarms:
              - {at: 3, rule: tunnel-temp-high, event: fired}
        """,
    )
    code, _, err = run(str(path))
    assert code == 1
    assert err.splitlines() == [
        f"{path}:4:5: missing key 'input_series' (a list of {{point, values}})",
        f"{path}:5:5: unknown key 'input_serie' in a test (did you mean 'input_series'?)",
        f"{path}:7:14: at: bad duration 3 (a unit is required: ms, s, m, h, d, e.g. '2s')",
        f"{path}:7:48: event: unknown value 'fired' (one of: activated, cleared)",
    ]


def test_an_unknown_rule_in_an_expected_alarm_is_a_problem(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rule_files: [TUNNEL]
        tests:
          - name: unknown rule
            input_series: [{point: tunnel_temp, values: [4]}]
            expected_alarms:
              - {at: 3s, rule: tunnel-temp-hihg, event: activated}
        """,
    )
    code, out, _ = run(str(path), "--json")
    assert code == 1
    assert json.loads(out)["problems"] == [
        {
            "file": str(path),
            "line": 7,
            "col": 24,
            "message": "unknown rule 'tunnel-temp-hihg' (did you mean 'tunnel-temp-high'?)",
        }
    ]


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("1 2 3", [1.0, 2.0, 3.0]),
        ("1+2x3", [1.0, 3.0, 5.0, 7.0]),
        ("10-1x2", [10.0, 9.0, 8.0]),
        ("4x2", [4.0, 4.0, 4.0]),
        ("1 _ 2 _x2 3", [1.0, None, 2.0, None, None, 3.0]),
        ("L1 true", ["L1", True]),
    ],
)
def test_series_notation(text: str, values: list[object]) -> None:
    node, problems = parse_yaml(f"v: {json.dumps(text)}\n", "f.yaml")
    assert problems == []
    assert node is not None
    ctx = Ctx("f.yaml")
    assert _expand(ctx, node.items["v"][1]) == values  # type: ignore[attr-defined]


def test_signals_during_an_active_alarm_are_listed(tmp_path: Path) -> None:
    rules = tmp_path / "spc.yaml"
    rules.write_text(
        "rules:\n  - {id: s, kind: spc, point: p, center: 10.0, sigma: 1.0, nelson: all}\n",
        encoding="utf-8",
    )
    # 9 points above the centre (rule 2 from the 9th), then one beyond 3 sigma (rule 1) while
    # the rule 2 alarm is active: no transition shows rule 1, a signal does
    values = [10.5] * 9 + [13.5] + [10.5]
    data = tmp_path / "d.csv"
    data.write_text(
        "ts,point,value\n" + "".join(f"{i},p,{v}\n" for i, v in enumerate(values)),
        encoding="utf-8",
    )
    code, out, _ = run(str(rules), "--data", str(data), "--json")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    transitions = [x for x in lines if x["type"] == "transition"]
    signals = [x for x in lines if x["type"] == "signal"]
    assert [t["event"] for t in transitions] == ["activated"]
    assert [(s["at"][17:19], s["nelson"], s["alarm_active"]) for s in signals] == [
        ("08", [2], False),
        ("09", [1, 2], True),
        ("10", [2], True),
    ]
    # the signal comes right before the transition it caused
    assert lines.index(signals[0]) + 1 == lines.index(transitions[0])
    code, table, _ = run(str(rules), "--data", str(data), "--signals")
    assert code == 0
    assert "(alarm already active)" in table
    assert "1 events and 3 SPC signals from 11 readings" in table


def test_a_rule_file_given_without_data_says_what_to_do() -> None:
    code, _, err = run(str(TUNNEL))
    assert code == 1
    assert (
        f"{TUNNEL}:5:1: this is a rule file, not a test file: give --data recorded.csv"
        in err.splitlines()[-1]
    )


@pytest.mark.parametrize("token", ["4x99999999999", "_x99999999999", "1+1x2000000"])
def test_a_series_that_expands_beyond_the_bound_is_a_problem_not_a_hang(
    tmp_path: Path, token: str
) -> None:
    # Before the bound, "4x99999999999" ran for minutes and took gigabytes before any answer.
    path = write(
        tmp_path,
        f"""
        rule_files: [TUNNEL]
        tests:
          - name: bomb
            input_series: [{{point: tunnel_temp, values: "4 {token}"}}]
            expected_alarms: []
        """,
    )
    code, _, err = run(str(path))
    assert code == 1
    assert err.splitlines()[0] == (
        f"{path}:5:49: values: '{token}' expands the series beyond 1000000 values"
    )
