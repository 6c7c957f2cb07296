"""Shared settings (``defaults:``), one rule for many points (``points:``) and the set's hash."""

from __future__ import annotations

import textwrap
from pathlib import Path

from edge.rules.loader import check_rules, load_rules
from edge.rules.model import LimitRule, StaleRule


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


SHARED = """
    defaults:
      severity: high
      on_delay: 2s
      tags: [cold-chain]
    rules:
      - id: tunnel-high
        kind: limit
        points: [t1, t2]
        high: 8.0 degC
      - id: tunnel-stale
        kind: stale
        point: t1
        max_age: 5s
        severity: low
"""

WRITTEN_OUT = """
    rules:
      - {id: "tunnel-high[t1]", kind: limit, point: t1, high: 8.0 degC, on_delay: 2s,
         severity: high, tags: [cold-chain]}
      - {id: "tunnel-high[t2]", kind: limit, point: t2, high: 8.0 degC, on_delay: 2s,
         severity: high, tags: [cold-chain]}
      - {id: tunnel-stale, kind: stale, point: t1, max_age: 5s, severity: low,
         tags: [cold-chain]}
"""


def test_points_expand_to_one_rule_per_point_with_the_defaults(tmp_path: Path) -> None:
    rs = load_rules([write(tmp_path, SHARED)])
    rules = rs.by_id()
    assert list(rules) == ["tunnel-high[t1]", "tunnel-high[t2]", "tunnel-stale"]
    high = rules["tunnel-high[t2]"]
    assert isinstance(high, LimitRule)
    assert (high.point, high.high, high.on_delay, high.severity.value, high.tags) == (
        "t2",
        8.0,
        2.0,
        "high",
        ("cold-chain",),
    )
    stale = rules["tunnel-stale"]
    assert isinstance(stale, StaleRule)
    assert stale.severity.value == "low"  # the rule's own key wins over the default
    assert stale.tags == ("cold-chain",)  # on_delay is not a stale key: not applied


def test_expanded_rules_hash_as_the_same_rules_written_out(tmp_path: Path) -> None:
    shared = load_rules([write(tmp_path, SHARED, "shared.yaml")])
    written = load_rules([write(tmp_path, WRITTEN_OUT, "written.yaml")])
    assert shared.hash == written.hash


def test_each_expanded_rule_is_placed_at_its_point(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rules:
          - id: r
            kind: limit
            points: [t1, t2]
            high: 8.0
        """,
    )
    _, problems = check_rules([path], {"t1": "", "t3": ""})
    assert [str(p) for p in problems] == [
        f"{path}:5:18: unknown point 't2'",
    ]


def test_the_hash_is_the_same_with_and_without_the_config(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rules:
          - {id: a, kind: limit, point: t1, high: 8.0}
          - {id: b, kind: limit, point: t2, high: 8.0 degC}
          - {id: c, kind: stale, point: t1, max_age: 5s}
          - {id: d, kind: limit, expr: "t1 - t2", high: 1.0}
        """,
    )
    bare = load_rules([path])
    configured = load_rules([path], {"t1": "degC", "t2": "degC"})
    assert bare.hash == configured.hash
    # the config's unit still fills {unit} in messages
    a = configured.by_id()["a"]
    assert a.unit == "degC"
    assert bare.by_id()["a"].unit == ""


def test_a_changed_unit_written_in_the_file_changes_the_hash(tmp_path: Path) -> None:
    one = write(tmp_path, "rules: [{id: b, kind: limit, point: t2, high: 8.0 degC}]\n", "1.yaml")
    two = write(tmp_path, "rules: [{id: b, kind: limit, point: t2, high: 8.0 degF}]\n", "2.yaml")
    assert load_rules([one]).hash != load_rules([two]).hash
