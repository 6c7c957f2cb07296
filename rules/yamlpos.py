"""YAML 1.2 read into plain values that remember their ``line:col`` (via ruamel.yaml's composer).

We stop at ruamel's node graph and convert it ourselves, so that:

* every key and value has a position (1-based line and column);
* a duplicate key is a reported problem (every one of them), not an exception or a silent overwrite;
* scalars resolve by YAML 1.2's core schema: ``no`` and ``off`` stay text, ``1:30`` stays text;
* tags other than the core ones (``!!python/object``...) are refused, never constructed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["Problem", "YMap", "YNode", "YScalar", "YSeq", "parse_yaml"]

_CORE = "tag:yaml.org,2002:"


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One thing wrong in a rule file.

    Attributes:
        file: the file as given to the loader.
        line: 1-based line (0 when the problem concerns the whole file).
        col: 1-based column (0 when the problem concerns the whole file).
        message: one line, no position.
    """

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        if self.line <= 0:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}:{self.col}: {self.message}"

    def as_dict(self) -> dict[str, str | int]:
        """``{"file", "line", "col", "message"}`` for JSON output."""
        return {"file": self.file, "line": self.line, "col": self.col, "message": self.message}


@dataclass(slots=True)
class YNode:
    """A YAML node with its position (1-based)."""

    line: int
    col: int


@dataclass(slots=True)
class YScalar(YNode):
    """A scalar: ``value`` is str, int, float, bool or None by the YAML 1.2 core schema.

    Attributes:
        text: the scalar as written (without quotes).
        quoted: written in single or double quotes (its text starts one column later).
    """

    value: str | int | float | bool | None = None
    text: str = ""
    quoted: bool = False


@dataclass(slots=True)
class YSeq(YNode):
    """A sequence."""

    items: list[YNode] = field(default_factory=list)


@dataclass(slots=True)
class YMap(YNode):
    """A mapping; on duplicate keys the first one is kept (the others are problems).

    Attributes:
        items: key text -> (key node, value node), in file order.
    """

    items: dict[str, tuple[YScalar, YNode]] = field(default_factory=dict)


def _scalar(node: ScalarNode, file: str, problems: list[Problem]) -> YScalar:
    line, col = node.start_mark.line + 1, node.start_mark.column + 1
    text = str(node.value)
    quoted = node.style in ("'", '"')
    tag = str(node.tag)
    value: str | int | float | bool | None
    if tag == _CORE + "str" or tag == "!":
        value = text
    elif tag == _CORE + "int":
        digits = text.replace("_", "")
        try:
            value = int(digits, 0)
        except ValueError:
            value = int(digits, 10)
    elif tag == _CORE + "float":
        lowered = text.lower().replace("_", "")
        if lowered.endswith((".inf", ".nan")):
            value = float(lowered.replace(".", ""))
        else:
            value = float(lowered)
    elif tag == _CORE + "bool":
        value = text.lower() == "true"
    elif tag == _CORE + "null":
        value = None
    else:
        shown = tag.replace(_CORE, "!!")
        problems.append(Problem(file, line, col, f"YAML tag {shown!r} is not allowed"))
        value = text
    return YScalar(line, col, value=value, text=text, quoted=quoted)


def _convert(node: Node, file: str, problems: list[Problem], memo: dict[int, YNode]) -> YNode:
    """Convert a composed node; aliases share one converted node (no alias bombs, no cycles)."""
    seen = memo.get(id(node))
    if seen is not None:
        return seen
    line, col = node.start_mark.line + 1, node.start_mark.column + 1
    if isinstance(node, ScalarNode):
        memo[id(node)] = out_scalar = _scalar(node, file, problems)
        return out_scalar
    tag = str(node.tag)
    if tag not in (_CORE + "seq", _CORE + "map", "!"):
        shown = tag.replace(_CORE, "!!")
        problems.append(Problem(file, line, col, f"YAML tag {shown!r} is not allowed"))
    if isinstance(node, SequenceNode):
        memo[id(node)] = out_seq = YSeq(line, col)
        out_seq.items = [_convert(n, file, problems, memo) for n in node.value]
        return out_seq
    assert isinstance(node, MappingNode)
    memo[id(node)] = out = YMap(line, col)
    for key_node, value_node in node.value:
        key = _convert(key_node, file, problems, memo)
        if not isinstance(key, YScalar):
            problems.append(Problem(file, key.line, key.col, "a key must be plain text"))
            continue
        name = key.text
        if name in out.items:
            first = out.items[name][0]
            problems.append(
                Problem(
                    file,
                    key.line,
                    key.col,
                    f"duplicate key {name!r} (first at line {first.line}, column {first.col})",
                )
            )
            continue
        out.items[name] = (key, _convert(value_node, file, problems, memo))
    return out


def parse_yaml(text: str, file: str) -> tuple[YNode | None, list[Problem]]:
    """Parse one YAML document.

    Returns:
        the root node (None for an empty document or a syntax error) and the problems found.
    """
    problems: list[Problem] = []
    yaml = YAML(typ="safe", pure=True)  # composer only: positions, no comment gathering
    try:
        root = yaml.compose(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or exc.context or "cannot parse"
        if exc.problem and exc.context:
            message = f"{exc.problem} ({exc.context})"
        if mark is None:
            return None, [Problem(file, 0, 0, f"invalid YAML: {message}")]
        return None, [Problem(file, mark.line + 1, mark.column + 1, f"invalid YAML: {message}")]
    except YAMLError as exc:
        return None, [Problem(file, 0, 0, f"invalid YAML: {exc}")]
    if root is None:
        return None, problems
    return _convert(root, file, problems, {}), problems
