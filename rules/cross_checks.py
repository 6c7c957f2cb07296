"""The checks across every file of a rule set, once each rule has been read on its own.

:mod:`edge.rules.loader` reads each file into drafts (:class:`_Draft`) and gathers the file-level
keys (:class:`_Files`); here duplicate ids, unknown point names, the derived-point graph (order
and cycles) and the lot point are checked across all of them, and the rule order is decided.
Moved unchanged out of :mod:`edge.rules.loader`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection
from dataclasses import dataclass, field

from edge.rules.expressions import did_you_mean
from edge.rules.fields import Ctx
from edge.rules.kinds import DEFAULT_MESSAGES
from edge.rules.model import DerivedRule, Expression, Rule
from edge.rules.yamlpos import YMap, YNode, YScalar


@dataclass(slots=True)
class _Draft:
    """A rule read from its file, before the cross-file checks."""

    ctx: Ctx
    node: YMap
    kind: str | None = None
    id: str | None = None
    point: str | None = None  #: the watched (derived: defined) point; "expr:<id>" for inline
    point_node: YNode | None = None
    expr: Expression | None = None
    expr_node: YNode | None = None
    rule: Rule | None = None  #: None when the rule itself has problems
    unit_from_config: bool = False  #: its unit came from the node config alone (not hashed)


@dataclass(slots=True)
class _Files:
    """What the first pass over all files gathered."""

    units: dict[str, tuple[str, Ctx, YNode]] = field(default_factory=dict)
    lot: tuple[str, Ctx, YNode] | None = None
    rule_nodes: list[tuple[Ctx, YMap]] = field(default_factory=list)
    #: per file: the ``defaults:`` keys (key text -> key node, value node)
    defaults: dict[str, dict[str, tuple[YScalar, YNode]]] = field(default_factory=dict)


def _cross_check(drafts: list[_Draft], files: _Files, known: Collection[str] | None) -> list[Rule]:
    """Ids, point names, derived-point graph and lot point across every file; return rule order."""
    by_id: dict[str, _Draft] = {}
    for d in drafts:
        if d.id is None:
            continue
        first = by_id.get(d.id)
        if first is not None:
            first_at = first.ctx.loc(first.node)
            d.ctx.error(d.node.items["id"][1], f"duplicate rule id {d.id!r} (first at {first_at})")
        else:
            by_id[d.id] = d
    defined: dict[str, _Draft] = {}
    for d in drafts:
        if d.kind != "derived" or d.point is None:
            continue
        where = d.point_node or d.node
        if known is not None and d.point in known:
            d.ctx.error(where, f"derived point {d.point!r} has the name of a configured point")
        elif d.point in defined:
            d.ctx.error(
                where, f"point {d.point!r} is already derived by rule {defined[d.point].id!r}"
            )
        else:
            defined[d.point] = d
    names = set(defined) | (set(known) if known is not None else set())
    for d in drafts:
        if d.expr is not None and d.expr_node is not None:
            node = d.expr_node
            shift = 1 if isinstance(node, YScalar) and node.quoted else 0
            for name in d.expr.inputs:
                if name not in names and (known is not None or name in defined):
                    col = node.col + shift + _find_name(node, name)
                    hint = did_you_mean(name, names)
                    d.ctx.error((node.line, col), f"unknown point {name!r}{hint}")
        elif (
            d.kind != "derived"
            and d.point is not None
            and known is not None
            and (d.point not in names)
        ):
            hint = did_you_mean(d.point, names)
            d.ctx.error(d.point_node or d.node, f"unknown point {d.point!r}{hint}")
    if files.lot is not None and known is not None and files.lot[0] not in names:
        name, ctx, node = files.lot
        ctx.error(node, f"unknown point {name!r}{did_you_mean(name, names)}")
    if files.lot is None:
        for d in drafts:
            if d.kind == "lot":
                d.ctx.error(
                    d.node,
                    "a lot rule needs the lot point: add 'lot: <point>' at the top of the file",
                )
    ordered = _derived_order(list(defined.values()))
    implicit = [
        DerivedRule(
            id=d.rule.point,
            point=d.rule.point,
            severity=d.rule.severity,
            tags=d.rule.tags,
            message=DEFAULT_MESSAGES["derived"],
            unit=d.rule.unit,
            expression=d.rule.expression,
            location=d.rule.location,
        )
        for d in drafts
        if d.rule is not None and d.kind != "derived" and d.rule.expression is not None
    ]
    rest = [d.rule for d in drafts if d.rule is not None and d.kind != "derived"]
    return ordered + implicit + rest


def _as_written(rules: list[Rule], drafts: list[_Draft]) -> list[Rule]:
    """The rules as the files alone define them: a unit taken from the node config is left out.

    The set's hash is taken of these, so it is the same with and without ``--config``; the
    config's unit only fills ``{unit}`` in messages.
    """
    ids = {d.rule.id for d in drafts if d.rule is not None and d.unit_from_config}
    ids |= {d.rule.point for d in drafts if d.rule is not None and d.unit_from_config}
    return [dataclasses.replace(r, unit="") if r.id in ids else r for r in rules]


def _find_name(node: YNode, name: str) -> int:
    """Column offset of ``name`` in the expression as written (0 when not found)."""
    text = node.text if isinstance(node, YScalar) else ""
    match = re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", text)
    return match.start() if match else 0


def _derived_order(derived: list[_Draft]) -> list[Rule]:
    """Derived rules in dependency order; a cycle is reported once, where it closes."""
    by_point = {d.point: d for d in derived}
    order: list[Rule] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(point: str, path: list[str]) -> None:
        if state.get(point) == 2:
            return
        if state.get(point) == 1:
            cycle = [*path[path.index(point) :], point]
            d = by_point[point]
            d.ctx.error(
                d.point_node or d.node, f"derived points form a cycle: {' -> '.join(cycle)}"
            )
            return
        state[point] = 1
        d = by_point[point]
        for name in d.expr.inputs if d.expr else ():
            if name in by_point:
                visit(name, [*path, point])
        state[point] = 2
        if d.rule is not None:
            order.append(d.rule)

    for d in derived:
        assert d.point is not None
        visit(d.point, [])
    return order
