"""Typed reading of located YAML values: text, numbers with units, durations, lists, checks.

Every reader records a :class:`~edge.rules.yamlpos.Problem` at the value's position and returns
None instead of raising, so one pass over a file reports every mistake in it.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection
from dataclasses import dataclass, field

from edge.durations import parse_duration
from edge.rules.expressions import ExpressionError, compile_expression, did_you_mean
from edge.rules.model import PLACEHOLDERS, STATS, Expression, Location, LotCheck
from edge.rules.yamlpos import Problem, YMap, YNode, YScalar, YSeq

__all__ = ["Ctx", "UnitSlot", "describe"]

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_VALUE = re.compile(rf"\s*({_NUMBER})\s*(\S.*?)?\s*")
_CHECK = re.compile(rf"\s*([A-Za-z_]\w*)\s*(>=|<=|==|!=|>|<|=)\s*({_NUMBER})\s*(\S.*?)?\s*")
_DIMENSIONLESS = {"count", "cp", "cpk"}
#: a number written with a decimal comma (``1,33``, ``8,5 degC``): said so, not taken as a unit
_COMMA_NUMBER = re.compile(r"\s*([-+]?\d+),(\d+)(?:\s*(\S.*?))?\s*")


def _comma_message(key: str, match: re.Match[str]) -> str:
    whole, frac, unit = match.groups()
    fixed = f"{whole}.{frac}" + (f" {unit}" if unit else "")
    return (
        f"{key}: {match.group(0).strip()!r} is a number with a decimal comma: "
        f"write {fixed!r} (a point separates decimals)"
    )


def describe(node: YNode) -> str:
    """Name what a node is, for "expected X, got Y" messages."""
    if isinstance(node, YMap):
        return "a mapping"
    if isinstance(node, YSeq):
        return "a list"
    assert isinstance(node, YScalar)
    if node.value is None:
        return "nothing"
    if isinstance(node.value, bool):
        return f"{node.text!r} (a boolean)"
    if isinstance(node.value, (int, float)):
        return f"{node.text} (a number)"
    return f"{node.text!r}"


@dataclass(slots=True)
class UnitSlot:
    """The unit a rule's values must carry: fixed by the point, or by the first value written.

    Attributes:
        unit: the unit so far ("" = none yet).
        source: where the unit came from, for messages (``"point 'tunnel_temp'"``).
    """

    unit: str = ""
    source: str = ""
    from_config: bool = False  #: the unit is the node config's (not written in the rule file)
    written: bool = False  #: a value of the rule carried the unit


@dataclass(slots=True)
class Ctx:
    """Problem collector for one file."""

    file: str
    problems: list[Problem] = field(default_factory=list)

    def error(self, node: YNode | tuple[int, int], message: str) -> None:
        """Record a problem at a node (or a ``(line, col)``)."""
        line, col = (node.line, node.col) if isinstance(node, YNode) else node
        self.problems.append(Problem(self.file, line, col, message))

    def loc(self, node: YNode) -> Location:
        """The node's position as a model :class:`Location`."""
        return Location(self.file, node.line, node.col)

    def mapping(self, node: YNode, what: str) -> YMap | None:
        """The node if it is a mapping, else a problem."""
        if isinstance(node, YMap):
            return node
        self.error(node, f"{what} must be a mapping of keys, got {describe(node)}")
        return None

    def keys(self, node: YMap, allowed: Collection[str], what: str) -> None:
        """Report every key not in ``allowed`` (with a did-you-mean)."""
        for name, (key, _) in node.items.items():
            if name not in allowed:
                self.error(key, f"unknown key {name!r} in {what}{did_you_mean(name, allowed)}")

    def text(self, node: YNode, key: str) -> str | None:
        """A string value (numbers and booleans are refused: quote them)."""
        if isinstance(node, YScalar) and isinstance(node.value, str) and node.value.strip():
            return node.value.strip()
        self.error(node, f"{key}: expected text, got {describe(node)}")
        return None

    def choice(self, node: YNode, key: str, options: Collection[str]) -> str | None:
        """A string out of ``options``."""
        value = self.text(node, key)
        if value is not None and value not in options:
            hint = did_you_mean(value, options)
            listed = ", ".join(options)
            self.error(node, f"{key}: unknown value {value!r}{hint} (one of: {listed})")
            return None
        return value

    def integer(self, node: YNode, key: str, least: int) -> int | None:
        """An integer >= ``least``."""
        if not (isinstance(node, YScalar) and type(node.value) is int):
            self.error(node, f"{key}: expected a whole number, got {describe(node)}")
            return None
        if node.value < least:
            self.error(node, f"{key}: must be at least {least}, got {node.value}")
            return None
        return node.value

    def duration(self, node: YNode, key: str, positive: bool = False) -> float | None:
        """A duration with a unit (``"500ms"``, ``"2s"``, ``"1m30s"``) in seconds."""
        if isinstance(node, YScalar) and isinstance(node.value, str):
            try:
                seconds = parse_duration(node.value.strip())
            except ValueError as exc:
                self.error(node, f"{key}: {exc}")
                return None
        else:
            shown = node.text if isinstance(node, YScalar) else describe(node)
            self.error(
                node,
                f"{key}: bad duration {shown} (a unit is required: ms, s, m, h, d, e.g. '2s')",
            )
            return None
        if positive and seconds <= 0:
            self.error(node, f"{key}: must be longer than 0s")
            return None
        return seconds

    def value(self, node: YNode, key: str, slot: UnitSlot) -> float | None:
        """A number, or ``"<number> <unit>"`` whose unit must match ``slot`` (adopted if empty)."""
        if isinstance(node, YScalar) and type(node.value) in (int, float):
            return float(node.value)  # type: ignore[arg-type]
        if isinstance(node, YScalar) and isinstance(node.value, str):
            comma = _COMMA_NUMBER.fullmatch(node.value)
            if comma:
                self.error(node, _comma_message(key, comma))
                return None
            match = _VALUE.fullmatch(node.value)
            if match:
                return self._unit(node, key, float(match.group(1)), match.group(2) or "", slot)
        self.error(
            node,
            f"{key}: expected a number (optionally with a unit, e.g. '8.0 degC'), "
            f"got {describe(node)}",
        )
        return None

    def _unit(
        self, node: YNode, key: str, number: float, unit: str, slot: UnitSlot | None
    ) -> float | None:
        if not unit:
            return number
        if slot is not None:
            slot.written = True
        if slot is None:
            self.error(node, f"{key}: {unit!r} has no unit here (a plain number is expected)")
            return None
        if not slot.unit:
            slot.unit, slot.source = unit, f"{key!r}"
        elif unit != slot.unit:
            self.error(
                node,
                f"{key}: unit {unit!r} does not match the unit {slot.unit!r} of {slot.source} "
                "(units are checked, not converted)",
            )
            return None
        return number

    def string_list(self, node: YNode, key: str) -> tuple[str, ...] | None:
        """A list of texts."""
        if not isinstance(node, YSeq):
            self.error(node, f"{key}: expected a list, got {describe(node)}")
            return None
        out = [self.text(item, key) for item in node.items]
        return None if any(v is None for v in out) else tuple(v for v in out if v is not None)

    def message(self, node: YNode, key: str) -> str | None:
        """A message template whose placeholders are all in :data:`PLACEHOLDERS`."""
        template = self.text(node, key)
        if template is None:
            return None
        try:
            parts = list(string.Formatter().parse(template))
        except ValueError as exc:
            self.error(node, f"{key}: bad template: {exc}")
            return None
        ok = True
        for _, name, _, _ in parts:
            if name is None:
                continue
            if not name or name.isdigit():
                self.error(node, f"{key}: placeholders must be named, e.g. {{value}}")
                ok = False
            elif name not in PLACEHOLDERS:
                close = did_you_mean(name, PLACEHOLDERS)
                hint = close.replace(" '", " '{").replace("'?", "}'?")
                names = " ".join(f"{{{p}}}" for p in PLACEHOLDERS)
                self.error(node, f"{key}: unknown placeholder {{{name}}}{hint} (known: {names})")
                ok = False
        if ok:
            sample = dict.fromkeys(PLACEHOLDERS, "x") | {"value": 1.5, "limit": 2.5}
            try:
                template.format_map(sample)
            except (ValueError, KeyError, IndexError, AttributeError) as exc:
                self.error(node, f"{key}: bad template: {exc}")
                ok = False
        return template if ok else None

    def expression(self, node: YNode, key: str) -> Expression | None:
        """A checked expression (unknown names are checked later, against every point)."""
        source = self.text(node, key)
        if source is None:
            return None
        assert isinstance(node, YScalar)
        try:
            return compile_expression(source)
        except ExpressionError as exc:
            shift = 1 if node.quoted else 0
            for col, message in exc.problems:
                self.error((node.line, node.col + shift + col), f"{key}: {message}")
            return None

    def check(self, node: YNode, slot: UnitSlot) -> LotCheck | None:
        """A lot check written ``"<stat> <op> <number> [unit]"`` (``"cpk >= 1.33"``)."""
        text = self.text(node, "checks")
        if text is None:
            return None
        match = _CHECK.fullmatch(text)
        comma = re.fullmatch(r"(.*?(?:>=|<=|==|!=|>|<|=)\s*)([-+]?\d+,\d+.*)", text)
        if comma and _COMMA_NUMBER.fullmatch(comma.group(2)):
            written = _COMMA_NUMBER.fullmatch(comma.group(2))
            assert written is not None
            self.error(node, _comma_message("checks", written))
            return None
        if not match:
            self.error(
                node,
                f"checks: cannot read {text!r} (expected '<stat> <op> <number>', "
                "e.g. 'cpk >= 1.33')",
            )
            return None
        stat, op, number, unit = match.groups()
        if stat not in STATS:
            hint = did_you_mean(stat, STATS)
            self.error(
                node, f"checks: unknown statistic {stat!r}{hint} (one of: {', '.join(STATS)})"
            )
            return None
        if op == "=":
            self.error(node, "checks: use '==' to compare for equality")
            return None
        value = self._unit(
            node, "checks", float(number), unit or "", None if stat in _DIMENSIONLESS else slot
        )
        if value is None:
            return None
        return LotCheck(
            stat=stat, op=op, value=value, text=f"{stat} {op} {number}", location=self.loc(node)
        )
