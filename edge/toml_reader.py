"""Reading a TOML file with line positions: where each key is, and checked reads of its values.

tomllib gives values, not positions. :func:`key_lines` scans the text for the line of each table
header and key, and :class:`_Reader` walks the parsed data with it, collecting every problem as
``<file>:<line>: <key path>: <message>`` (type mismatches, unknown keys with a suggestion for
typos, bad durations) plus the value checks the node config uses (:func:`_one_of`,
:func:`_in_range`, :func:`_positive`). :mod:`edge.config` builds its dataclasses with it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from edge.durations import parse_duration

T = TypeVar("T")


_KEY_PART = re.compile(r"""\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*""")


def _key_parts(text: str) -> list[str] | None:
    """``a."b.c".d`` -> ``["a", "b.c", "d"]``; None when ``text`` is not a TOML key."""
    parts: list[str] = []
    pos = 0
    while True:
        match = _KEY_PART.match(text, pos)
        if match is None:
            return None
        parts.append(next(g for g in match.groups() if g is not None))
        pos = match.end()
        if pos == len(text):
            return parts
        if text[pos] != ".":
            return None
        pos += 1


def key_lines(text: str) -> dict[str, int]:
    """Where each table header and key of a TOML text is: dotted key path -> 1-based line.

    tomllib gives values, not positions; this light scan of the text gives the positions back
    for messages (``node.toml:12: devices.d.poll: ...``). It knows table headers, dotted and
    quoted keys, and skips multi-line strings; what it cannot place is reported without a line.
    """
    lines: dict[str, int] = {}
    table: list[str] = []
    in_string: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if in_string is not None:  # inside a multi-line string: only look for its end
            if line.count(in_string) % 2 == 1:
                in_string = None
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            header = line.lstrip("[").split("]", 1)[0]
            parts = _key_parts(header)
            if parts is not None:
                table = parts
                lines.setdefault(".".join(table), number)
            continue
        key, eq, value = line.partition("=")
        parts = _key_parts(key) if eq else None
        if parts is None:
            continue
        lines.setdefault(".".join([*table, *parts]), number)
        for quote in ('"""', "'''"):
            if value.count(quote) % 2 == 1:
                in_string = quote
    return lines


class _Reader:
    """Walks the parsed TOML, collecting every problem with its key path and line."""

    def __init__(self, filename: str, text: str = "") -> None:
        self.filename = filename
        self.problems: list[str] = []
        self._text = text
        self._lines: dict[str, int] | None = None

    def line_of(self, path: str) -> int | None:
        """The line of ``path``, else of its nearest enclosing key or table that is written."""
        if self._lines is None:
            self._lines = key_lines(self._text)
        path = re.sub(r"\[\d+\]", "", path)
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path.rpartition(".")[0]
        return None

    def problem(self, path: str, message: str) -> None:
        line = self.line_of(path)
        where = self.filename if line is None else f"{self.filename}:{line}"
        self.problems.append(f"{where}: {path}: {message}")

    def table(self, data: Mapping[str, Any], path: str, known: tuple[str, ...]) -> None:
        """Report keys that no schema knows, with a suggestion for typos."""
        for key in data:
            if key not in known:
                near = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean '{near[0]}'?)" if near else ""
                self.problem(f"{path}.{key}" if path else key, f"unknown key{hint}")

    def get(
        self,
        data: Mapping[str, Any],
        path: str,
        key: str,
        kind: type[T] | tuple[type, ...],
        default: T | None = None,
        *,
        required: bool = False,
        check: Callable[[Any], str | None] | None = None,
    ) -> Any:
        """Read one value; on a problem, record it and return the default."""
        where = f"{path}.{key}" if path else key
        if key not in data:
            if required:
                self.problem(where, "missing required key")
            return default
        value = data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; a TOML `true` where a number is expected is a mistake.
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            names = " or ".join(_TOML_NAMES.get(k, k.__name__) for k in kinds)
            shown = str(value).lower() if isinstance(value, bool) else repr(value)  # as TOML has it
            self.problem(where, f"expected {names}, got {_toml_type(value)} {shown}")
            return default
        if check is not None:
            message = check(value)
            if message:
                self.problem(where, message)
                return default
        return value

    def duration(self, data: Mapping[str, Any], path: str, key: str, default: float) -> float:
        value = data.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            # the hint rule files give: a bare number could be seconds or milliseconds
            self.problem(
                f"{path}.{key}",
                f'bad duration {value!r}: add a unit (ms, s, m, h, d), e.g. "{value}s"',
            )
            return default
        raw = self.get(data, path, key, str, None)
        if raw is None:
            return default
        try:
            seconds = parse_duration(raw)
        except ValueError as exc:
            self.problem(f"{path}.{key}", str(exc))
            return default
        if seconds <= 0:
            self.problem(f"{path}.{key}", f"duration must be positive, got {raw!r}")
            return default
        return seconds


_TOML_NAMES: dict[type, str] = {
    str: "a string", int: "an integer", float: "a number", bool: "a boolean",
    list: "an array", dict: "a table",
}  # fmt: skip


def _toml_type(value: object) -> str:
    return _TOML_NAMES.get(type(value), type(value).__name__)


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value in choices:
            return None
        near = difflib.get_close_matches(str(value), choices, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        return f"{value!r} is not one of {', '.join(choices)}{hint}"

    return check


def _in_range(low: int, high: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"{value} is outside {low}..{high}"

    return check


def _positive(value: Any) -> str | None:
    return None if value > 0 else f"must be positive, got {value}"
