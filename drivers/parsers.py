"""Line parsers for serial-line instruments (scales, printers of key=value or CSV). Pure.

Each parser turns one text line into named fields; a point takes one field by name
(``field = "weight"``). Numeric-looking fields become floats, the rest stay strings.

- ``scale``: ``ST,GS,+0012.34 g`` (A&D/Mettler-style): fields ``status`` (ST stable, US
  unstable, OL overload), ``mode`` (GS gross, NT net, TR tare), ``value`` (also ``weight``),
  ``unit``.
- ``kv``: ``T=21.5 RH=40.2`` or ``T=21.5,RH=40.2`` or ``T:21.5;RH:40.2``.
- ``csv``: comma-separated values named by the bus's ``columns``.
- ``regex``: the bus's ``pattern``; its named groups are the fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from edge.config import BusConfig

__all__ = ["LineParseError", "Parser", "make_parser", "parse_csv", "parse_kv", "parse_scale"]

Field = float | str
Parser = Callable[[str], dict[str, Field]]


class LineParseError(ValueError):
    """A line does not have the configured format."""


_NUMBER = re.compile(r"^[+-]?\s*(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_SCALE = re.compile(
    r"^\s*(?P<status>[A-Z]{2})\s*,\s*(?P<mode>[A-Z]{2})\s*,\s*(?P<value>[+-]?\s*[\d.]+)\s*(?P<unit>[A-Za-z%]*)\s*$"
)
_KV = re.compile(r"\s*([A-Za-z_][\w.-]*)\s*[=:]\s*([^,;\s]+)")


def _field(text: str) -> Field:
    text = text.strip()
    if _NUMBER.match(text):
        return float(text.replace(" ", ""))
    return text


def parse_scale(line: str) -> dict[str, Field]:
    """``ST,GS,+0012.34 g`` -> status, mode, value (= weight), unit."""
    m = _SCALE.match(line)
    if m is None:
        raise LineParseError(f"not a scale line (expected like 'ST,GS,+0012.34 g'): {line!r}")
    value = _field(m["value"])
    if not isinstance(value, float):
        raise LineParseError(f"scale value {m['value']!r} is not a number")
    return {
        "status": m["status"],
        "mode": m["mode"],
        "value": value,
        "weight": value,
        "unit": m["unit"],
    }


def parse_kv(line: str) -> dict[str, Field]:
    """``key=value`` pairs separated by spaces, commas or semicolons."""
    found = {k: _field(v) for k, v in _KV.findall(line)}
    if not found:
        raise LineParseError(f"no key=value pairs in {line!r}")
    return found


def parse_csv(line: str, columns: tuple[str, ...]) -> dict[str, Field]:
    """Comma-separated values named by ``columns`` (extra values are ignored)."""
    values = [v.strip() for v in line.strip().split(",")]
    if len(values) < len(columns):
        raise LineParseError(
            f"expected {len(columns)} comma-separated values, got {len(values)} in {line!r}"
        )
    return {name: _field(v) for name, v in zip(columns, values, strict=False)}


def _regex(pattern: re.Pattern[str]) -> Parser:
    def parse(line: str) -> dict[str, Field]:
        m = pattern.search(line)
        if m is None:
            raise LineParseError(f"line does not match pattern {pattern.pattern!r}: {line!r}")
        return {k: _field(v) for k, v in m.groupdict().items() if v is not None}

    return parse


def make_parser(bus: BusConfig) -> Parser:
    """The parser a line bus is configured for.

    Raises:
        ValueError: the regex does not compile or has no named groups, or CSV has no columns.
    """
    if bus.parser == "scale":
        return parse_scale
    if bus.parser == "kv":
        return parse_kv
    if bus.parser == "csv":
        if not bus.columns:
            raise ValueError("parser 'csv' needs 'columns'")
        columns = bus.columns
        return lambda line: parse_csv(line, columns)
    try:
        pattern = re.compile(bus.pattern)
    except re.error as exc:
        raise ValueError(f"pattern does not compile: {exc}") from None
    if not pattern.groupindex:
        raise ValueError("pattern has no named groups ((?P<name>...))")
    return _regex(pattern)


def fields_of(bus: BusConfig) -> Mapping[str, None] | None:
    """Field names a parser can produce when known in advance (None: depends on the data)."""
    if bus.parser == "scale":
        return dict.fromkeys(("status", "mode", "value", "weight", "unit"))
    if bus.parser == "csv":
        return dict.fromkeys(bus.columns)
    if bus.parser == "regex":
        try:
            return dict.fromkeys(re.compile(bus.pattern).groupindex)
        except re.error:
            return None
    return None
