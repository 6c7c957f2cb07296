"""YAML 1.2 read into plain values that remember their ``line:col`` (from libyaml's event stream).

We build the tree ourselves from the parser's events (PyYAML's C binding to libyaml; its
pure-Python parser when libyaml is missing), so that:

* every key and value has a position (1-based line and column, counted in characters);
* an alias is a node at the place of its use (``*name``), sharing the anchored node's children,
  so a problem about it points where it is used and a billion-laughs file stays linear;
* a duplicate key is a reported problem (every one of them), not an exception or a silent overwrite;
* scalars resolve by YAML 1.2's core schema: ``no`` and ``off`` stay text, ``1:30`` stays text;
* tags other than the core ones (``!!python/object``...) are refused, never constructed;
* YAML merge keys (``<<``) are refused with one message that names the supported form.

Why events and not a composed node graph: ruamel.yaml's pure-Python scanner took 13 s of the
15 s a 5 MB file needed; libyaml's events for the same file take 0.35 s, and its composer 2.5 s
(it calls a Python resolver per scalar, which we do not need).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = ["MERGE_KEY_HELP", "Problem", "YMap", "YNode", "YScalar", "YSeq", "parse_yaml"]

_CORE = "tag:yaml.org,2002:"
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: what a ``<<:`` merge key is answered with
MERGE_KEY_HELP = (
    "YAML merge keys ('<<') are not supported: put settings shared by the rules of a file in "
    "a top-level 'defaults:' mapping, and write one rule for many points with 'points: [a, b]'"
)

# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1023-core-schema)
_NULL = re.compile(r"null|Null|NULL|~|")
_BOOL = re.compile(r"true|True|TRUE|false|False|FALSE")
_INT10 = re.compile(r"[-+]?[0-9]+")
_INT8 = re.compile(r"0o[0-7]+")
_INT16 = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(?:inf|Inf|INF)")
#: what an explicit core tag (``!!int 5``) accepts
_EXPLICIT: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "float": (int, float),
    "bool": bool,
    "null": type(None),
}
_MAYBE_NOT_TEXT = frozenset("-+.0123456789~nNtTfF")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)")


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One thing wrong in a rule file.

    Attributes:
        file: the file as given to the loader.
        line: 1-based line (a problem with the whole file is placed at 1:1).
        col: 1-based column.
        message: one line, no position.
    """

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{max(self.line, 1)}:{max(self.col, 1)}: {self.message}"

    def as_dict(self) -> dict[str, str | int]:
        """``{"file", "line", "col", "message"}`` for JSON output."""
        return {
            "file": self.file,
            "line": max(self.line, 1),
            "col": max(self.col, 1),
            "message": self.message,
        }


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
        merge: the first ``<<`` merge key in it, if any (refused: the mapping is incomplete).
    """

    items: dict[str, tuple[YScalar, YNode]] = field(default_factory=dict)
    merge: YScalar | None = None


def _resolve(text: str) -> str | int | float | bool | None:
    """A plain scalar's value by the YAML 1.2 core schema."""
    if text and text[0] not in _MAYBE_NOT_TEXT:
        return text  # most scalars (keys, names, '8.0 degC' aside) are text: skip the patterns
    if _NULL.fullmatch(text):
        return None
    if _BOOL.fullmatch(text):
        return text.lower() == "true"
    if _INT10.fullmatch(text):
        return int(text, 10)
    if _INT8.fullmatch(text):
        return int(text[2:], 8)
    if _INT16.fullmatch(text):
        return int(text[2:], 16)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _INF.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.fullmatch(text):
        return float("nan")
    return text


def _at(mark: Any) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of a character index."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


class _UnknownAlias(Exception):
    """An alias to no anchor: the document cannot be built (one problem, nothing else)."""

    def __init__(self, line: int, col: int, message: str) -> None:
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


class _Builder:
    """Turns the event stream into located nodes, collecting problems."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.anchors: dict[str, YNode] = {}

    def problem(self, line: int, col: int, message: str) -> None:
        self.problems.append(Problem(self.file, line, col, message))

    def tag_ok(self, tag: str | None, line: int, col: int, allowed: tuple[str, ...]) -> None:
        if tag is None or tag == "!" or tag in allowed:
            return
        shown = tag.replace(_CORE, "!!")
        self.problem(line, col, f"YAML tag {shown!r} is not allowed")

    def scalar(self, ev: Any) -> YScalar:
        line, col = _at(ev.start_mark)
        text = ev.value
        quoted = ev.style in ("'", '"')
        tag = ev.tag
        value: str | int | float | bool | None
        if tag is None and not ev.style:
            value = _resolve(text)  # plain: the core schema decides
        elif tag is None or tag == "!" or tag == _CORE + "str":
            value = text
        elif tag in (_CORE + "int", _CORE + "float", _CORE + "bool", _CORE + "null"):
            value = _resolve(text)
            wanted = _EXPLICIT[tag.removeprefix(_CORE)]
            if not isinstance(value, wanted) or (tag.endswith("int") and isinstance(value, bool)):
                self.problem(
                    line, col, f"{text!r} does not fit its tag !!{tag.removeprefix(_CORE)}"
                )
                value = text
            elif tag.endswith("float") and isinstance(value, int):
                value = float(value)
        else:
            self.tag_ok(tag, line, col, ())
            value = text
        node = YScalar(line, col, value=value, text=text, quoted=quoted)
        if ev.anchor is not None:
            self.anchors[ev.anchor] = node
        return node

    def alias(self, ev: Any) -> YNode:
        """The anchored node, placed at the alias (children shared, never copied)."""
        line, col = _at(ev.start_mark)
        target = self.anchors.get(ev.anchor)
        if target is None:  # the parser does not check this; the composer we skip would have
            raise _UnknownAlias(line, col, f"invalid YAML: unknown alias *{ev.anchor}")
        if isinstance(target, YScalar):
            return YScalar(line, col, value=target.value, text=target.text, quoted=target.quoted)
        if isinstance(target, YSeq):
            return YSeq(line, col, items=target.items)
        assert isinstance(target, YMap)
        return YMap(line, col, items=target.items, merge=target.merge)

    def build(self, events: Any) -> YNode | None:
        """The single document's root (None when empty)."""
        stack: list[Any] = []  # YSeq, or [YMap, pending key node or None]
        root: YNode | None = None
        documents = 0
        for ev in events:
            cls = type(ev)
            node: YNode | None
            if cls is yaml.ScalarEvent:
                node = self.scalar(ev)
            elif cls is yaml.AliasEvent:
                node = self.alias(ev)
            elif cls is yaml.SequenceStartEvent:
                line, col = _at(ev.start_mark)
                self.tag_ok(ev.tag, line, col, (_CORE + "seq",))
                seq = YSeq(line, col)
                if ev.anchor is not None:
                    self.anchors[ev.anchor] = seq
                stack.append(seq)
                continue
            elif cls is yaml.MappingStartEvent:
                line, col = _at(ev.start_mark)
                self.tag_ok(ev.tag, line, col, (_CORE + "map",))
                mapping = YMap(line, col)
                if ev.anchor is not None:
                    self.anchors[ev.anchor] = mapping
                stack.append([mapping, None])
                continue
            elif cls is yaml.SequenceEndEvent:
                node = stack.pop()
            elif cls is yaml.MappingEndEvent:
                node = stack.pop()[0]
            elif cls is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    line, col = _at(ev.start_mark)
                    self.problem(
                        line, col, "invalid YAML: a second document (a rule file holds one)"
                    )
                    return None
                continue
            else:
                continue
            if not stack:
                root = node
                continue
            top = stack[-1]
            if type(top) is YSeq:
                top.items.append(node)
            elif top[1] is None:
                top[1] = node
            else:
                self.put(top[0], top[1], node)
                top[1] = None
        return root

    def put(self, mapping: YMap, key: YNode, value: YNode) -> None:
        if not isinstance(key, YScalar):
            self.problem(key.line, key.col, "a key must be plain text")
            return
        name = key.text
        if name == "<<" and not key.quoted:
            if mapping.merge is None:
                mapping.merge = key
                self.problem(key.line, key.col, MERGE_KEY_HELP)
            return
        first = mapping.items.get(name)
        if first is not None:
            self.problem(
                key.line,
                key.col,
                f"duplicate key {name!r} (first at line {first[0].line}, column {first[0].col})",
            )
            return
        mapping.items[name] = (key, value)


def parse_yaml(text: str, file: str) -> tuple[YNode | None, list[Problem]]:
    """Parse one YAML document.

    Returns:
        the root node (None for an empty document or a syntax error) and the problems found.
    """
    builder = _Builder(file)
    try:
        root = builder.build(yaml.parse(text, Loader=_Loader))
    except _UnknownAlias as exc:
        return None, [Problem(file, exc.line, exc.col, exc.message)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or exc.context or "cannot parse"
        if exc.problem and exc.context:
            message = f"{exc.problem} ({exc.context}"
            if exc.context_mark is not None and exc.context_mark is not mark:
                line, col = _at(exc.context_mark)
                message += f" at {line}:{col}"
            message += ")"
        line, col = _at(mark) if mark is not None else (1, 1)
        return None, [Problem(file, line, col, f"invalid YAML: {message}")]
    except yaml.reader.ReaderError as exc:
        line, col = _position(text, exc.position)
        return None, [Problem(file, line, col, f"invalid YAML: {exc.reason}")]
    except yaml.YAMLError as exc:
        return None, [Problem(file, 1, 1, f"invalid YAML: {str(exc).splitlines()[0]}")]
    return root, builder.problems
