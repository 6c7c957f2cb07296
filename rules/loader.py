"""Load rule files into a validated :class:`~edge.rules.model.RuleSet`, reporting every problem.

A rule file (YAML 1.2)::

    version: 1                # optional; 1 is the only version
    lot: lot_code             # optional: the point whose text value is the current lot code
    units:                    # optional: units of points, checked against values written with one
      tunnel_temp: degC
    rules:
      - id: tunnel-temp-high
        kind: limit
        point: tunnel_temp
        high: 8.0 degC
        deadband: 0.5 degC
        on_delay: 2s
        off_delay: 2s
        severity: high

Shared settings and one rule for many points::

    defaults:                 # optional: keys every rule of this file gets unless it sets them
      severity: high          # (a key goes only to the kinds it applies to)
      on_delay: 2s
    rules:
      - id: tunnel-temp-high  # expands to tunnel-temp-high[t1] and tunnel-temp-high[t2]
        kind: limit
        points: [t1, t2]
        high: 8.0 degC

docs/reference/rules.md describes every kind and key. All files of a set are read and
checked before anything is returned; the problems of every file come out together, sorted by
file (in the order given), line and column.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from edge.errors import ConfigError
from edge.rules.cross_checks import _as_written, _cross_check, _Draft, _Files
from edge.rules.expressions import did_you_mean
from edge.rules.fields import Ctx, UnitSlot, describe
from edge.rules.kinds import DEFAULT_MESSAGES, KIND_KEYS, KIND_READERS
from edge.rules.model import (
    Expression,
    RuleSet,
    Severity,
)
from edge.rules.yamlpos import Problem, YMap, YNode, YScalar, YSeq, parse_yaml

__all__ = ["COMMON_KEYS", "FILE_KEYS", "Problem", "check_rules", "load_rules"]

#: The keys of a rule file's top level and of every rule (each kind adds its own: KIND_KEYS);
#: docs/reference/rules.md documents exactly these (tests/docs checks it).
FILE_KEYS = ("version", "lot", "units", "defaults", "rules")
COMMON_KEYS = (
    "id", "kind", "point", "points", "expr", "severity", "tags", "message", "clear_message"
)  # fmt: skip
_COMMON = tuple(k for k in COMMON_KEYS if k != "points")  # expanded before a rule is read
_KINDS = tuple(KIND_KEYS)
#: an id as written, or as expanded from ``points:`` (``tunnel-temp-high[t1]``)
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*(?:\[[A-Za-z0-9_.\-]+\])?")
#: keys a rule has for itself, never from ``defaults:``
_OWN = ("id", "point", "points", "expr")
_EVERY_KEY = frozenset(_COMMON).union(*KIND_KEYS.values())


def _read(path: Path, ctx: Ctx) -> YNode | None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        ctx.error((1, 1), f"cannot read: {exc.strerror or exc}")
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # placed at the offending character, so an editor can jump to it
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        col = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", errors="replace")) + 1
        what = "binary data" if b"\0" in data else "text"
        ctx.error(
            (line, col),
            f"not UTF-8 {what} (byte 0x{data[exc.start]:02x} at offset {exc.start}: "
            f"{exc.reason}); a rule file is UTF-8 text",
        )
        return None
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte-order mark some Windows editors write
    if "\0" in text:
        index = text.index("\0")
        line = text.count("\n", 0, index) + 1
        col = index - (text.rfind("\n", 0, index) + 1) + 1
        ctx.error((line, col), "binary data (a NUL character); a rule file is UTF-8 text")
        return None
    root, problems = parse_yaml(text, ctx.file)
    ctx.problems.extend(problems)
    if root is None and not problems:
        ctx.error((1, 1), "the file is empty (expected a 'rules:' list)")
    return root


def _top(root: YNode, ctx: Ctx, files: _Files, known: Mapping[str, str] | None) -> None:
    """Read the top level of one file into ``files``."""
    top = ctx.mapping(root, "a rule file")
    if top is None:
        return
    ctx.keys(top, FILE_KEYS, "the rule file")
    if "version" in top.items:
        node = top.items["version"][1]
        if not (isinstance(node, YScalar) and type(node.value) is int and node.value == 1):
            ctx.error(node, "version: only version 1 exists")
    if "lot" in top.items:
        node = top.items["lot"][1]
        name = ctx.text(node, "lot")
        if name is not None:
            if files.lot is not None and files.lot[0] != name:
                other = files.lot[1].loc(files.lot[2])
                ctx.error(node, f"lot: {name!r} differs from lot {files.lot[0]!r} at {other}")
            elif files.lot is None:
                files.lot = (name, ctx, node)
    if "units" in top.items:
        units = ctx.mapping(top.items["units"][1], "units")
        for point, (_key, value) in units.items.items() if units else ():
            unit = ctx.text(value, f"units.{point}")
            if unit is None:
                continue
            if known is not None and known.get(point, "") not in ("", unit):
                ctx.error(
                    value,
                    f"units.{point}: {unit!r} differs from the configured unit {known[point]!r}",
                )
            elif point in files.units and files.units[point][0] != unit:
                ctx.error(
                    value,
                    f"units.{point}: {unit!r} differs from {files.units[point][0]!r} "
                    f"at {files.units[point][1].loc(files.units[point][2])}",
                )
            else:
                files.units.setdefault(point, (unit, ctx, value))
    if "defaults" in top.items:
        _defaults(ctx, top.items["defaults"][1], files)
    if "rules" not in top.items:
        ctx.error(top, "missing key 'rules' (the list of rules)")
        return
    rules = top.items["rules"][1]
    if not isinstance(rules, YSeq):
        ctx.error(rules, f"rules: expected a list of rules, got {describe(rules)}")
        return
    defaults = files.defaults.get(ctx.file, {})
    for item in rules.items:
        rule_node = ctx.mapping(item, "a rule")
        if rule_node is not None and rule_node.merge is None:  # a merge key: said once, enough
            files.rule_nodes.extend((ctx, n) for n in _expand(ctx, rule_node, defaults))


def _defaults(ctx: Ctx, node: YNode, files: _Files) -> None:
    """Read a file's ``defaults:`` mapping (checked here; applied rule by rule)."""
    mapping = ctx.mapping(node, "defaults")
    if mapping is None or mapping.merge is not None:
        return
    kept: dict[str, tuple[YScalar, YNode]] = {}
    for name, (key, value) in mapping.items.items():
        if name in _OWN:
            ctx.error(key, f"defaults: {name!r} cannot be shared (each rule sets its own)")
        elif name not in _EVERY_KEY:
            ctx.error(key, f"unknown key {name!r} in defaults{did_you_mean(name, _EVERY_KEY)}")
        else:
            kept[name] = (key, value)
    files.defaults[ctx.file] = kept


def _expand(ctx: Ctx, node: YMap, defaults: Mapping[str, tuple[YScalar, YNode]]) -> list[YMap]:
    """A rule with its file's defaults applied, one per point of a ``points:`` list.

    A default goes only to rules whose kind has that key, so ``on_delay`` in defaults reaches
    limit and spc rules and leaves stale rules alone. Expanded rules are ordinary rules with ids
    ``<id>[<point>]``, so the set's hash is that of the same rules written out one by one.
    """
    items = dict(node.items)
    if defaults:
        kind_node = items.get("kind", defaults.get("kind", (None, None)))[1]
        kind = kind_node.value if isinstance(kind_node, YScalar) else None
        applies = (
            set(_COMMON) | set(KIND_KEYS[kind])
            if isinstance(kind, str) and kind in KIND_KEYS
            else _EVERY_KEY
        )
        for name, pair in defaults.items():
            if name not in items and name in applies:
                items[name] = pair
    if "points" not in items:
        return [YMap(node.line, node.col, items=items)] if defaults else [node]
    key, points_node = items.pop("points")
    others = [k for k in ("point", "expr") if k in items]
    kind_node = items.get("kind", (None, None))[1]
    if others:
        ctx.error(key, f"give either 'points' or {others[0]!r}, not both")
        return []
    if isinstance(kind_node, YScalar) and kind_node.value == "derived":
        ctx.error(key, "points: a derived rule defines one point ('point: name')")
        return []
    names = ctx.string_list(points_node, "points")
    if names is None:
        return []
    if not names:
        ctx.error(points_node, "points: the list is empty (name at least one point)")
        return []
    id_pair = items.get("id")
    id_node = id_pair[1] if id_pair else None
    base = (
        id_node.value if isinstance(id_node, YScalar) and isinstance(id_node.value, str) else None
    )
    out: list[YMap] = []
    seen: set[str] = set()
    assert isinstance(points_node, YSeq)
    for name, point_node in zip(names, points_node.items, strict=True):
        if name in seen:
            ctx.error(point_node, f"points: {name!r} is listed twice")
            continue
        seen.add(name)
        one = dict(items)
        one["point"] = (key, point_node)
        if id_pair is not None and base is not None and id_node is not None:
            expanded = f"{base.strip()}[{name}]"
            one["id"] = (
                id_pair[0],
                YScalar(id_node.line, id_node.col, value=expanded, text=expanded),
            )
        out.append(YMap(node.line, node.col, items=one))
        if base is None:
            break  # no usable id: its problem once, not once per point
    return out


def _point_unit(
    point: str, files: _Files, known: Mapping[str, str] | None, derived_units: Mapping[str, str]
) -> UnitSlot:
    if point in files.units:
        return UnitSlot(files.units[point][0], f"point {point!r}")
    if known is not None and known.get(point):
        return UnitSlot(known[point], f"point {point!r}", from_config=True)
    if derived_units.get(point):
        return UnitSlot(derived_units[point], f"point {point!r}")
    return UnitSlot()


def _rule(
    ctx: Ctx,
    node: YMap,
    files: _Files,
    known: Mapping[str, str] | None,
    derived_units: Mapping[str, str],
) -> _Draft:
    """Read one rule mapping; ``draft.rule`` is None when it has problems (recorded)."""
    items = {name: value for name, (_, value) in node.items.items()}
    before = len(ctx.problems)
    draft = _Draft(ctx, node)
    kind = ctx.choice(items["kind"], "kind", _KINDS) if "kind" in items else None
    if "kind" not in items:
        ctx.error(node, f"missing key 'kind' (one of: {', '.join(_KINDS)})")
    if kind is not None:
        allowed = COMMON_KEYS + KIND_KEYS[kind]
        for name, (key, _) in node.items.items():
            if name in allowed:
                continue
            owners = [k for k, keys in KIND_KEYS.items() if name in keys]
            if owners:
                ctx.error(
                    key,
                    f"key {name!r} does not apply to a {kind} rule "
                    f"(it belongs to: {', '.join(owners)})",
                )
            else:
                ctx.error(
                    key, f"unknown key {name!r} in a {kind} rule{did_you_mean(name, allowed)}"
                )
    else:
        every = set(COMMON_KEYS).union(*KIND_KEYS.values())
        ctx.keys(node, every, "a rule")

    rule_id = None
    if "id" not in items:
        ctx.error(node, "missing key 'id'")
    else:
        rule_id = ctx.text(items["id"], "id")
        if rule_id is not None and not _ID.fullmatch(rule_id):
            ctx.error(
                items["id"],
                f"id: {rule_id!r} may use only letters, digits and _ . - "
                "(and starts with a letter or digit)",
            )
            rule_id = None

    point: str | None = None
    expr: Expression | None = None
    point_node: YNode | None = None
    if kind == "derived":
        for needed in ("point", "expr"):
            if needed not in items:
                ctx.error(node, f"missing key {needed!r} (a derived rule defines point = expr)")
        if "point" in items:
            point_node = items["point"]
            point = ctx.text(point_node, "point")
            if point is not None and not point.isidentifier():
                ctx.error(
                    point_node,
                    f"point: derived point {point!r} must be a name usable in "
                    "expressions (letters, digits, _; not starting with a digit)",
                )
        if "expr" in items:
            expr = ctx.expression(items["expr"], "expr")
    elif "point" in items and "expr" in items:
        ctx.error(node.items["expr"][0], "give either 'point' or 'expr', not both")
    elif "point" in items:
        point_node = items["point"]
        point = ctx.text(point_node, "point")
    elif "expr" in items:
        point_node = items["expr"]
        expr = ctx.expression(point_node, "expr")
        if rule_id is not None:
            point = f"expr:{rule_id}"
    else:
        ctx.error(node, "missing key 'point' (or 'expr')")

    severity = Severity.MEDIUM
    if "severity" in items:
        chosen = ctx.choice(items["severity"], "severity", [s.value for s in Severity])
        severity = Severity(chosen) if chosen else severity
    tags: tuple[str, ...] = ()
    if "tags" in items:
        tags = ctx.string_list(items["tags"], "tags") or ()
    message = DEFAULT_MESSAGES.get(kind or "", "")
    if "message" in items:
        message = ctx.message(items["message"], "message") or message
    clear_message = ""
    if "clear_message" in items:
        clear_message = ctx.message(items["clear_message"], "clear_message") or ""

    draft.kind, draft.id, draft.point, draft.point_node, draft.expr = (
        kind,
        rule_id,
        point,
        point_node,
        expr,
    )
    draft.expr_node = items.get("expr")
    if kind is None or rule_id is None or point is None:
        return draft
    if kind == "derived":
        slot = UnitSlot()
        if "unit" in items:
            slot.unit = ctx.text(items["unit"], "unit") or ""
    else:
        slot = _point_unit(point, files, known, derived_units)
    common: dict[str, Any] = {
        "id": rule_id,
        "point": point,
        "severity": severity,
        "tags": tags,
        "message": message,
        "clear_message": clear_message,
        "expression": expr,
        "location": ctx.loc(node),
    }
    rule = KIND_READERS[kind](ctx, node, items, slot, common)
    if rule is not None and len(ctx.problems) == before:
        draft.rule = rule
        draft.unit_from_config = slot.from_config and not slot.written
    return draft


def _derived_units(files: _Files) -> dict[str, str]:
    """Units declared by derived rules (``unit:``), for the rules that watch them."""
    out: dict[str, str] = {}
    for _, node in files.rule_nodes:
        kind, point, unit = (node.items.get(k, (None, None))[1] for k in ("kind", "point", "unit"))
        if (
            isinstance(kind, YScalar)
            and kind.value == "derived"
            and isinstance(point, YScalar)
            and isinstance(point.value, str)
            and isinstance(unit, YScalar)
            and isinstance(unit.value, str)
        ):
            out[point.value] = unit.value
    return out


def check_rules(
    paths: Iterable[str | Path], known_points: Collection[str] | Mapping[str, str] | None = None
) -> tuple[RuleSet | None, list[Problem]]:
    """Load rule files, returning the set (None if anything is wrong) and every problem found.

    Args:
        paths: the rule files, in order.
        known_points: point names the rules may read, or a mapping name -> unit (units are then
            checked too); None = do not check point names.
    """
    files_in = [Path(p) for p in paths]
    known: Mapping[str, str] | None
    if known_points is None:
        known = None
    elif isinstance(known_points, Mapping):
        known = {str(k): str(v) for k, v in known_points.items()}
    else:
        known = dict.fromkeys(known_points, "")
    ctxs = [Ctx(str(p)) for p in files_in]
    files = _Files()
    for path, ctx in zip(files_in, ctxs, strict=True):
        root = _read(path, ctx)
        if root is not None:
            _top(root, ctx, files, known)
    derived_units = _derived_units(files)
    drafts = [_rule(ctx, node, files, known, derived_units) for ctx, node in files.rule_nodes]
    rules = _cross_check(drafts, files, known)
    order = {c.file: i for i, c in enumerate(ctxs)}
    problems = sorted(
        {p for c in ctxs for p in c.problems},  # a bad default is said once, not once per rule
        key=lambda p: (order[p.file], p.line, p.col, p.message),
    )
    if problems:
        return None, problems
    lot = files.lot[0] if files.lot else None
    return RuleSet.build(
        rules, lot=lot, sources=[str(p) for p in files_in], hashed=_as_written(rules, drafts)
    ), []


def load_rules(
    paths: Iterable[str | Path], known_points: Collection[str] | Mapping[str, str] | None = None
) -> RuleSet:
    """Load and validate rule files into one :class:`RuleSet`.

    Args:
        paths: the rule files, in order (rule ids are unique across all of them).
        known_points: point names the rules may read (configured points), or a mapping
            name -> unit to check units as well; None = point names are not checked.

    Raises:
        ConfigError: ``problems`` holds every problem of every file, one
            ``file:line:col: message`` line each.
    """
    ruleset, problems = check_rules(paths, known_points)
    if ruleset is None:
        raise ConfigError([str(p) for p in problems] or ["no rule files given"])
    return ruleset
