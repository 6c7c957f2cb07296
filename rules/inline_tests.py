"""Rule unit tests written inline, promtool-style: input series and expected alarms in one file.

A test file (YAML; ``edge rules test tunnel_test.yaml``)::

    rule_files: [tunnel.yaml]          # relative to this file
    tests:
      - name: a long excursion alarms after its on_delay and clears after its off_delay
        interval: 1s                   # time between two values of a series (default 1s)
        input_series:
          - point: tunnel_temp
            values: "4 4 8.4 8.6 8.7 8.7 7 7 7 7"
        run_until: 12s                 # optional: the clock runs on to this time
        expected_alarms:
          - {at: 4s, rule: tunnel-temp-high, event: activated, value: 8.7}
          - {at: 9s, rule: tunnel-temp-high, event: cleared}

Series values (a string split at spaces, or a YAML list), as promtool writes them: a number;
``_`` for no reading; ``AxN`` for N+1 times A; ``A+BxN`` / ``A-BxN`` for A, A+B, ... A+N*B;
``_xN`` for N readings missing; anything else is text (a lot code). Value ``i`` of a series is
read at ``i * interval`` seconds (from 1970-01-01T00:00:00Z, as epoch seconds).

``expected_alarms`` is every alarm transition (activated, cleared) the test's rules make, in
time order, each with ``at`` (a duration from the start), ``rule`` and ``event``, and optionally
``value``, ``limit`` (compared to 6 significant digits) and ``message`` (exact). ``rules: [ids]``
limits the comparison to some rules. An expected transition that does not happen, or one that
happens unexpected, fails the test.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.durations import format_duration
from edge.readings import Reading, Value
from edge.rules.alarms import Transition
from edge.rules.expressions import did_you_mean
from edge.rules.fields import Ctx, describe
from edge.rules.loader import check_rules
from edge.rules.model import RuleSet
from edge.rules.yamlpos import Problem, YMap, YNode, YScalar, YSeq, parse_yaml

__all__ = ["InlineTest", "TestResult", "load_suite", "load_tests", "run_test"]

_TOP = ("rule_files", "tests")
_TEST = ("name", "interval", "input_series", "run_until", "rules", "expected_alarms")
_SERIES = ("point", "values")
_EXPECT = ("at", "rule", "event", "value", "limit", "message")
_EVENTS = ("activated", "cleared")
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_STEP = re.compile(rf"({_NUM})(?:([-+])({_NUM}))?x(\d+)")
_GAPS = re.compile(r"_x(\d+)")
#: the most values one series may expand to: a million readings replay in seconds, while a typo
#: like ``4x99999999999`` would otherwise take minutes and gigabytes before any answer
MAX_SERIES_VALUES = 1_000_000


@dataclass(frozen=True, slots=True)
class Expected:
    """One expected alarm transition."""

    at: float
    rule: str
    event: str
    value: float | None = None
    limit: float | None = None
    message: str | None = None
    where: tuple[int, int] = (1, 1)  #: line and column of its rule id in the test file


@dataclass(frozen=True, slots=True)
class InlineTest:
    """One test case of a test file.

    Attributes:
        name: as written (or ``test N``).
        file: the test file; ``line``: where the test starts in it.
        readings: the input series, expanded and sorted by time.
        until: the time the clock runs on to (None: the last reading).
        rules: rule ids compared (empty: every rule).
        expected: the expected transitions, in time order.
    """

    name: str
    file: str
    line: int
    readings: tuple[Reading, ...]
    until: float | None
    rules: frozenset[str]
    expected: tuple[Expected, ...]


@dataclass(frozen=True, slots=True)
class TestResult:
    """What one test gave: passed, or the differences (one line each, ``-`` missing, ``+`` extra)."""

    __test__ = False  # not a pytest class

    test: InlineTest
    passed: bool
    diff: tuple[str, ...] = ()
    actual: tuple[str, ...] = ()


@dataclass(slots=True)
class _Suite:
    rule_files: list[Path] = field(default_factory=list)
    tests: list[InlineTest] = field(default_factory=list)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _expand(ctx: Ctx, node: YNode) -> list[Value | None] | None:
    """A series' values; None for a gap."""
    if isinstance(node, YScalar) and isinstance(node.value, str):
        tokens: list[tuple[YNode, str]] = [(node, t) for t in node.value.split()]
    elif isinstance(node, YSeq):
        tokens = []
        for item in node.items:
            if not isinstance(item, YScalar) or item.value is None:
                ctx.error(item, f"values: expected a number, text or '_', got {describe(item)}")
                return None
            tokens.append((item, item.text))
    elif isinstance(node, YScalar) and isinstance(node.value, (int, float)):
        tokens = [(node, node.text)]
    else:
        ctx.error(node, f"values: expected a list or a string of values, got {describe(node)}")
        return None
    out: list[Value | None] = []
    for where, token in tokens:
        gaps, step = _GAPS.fullmatch(token), _STEP.fullmatch(token)
        size = int(gaps.group(1)) if gaps else int(step.group(4)) + 1 if step else 1
        if len(out) + size > MAX_SERIES_VALUES:
            ctx.error(
                where,
                f"values: {token!r} expands the series beyond {MAX_SERIES_VALUES} values",
            )
            return None
        if token == "_":
            out.append(None)
        elif gaps:
            out.extend([None] * int(gaps.group(1)))
        elif step:
            start, sign, inc, count = step.groups()
            delta = float(inc or 0) * (-1 if sign == "-" else 1)
            out.extend(float(start) + i * delta for i in range(int(count) + 1))
        elif (number := _number(token)) is not None and not math.isnan(number):
            out.append(number)
        elif token in ("true", "false"):
            out.append(token == "true")
        else:
            out.append(token)
    return out


def _read_test(ctx: Ctx, node: YMap, index: int) -> InlineTest | None:
    items = {k: v for k, (_, v) in node.items.items()}
    ctx.keys(node, _TEST, "a test")
    before = len(ctx.problems)
    name = f"test {index + 1}"
    if "name" in items:
        name = ctx.text(items["name"], "name") or name
    interval = 1.0
    if "interval" in items:
        interval = ctx.duration(items["interval"], "interval", positive=True) or 1.0
    readings: list[Reading] = []
    if "input_series" not in items:
        ctx.error(node, "missing key 'input_series' (a list of {point, values})")
    elif not isinstance(items["input_series"], YSeq):
        ctx.error(items["input_series"], "input_series: expected a list of {point, values}")
    else:
        for series in items["input_series"].items:
            mapping = ctx.mapping(series, "a series")
            if mapping is None:
                continue
            ctx.keys(mapping, _SERIES, "a series")
            parts = {k: v for k, (_, v) in mapping.items.items()}
            if "point" not in parts or "values" not in parts:
                ctx.error(mapping, "a series needs 'point' and 'values'")
                continue
            point = ctx.text(parts["point"], "point")
            values = _expand(ctx, parts["values"])
            if point is None or values is None:
                continue
            readings += [
                Reading(point, i * interval, v) for i, v in enumerate(values) if v is not None
            ]
    until = None
    if "run_until" in items:
        until = ctx.duration(items["run_until"], "run_until")
    rules: frozenset[str] = frozenset()
    if "rules" in items:
        rules = frozenset(ctx.string_list(items["rules"], "rules") or ())
    expected: list[Expected] = []
    if "expected_alarms" not in items:
        ctx.error(node, "missing key 'expected_alarms' (a list; [] when none is expected)")
    elif not isinstance(items["expected_alarms"], YSeq):
        ctx.error(items["expected_alarms"], "expected_alarms: expected a list")
    else:
        for entry in items["expected_alarms"].items:
            got = _read_expected(ctx, entry)
            if got is not None:
                expected.append(got)
    if len(ctx.problems) != before:
        return None
    readings.sort(key=lambda r: r.ts)
    expected.sort(key=lambda e: (e.at, e.rule))
    return InlineTest(name, ctx.file, node.line, tuple(readings), until, rules, tuple(expected))


def _read_expected(ctx: Ctx, entry: YNode) -> Expected | None:
    mapping = ctx.mapping(entry, "an expected alarm")
    if mapping is None:
        return None
    ctx.keys(mapping, _EXPECT, "an expected alarm")
    parts = {k: v for k, (_, v) in mapping.items.items()}
    missing = [k for k in ("at", "rule", "event") if k not in parts]
    if missing:
        ctx.error(mapping, f"an expected alarm needs {', '.join(repr(k) for k in missing)}")
        return None
    at = ctx.duration(parts["at"], "at")
    rule = ctx.text(parts["rule"], "rule")
    event = ctx.choice(parts["event"], "event", _EVENTS)
    numbers: dict[str, float | None] = {}
    for key in ("value", "limit"):
        node = parts.get(key)
        if node is None:
            numbers[key] = None
        elif isinstance(node, YScalar) and type(node.value) in (int, float):
            numbers[key] = float(node.value)  # type: ignore[arg-type]
        else:
            ctx.error(node, f"{key}: expected a number, got {describe(node)}")
            return None
    message = ctx.text(parts["message"], "message") if "message" in parts else None
    if at is None or rule is None or event is None:
        return None
    where = (parts["rule"].line, parts["rule"].col)
    return Expected(at, rule, event, numbers["value"], numbers["limit"], message, where)


def load_tests(path: Path) -> tuple[list[Path], list[InlineTest], list[Problem]]:
    """Read a test file: its rule files (resolved beside it), tests, and every problem."""
    ctx = Ctx(str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        ctx.error((1, 1), f"cannot read: {getattr(exc, 'strerror', None) or exc}")
        return [], [], ctx.problems
    root, problems = parse_yaml(text, str(path))
    ctx.problems.extend(problems)
    if root is None:
        if not problems:
            ctx.error((1, 1), "the file is empty (expected 'rule_files:' and 'tests:')")
        return [], [], ctx.problems
    top = ctx.mapping(root, "a test file")
    suite = _Suite()
    if top is None:
        return [], [], ctx.problems
    items = {k: v for k, (_, v) in top.items.items()}
    if "rules" in items and "tests" not in items:
        ctx.error(
            top.items["rules"][0],
            "this is a rule file, not a test file: give --data recorded.csv to replay data "
            "through it, or a test file with 'rule_files:' and 'tests:'",
        )
        return [], [], ctx.problems
    ctx.keys(top, _TOP, "a test file")
    if "rule_files" not in items:
        ctx.error(top, "missing key 'rule_files' (the rule files under test)")
    else:
        names = ctx.string_list(items["rule_files"], "rule_files") or ()
        suite.rule_files = [path.parent / name for name in names]
    if "tests" not in items:
        ctx.error(top, "missing key 'tests' (a list of tests)")
    elif not isinstance(items["tests"], YSeq):
        ctx.error(items["tests"], f"tests: expected a list, got {describe(items['tests'])}")
    else:
        for i, node in enumerate(items["tests"].items):
            mapping = ctx.mapping(node, "a test")
            if mapping is not None:
                test = _read_test(ctx, mapping, i)
                if test is not None:
                    suite.tests.append(test)
    return suite.rule_files, suite.tests, sorted(set(ctx.problems))


def load_suite(
    path: Path, known: Collection[str] | Mapping[str, str] | None
) -> tuple[RuleSet | None, list[InlineTest], list[Problem]]:
    """The rule set under test and the tests of one test file, or the problems of either."""
    rule_files, tests, problems = load_tests(path)
    if problems:
        return None, [], problems
    ruleset, rule_problems = check_rules(rule_files, known)
    if ruleset is not None:
        ids = ruleset.by_id()
        ctx = Ctx(str(path))
        for test in tests:
            for exp in test.expected:
                if exp.rule not in ids:
                    hint = did_you_mean(exp.rule, ids)
                    ctx.error(exp.where, f"unknown rule {exp.rule!r}{hint}")
        rule_problems += ctx.problems
    return (ruleset if not rule_problems else None), tests, rule_problems


def _num(x: float | None) -> str:
    return "none" if x is None else f"{x:.6g}"


def _line(exp: Expected) -> str:
    text = f"at {format_duration(exp.at) if exp.at else '0s'}: {exp.rule} {exp.event}"
    if exp.value is not None:
        text += f" value {_num(exp.value)}"
    if exp.limit is not None:
        text += f" limit {_num(exp.limit)}"
    if exp.message is not None:
        text += f" message {exp.message!r}"
    return text


def _matches(exp: Expected, got: Transition) -> bool:
    if (exp.at, exp.rule, exp.event) != (got.ts, got.rule, got.event):
        return False
    if exp.value is not None and _num(exp.value) != _num(got.value):
        return False
    if exp.limit is not None and _num(exp.limit) != _num(got.limit):
        return False
    return exp.message is None or exp.message == got.message


def run_test(
    ruleset: RuleSet,
    test: InlineTest,
    replay: Callable[[RuleSet, Sequence[Reading], float | None], list[Any]],
) -> TestResult:
    """Run one test through ``replay`` (the CLI's clock-stepped engine) and compare."""
    events = replay(ruleset, test.readings, test.until)
    actual = [
        e
        for e in events
        if isinstance(e, Transition)
        and e.event in _EVENTS
        and (not test.rules or e.rule in test.rules)
    ]
    # the actual transitions, written with the expected one's optional fields where one matches
    unmatched = list(actual)
    missing: list[Expected] = []
    for exp in test.expected:
        hit = next((g for g in unmatched if _matches(exp, g)), None)
        if hit is None:
            missing.append(exp)
        else:
            unmatched.remove(hit)

    # an actual transition shows its message where a missing one expected a message for it
    wanted = {(e.at, e.rule, e.event) for e in missing if e.message is not None}

    def seen(g: Transition) -> Expected:
        text = g.message if (g.ts, g.rule, g.event) in wanted else None
        return Expected(g.ts, g.rule, g.event, g.value, g.limit, text)

    lines = [(e.at, e.rule, 0, f"- {_line(e)}") for e in missing]
    lines += [(g.ts, g.rule, 1, f"+ {_line(seen(g))}") for g in unmatched]
    lines.sort()
    diff = tuple(line for *_, line in lines)
    return TestResult(test, not diff, diff, tuple(_line(seen(g)) for g in actual))
