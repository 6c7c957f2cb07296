"""Every broken rule file yields exactly the problems written at its end (``# expect:`` lines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import ConfigError
from edge.rules.loader import check_rules, load_rules

BROKEN = Path(__file__).parent / "broken"
FILES = sorted(BROKEN.glob("*.yaml"))
KNOWN = {"tunnel_temp": "degC", "fill_weight": "g", "cap_torque": "N·m", "lot_code": ""}


def expected(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [
        f"{path}:{line.removeprefix('# expect: ').replace('{file}', str(path))}"
        for line in lines
        if line.startswith("# expect: ")
    ]


def test_there_are_at_least_twenty_distinct_mistakes() -> None:
    assert len(FILES) >= 20
    assert all(expected(p) for p in FILES)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_broken_file_reports_its_problems(path: Path) -> None:
    ruleset, problems = check_rules([path], KNOWN)
    assert ruleset is None
    assert [str(p) for p in problems] == expected(path)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_load_rules_raises_config_error_with_the_same_lines(path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_rules([path], KNOWN)
    assert info.value.problems == expected(path)
    assert "Traceback" not in str(info.value)


def test_problems_of_several_files_come_out_together_in_file_order() -> None:
    first, second = BROKEN / "unknown_point.yaml", BROKEN / "bad_severity.yaml"
    _, problems = check_rules([second, first], KNOWN)
    assert [str(p) for p in problems] == expected(second) + expected(first)
