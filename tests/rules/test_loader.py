"""Loading valid rule files: every kind, units, ordering, hashing, multiple files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.errors import ConfigError
from edge.rules.loader import check_rules, load_rules
from edge.rules.model import (
    NELSON_RULES,
    DerivedRule,
    LimitRule,
    LotRule,
    QualityRule,
    RateRule,
    Severity,
    SpcRule,
    StaleRule,
)

EXAMPLES = Path(__file__).parents[2] / "examples" / "rules"
KNOWN = {"tunnel_temp": "degC", "fill_weight": "g", "cap_torque": "N·m", "lot_code": ""}


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_tunnel_example_is_what_the_demo_expects() -> None:
    rs = load_rules([EXAMPLES / "tunnel.yaml"], KNOWN)
    rules = rs.by_id()
    high = rules["tunnel-temp-high"]
    assert isinstance(high, LimitRule)
    assert (high.point, high.high, high.low, high.deadband) == ("tunnel_temp", 8.0, None, 0.5)
    assert (high.on_delay, high.off_delay, high.severity, high.unit) == (
        2.0,
        2.0,
        Severity.HIGH,
        "degC",
    )
    assert high.location.line == 6
    assert high.location.col == 5
    stale = rules["tunnel-temp-stale"]
    assert isinstance(stale, StaleRule)
    assert stale.max_age == 5.0
    assert any(isinstance(r, SpcRule) for r in rs.rules)
    assert len(rs.hash) == 64
    assert rs.lot is None


def test_bottling_example_uses_the_lead_point_names_and_lot_checks() -> None:
    rs = load_rules([EXAMPLES / "bottling.yaml"], KNOWN)
    assert rs.lot == "lot_code"
    assert rs.input_points() == {"fill_weight", "cap_torque", "tunnel_temp", "lot_code"}
    lot = rs.by_id()["fill-weight-lot"]
    assert isinstance(lot, LotRule)
    assert [c.text for c in lot.checks] == [
        "count >= 10",
        "mean >= 499",
        "mean <= 501",
        "std <= 1.5",
        "cpk >= 1.33",
    ]
    assert (lot.low, lot.high) == (495.0, 505.0)
    torque = rs.by_id()["cap-torque-limits"]
    assert torque.unit == "N·m"
    # derived rules come first
    assert isinstance(rs.rules[0], DerivedRule)


def test_every_kind_with_every_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        lot: lot_code
        rules:
          - id: r-limit
            kind: limit
            point: fill_weight
            low: 495
            high: "505 g"
            deadband: 0.25
            on_delay: 1m30s
            off_delay: 500ms
            severity: critical
            tags: [a, b]
            message: "{rule} {point} {value} {limit} {unit} {lot} {severity}"
          - id: r-rate
            kind: rate
            point: tunnel_temp
            max_change: 2 degC
            per: 1m
            window: 10s
            direction: rise
          - {id: r-stale, kind: stale, point: tunnel_temp, max_age: 5s}
          - {id: r-quality, kind: quality, point: cap_torque, duration: 3s}
          - {id: r-quality0, kind: quality, point: cap_torque}
          - {id: r-spc-ucl, kind: spc, point: tunnel_temp, ucl: 8, lcl: 2, nelson: all}
          - {id: r-spc-base, kind: spc, point: tunnel_temp, baseline: 20, nelson: [5, 1]}
          - id: r-lot
            kind: lot
            point: fill_weight
            high: 505
            checks: ["max < 505 g", "cpk > 1"]
    """,
    )
    rs = load_rules([path], KNOWN)
    r = rs.by_id()
    assert r["r-limit"] == LimitRule(
        id="r-limit",
        point="fill_weight",
        low=495.0,
        high=505.0,
        deadband=0.25,
        on_delay=90.0,
        off_delay=0.5,
        severity=Severity.CRITICAL,
        tags=("a", "b"),
        unit="g",
        message="{rule} {point} {value} {limit} {unit} {lot} {severity}",
    )
    rate = r["r-rate"]
    assert isinstance(rate, RateRule)
    assert (rate.max_change, rate.per, rate.window, rate.direction) == (2.0, 60.0, 10.0, "rise")
    assert isinstance(r["r-quality"], QualityRule)
    assert r["r-quality"].duration == 3.0
    assert r["r-quality0"].duration == 0.0  # type: ignore[union-attr]
    ucl = r["r-spc-ucl"]
    assert isinstance(ucl, SpcRule)
    assert (ucl.center, ucl.sigma, ucl.baseline, ucl.nelson) == (5.0, 1.0, 0, NELSON_RULES)
    base = r["r-spc-base"]
    assert isinstance(base, SpcRule)
    assert (base.center, base.sigma, base.baseline, base.nelson) == (None, None, 20, (1, 5))
    lot = r["r-lot"]
    assert isinstance(lot, LotRule)
    assert [(c.stat, c.op, c.value) for c in lot.checks] == [("max", "<", 505.0), ("cpk", ">", 1.0)]
    assert r["r-stale"].severity is Severity.MEDIUM


def test_yaml_1_2_no_is_text_and_1_30_is_not_ninety(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rules:
          - {id: "no", kind: stale, point: tunnel_temp, max_age: 5s, tags: [no, off, yes]}
    """,
    )
    rs = load_rules([path], KNOWN)
    assert rs.rules[0].id == "no"
    assert rs.rules[0].tags == ("no", "off", "yes")


def test_derived_points_are_ordered_by_dependency_and_usable(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rules:
          - {id: over, kind: limit, point: net_pct, high: 2}
          - {id: pct, kind: derived, point: net_pct, expr: "net / 500 * 100", unit: "%"}
          - {id: net, kind: derived, point: net, expr: "fill_weight - 20"}
    """,
    )
    rs = load_rules([path], KNOWN)
    assert [r.id for r in rs.rules] == ["net", "pct", "over"]
    assert rs.by_id()["over"].unit == "%"
    assert rs.input_points() == {"fill_weight"}
    pct = rs.by_id()["pct"]
    assert pct.expression is not None
    assert pct.expression.evaluate({"net": 480.0}) == 96.0


def test_inline_expr_adds_an_implicit_derived_point(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rules:
          - {id: spread, kind: limit, expr: "abs(fill_weight - 500)", high: 5}
    """,
    )
    rs = load_rules([path], KNOWN)
    implicit, rule = rs.rules
    assert isinstance(implicit, DerivedRule)
    assert implicit.point == "expr:spread"
    assert rule.point == "expr:spread"
    assert rule.expression == implicit.expression


def test_unknown_points_are_not_checked_without_known_points(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rules:
          - {id: x, kind: limit, point: anything, high: 1}
          - {id: y, kind: derived, point: z, expr: "whatever + 1"}
    """,
    )
    assert {r.id for r in load_rules([path]).rules} == {"x", "y"}
    with pytest.raises(ConfigError) as info:
        load_rules([path], ["tunnel_temp"])
    assert len(info.value.problems) == 2


def test_configured_units_are_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        units: {tunnel_temp: degF}
        rules:
          - {id: x, kind: limit, point: fill_weight, high: 1 kg}
    """,
    )
    _, problems = check_rules([path], KNOWN)
    assert [p.message for p in problems] == [
        "units.tunnel_temp: 'degF' differs from the configured unit 'degC'",
        "high: unit 'kg' does not match the unit 'g' of point 'fill_weight' (units are checked, "
        "not converted)",
    ]


def test_a_unit_written_first_fixes_the_rule_unit(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rules:
          - {id: x, kind: limit, point: p, low: 1 bar, high: 2 psi}
    """,
    )
    _, problems = check_rules([path])
    assert [p.message for p in problems] == [
        "high: unit 'psi' does not match the unit 'bar' of 'low' (units are checked, not converted)"
    ]


def test_ids_are_unique_across_files_and_lot_must_agree(tmp_path: Path) -> None:
    a = write(
        tmp_path,
        "lot: lot_code\nrules:\n  - {id: x, kind: stale, point: p, max_age: 1s}\n",
        "a.yaml",
    )
    b = write(
        tmp_path, "lot: other\nrules:\n  - {id: x, kind: stale, point: p, max_age: 1s}\n", "b.yaml"
    )
    _, problems = check_rules([a, b])
    assert [str(p) for p in problems] == [
        f"{b}:1:6: lot: 'other' differs from lot 'lot_code' at {a}:1:6",
        f"{b}:3:10: duplicate rule id 'x' (first at {a}:3:5)",
    ]


def test_unreadable_and_empty_files_are_placed_at_1_1(tmp_path: Path) -> None:
    empty = write(tmp_path, "", "empty.yaml")
    blank = write(tmp_path, "# only a comment\n\n", "blank.yaml")
    missing = tmp_path / "missing.yaml"
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00rules")
    _, problems = check_rules([empty, blank, missing, binary])
    assert [str(p) for p in problems] == [
        f"{empty}:1:1: the file is empty (expected a 'rules:' list)",
        f"{blank}:1:1: the file is empty (expected a 'rules:' list)",
        f"{missing}:1:1: cannot read: No such file or directory",
        f"{binary}:1:1: not UTF-8 binary data (byte 0xff at offset 0: invalid start byte); "
        "a rule file is UTF-8 text",
    ]


def test_a_bad_byte_is_placed_at_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    # "Kühlung" in Latin-1 on line 3: the ü (0xfc) is the 14th character of that line
    path.write_bytes(b"rules:\n  - id: a\n    message: K\xfchlung\n")
    _, problems = check_rules([path])
    assert [str(p) for p in problems] == [
        f"{path}:3:15: not UTF-8 text (byte 0xfc at offset 31: invalid start byte); "
        "a rule file is UTF-8 text"
    ]


def test_a_bad_byte_after_multibyte_characters_counts_characters(tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_bytes("rules: []\n# é°C ".encode() + b"\xff\n")
    _, problems = check_rules([path])
    assert [(p.line, p.col) for p in problems] == [(2, 7)]


def test_binary_garbage_and_control_characters_have_a_position(tmp_path: Path) -> None:
    nul = tmp_path / "nul.yaml"
    nul.write_bytes(b"rules:\n  - id: a\x00\x00\x01\n")
    ctl = tmp_path / "ctl.yaml"
    ctl.write_bytes(b"rules:\n  - id: a\x07b\n")
    _, problems = check_rules([nul, ctl])
    assert [str(p) for p in problems] == [
        f"{nul}:2:10: binary data (a NUL character); a rule file is UTF-8 text",
        f"{ctl}:2:10: invalid YAML: control characters are not allowed",
    ]


def test_every_problem_has_file_line_col(tmp_path: Path) -> None:
    """The form editors' and CI's problem matchers read: ``^(.+):(\\d+):(\\d+): (.+)$``."""
    import re

    paths = sorted((Path(__file__).parent / "broken").glob("*.yaml"))
    paths += [tmp_path / "missing.yaml", write(tmp_path, "", "empty.yaml")]
    junk = tmp_path / "junk.yaml"
    junk.write_bytes(bytes(range(256)) * 4)
    known = {"tunnel_temp": "degC", "fill_weight": "g", "cap_torque": "N·m", "lot_code": ""}
    paths.append(junk)
    for path in paths:
        _, problems = check_rules([path], known)
        assert problems, path
        for p in problems:
            assert re.fullmatch(r"(.+):(\d+):(\d+): (.+)", str(p)), str(p)
            assert p.line >= 1
            assert p.col >= 1


def test_hash_ignores_formatting_order_comments_and_spelling(tmp_path: Path) -> None:
    a = write(
        tmp_path,
        """
        rules:
          - {id: a, kind: limit, point: p, high: 8.0, on_delay: 2s}
          - {id: b, kind: stale, point: p, max_age: 1m}
    """,
        "a.yaml",
    )
    b = write(
        tmp_path,
        """
        # same rules, other order and spelling
        rules:
          - id: b
            max_age: 60s
            point: p
            kind: stale
          - kind: limit
            id: a
            high: 8
            point: p
            on_delay: 2000ms
    """,
        "b.yaml",
    )
    c = write(
        tmp_path,
        "rules:\n  - {id: a, kind: limit, point: p, high: 8.1, on_delay: 2s}\n"
        "  - {id: b, kind: stale, point: p, max_age: 1m}\n",
        "c.yaml",
    )
    ha, hb, hc = (load_rules([p]).hash for p in (a, b, c))
    assert ha == hb
    assert ha != hc


def test_equal_rules_compare_equal_and_changed_expressions_do_not(tmp_path: Path) -> None:
    a = write(tmp_path, "rules:\n  - {id: d, kind: derived, point: q, expr: 'p + 1'}\n", "a.yaml")
    b = write(tmp_path, "rules:\n  - {id: d, kind: derived, point: q, expr: 'p+1'}\n", "b.yaml")
    c = write(tmp_path, "rules:\n  - {id: d, kind: derived, point: q, expr: 'p + 2'}\n", "c.yaml")
    ra, rb, rc = (load_rules([p]).rules[0] for p in (a, b, c))
    assert ra == rb
    assert ra != rc


yaml_chars = st.sampled_from(list("rules:-{}[]\"' \n\tidkndpoint,#&*!|>%@`0123456789.limitstale"))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(yaml_chars, max_size=200))
def test_arbitrary_text_gives_problems_never_exceptions(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    ruleset, problems = check_rules([path], KNOWN)
    assert (ruleset is None) == bool(problems)
    for p in problems:
        assert "\n" not in p.message


limit_specs = st.fixed_dictionaries(
    {
        "low": st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)),
        "span": st.floats(1e-3, 1e6),
        "has_high": st.booleans(),
        "frac": st.floats(0, 0.999),
        "on_ms": st.integers(0, 10**7),
        "off_ms": st.integers(0, 10**7),
        "severity": st.sampled_from(list(Severity)),
        "unit": st.booleans(),
    }
).filter(lambda s: s["low"] is not None or s["has_high"])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(limit_specs)
def test_written_limit_rules_load_back_exactly(tmp_path: Path, spec: dict[str, object]) -> None:
    low = spec["low"]
    high = (low if low is not None else 0.0) + spec["span"] if spec["has_high"] else None  # type: ignore[operator]
    deadband = spec["frac"] * spec["span"] if low is not None and high is not None else spec["frac"]  # type: ignore[operator]
    unit = " g" if spec["unit"] else ""
    lines = ["rules:", "  - id: r", "    kind: limit", "    point: fill_weight"]
    if low is not None:
        lines.append(f"    low: {low!r}{unit}")
    if high is not None:
        lines.append(f"    high: {high!r}{unit}")
    lines += [
        f"    deadband: {deadband!r}{unit}",
        f"    on_delay: {spec['on_ms']}ms",
        f"    off_delay: {spec['off_ms'] / 1000!r}s",
        f"    severity: {spec['severity']}",
    ]
    path = tmp_path / "prop.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rule = load_rules([path], KNOWN).rules[0]
    assert isinstance(rule, LimitRule)
    assert (rule.low, rule.high, rule.deadband) == (low, high, deadband)
    assert rule.on_delay == pytest.approx(spec["on_ms"] / 1000, abs=1e-12)  # type: ignore[operator]
    assert rule.off_delay == pytest.approx(spec["off_ms"] / 1000, abs=1e-12)  # type: ignore[operator]
    assert (rule.severity, rule.unit) == (spec["severity"], "g")
