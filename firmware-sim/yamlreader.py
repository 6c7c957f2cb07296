"""A YAML tree walker that reports problems with ``file:line:col: key.path: message``.

ruamel.yaml's round-trip loader keeps the position of every key and value; :class:`YamlReader`
reads typed values out of the tree and collects every problem (never stopping at the first),
so an integrator fixes a file in one pass.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from edge.durations import parse_duration

__all__ = ["YamlReader", "kind_name"]


class YamlReader:
    """Walks the YAML tree, collecting every problem with its position and key path.

    Args:
        display: the file name shown at the start of each message.
    """

    def __init__(self, display: str) -> None:
        self.display = display
        self.problems: list[str] = []

    def problem(
        self, parent: Any, key: Any, path: str, message: str, *, on_value: bool = False
    ) -> None:
        """Record a problem at ``parent[key]`` (its value with ``on_value``), or at ``parent``."""
        pos = ""
        try:
            if isinstance(parent, CommentedMap):
                line, col = (
                    parent.lc.value(key) if on_value and key in parent else parent.lc.key(key)
                )
                pos = f":{line + 1}:{col + 1}"
            elif isinstance(parent, CommentedSeq):
                line, col = parent.lc.item(key)
                pos = f":{line + 1}:{col + 1}"
        except (KeyError, TypeError, AttributeError, IndexError):
            if hasattr(parent, "lc") and parent.lc.line is not None:
                pos = f":{parent.lc.line + 1}:{parent.lc.col + 1}"
        self.problems.append(f"{self.display}{pos}: {path}: {message}")

    def mapping(
        self, parent: Any, key: Any, path: str, known: tuple[str, ...] | None = None
    ) -> CommentedMap:
        """``parent[key]`` as a mapping (empty if absent or wrong); reports unknown keys."""
        value = parent.get(key) if isinstance(parent, Mapping) else parent[key]
        if value is None:
            return CommentedMap()
        if not isinstance(value, CommentedMap):
            self.problem(
                parent, key, path, f"expected a mapping, got {kind_name(value)}", on_value=True
            )
            return CommentedMap()
        if known is not None:
            for k in value:
                if k not in known:
                    near = difflib.get_close_matches(str(k), known, n=1)
                    hint = f" (did you mean '{near[0]}'?)" if near else ""
                    self.problem(value, k, f"{path}.{k}", f"unknown key{hint}")
        return value

    def get(
        self,
        data: CommentedMap,
        path: str,
        key: str,
        kind: type | tuple[type, ...],
        default: Any = None,
        *,
        required: bool = False,
        choices: tuple[str, ...] | None = None,
        low: int | None = None,
        high: int | None = None,
    ) -> Any:
        """One typed value (bool is never a number), checked against choices and a range."""
        where = f"{path}.{key}" if path else key
        if key not in data or data[key] is None:
            if required:
                self.problem(data, None, where, "missing required key")
            return default
        value = data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            names = " or ".join(NAMES.get(k, k.__name__) for k in kinds)
            self.problem(
                data,
                key,
                where,
                f"expected {names}, got {kind_name(value)} {value!r}",
                on_value=True,
            )
            return default
        if choices is not None and value not in choices:
            near = difflib.get_close_matches(str(value), choices, n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            self.problem(
                data,
                key,
                where,
                f"{value!r} is not one of {', '.join(choices)}{hint}",
                on_value=True,
            )
            return default
        number: float = value if isinstance(value, int | float) else 0
        if (low is not None and number < low) or (high is not None and number > high):
            self.problem(
                data,
                key,
                where,
                f"{value} is outside {low:g}..{high if high is not None else 'inf'}",
                on_value=True,
            )
            return default
        return value

    def duration(
        self,
        data: CommentedMap,
        path: str,
        key: str,
        default: float | None,
        *,
        required: bool = False,
        zero_ok: bool = True,
    ) -> float | None:
        """A duration string (``"500ms"``) in seconds; bare numbers are refused."""
        value = data.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            # a bare number could be seconds or milliseconds: refused, as in node configs
            message = f"expected a duration with a unit such as '5s' or '500ms', got {value!r}"
            self.problem(data, key, f"{path}.{key}", message, on_value=True)
            return default
        raw = self.get(data, path, key, str, None, required=required)
        if raw is None:
            return default
        try:
            seconds = parse_duration(raw)
        except ValueError as exc:
            self.problem(data, key, f"{path}.{key}", str(exc), on_value=True)
            return default
        if seconds <= 0 and not zero_ok:
            self.problem(
                data, key, f"{path}.{key}", f"duration must be positive, got {raw!r}", on_value=True
            )
            return default
        return seconds


NAMES: dict[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true/false",
    CommentedMap: "a mapping",
    CommentedSeq: "a list",
}


def kind_name(value: object) -> str:
    """How a YAML value is called in messages ("a mapping", "an integer" ...)."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return NAMES.get(type(value), type(value).__name__)
