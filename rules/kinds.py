"""Per-kind reading of rule mappings: which keys each kind has and how its values are checked.

Each reader gets the rule's items (key -> located node), the unit slot of the watched point and
the common fields already read, records every problem in the :class:`~edge.rules.fields.Ctx`,
and returns the rule (or None when it cannot be built).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge.rules.fields import Ctx, UnitSlot
from edge.rules.model import (
    NELSON_RULES,
    DerivedRule,
    LimitRule,
    LotRule,
    QualityRule,
    RateRule,
    Rule,
    SpcRule,
    StaleRule,
)
from edge.rules.yamlpos import YMap, YNode, YScalar, YSeq

__all__ = ["DEFAULT_MESSAGES", "KIND_KEYS", "KIND_READERS", "Items"]

KIND_KEYS: dict[str, tuple[str, ...]] = {
    "limit": ("low", "high", "deadband", "on_delay", "off_delay"),
    "rate": ("max_change", "per", "window", "direction"),
    "stale": ("max_age",),
    "quality": ("duration",),
    "derived": ("unit",),
    "spc": ("center", "sigma", "ucl", "lcl", "baseline", "nelson", "on_delay", "off_delay"),
    "lot": ("low", "high", "checks"),
}

DEFAULT_MESSAGES = {
    "limit": "{point} = {value} {unit} outside limit {limit} {unit}",
    "rate": "{point} changes by {value} {unit}, more than {limit} {unit}",
    "stale": "no data from {point} for {value} s (max {limit} s)",
    "quality": "{point} quality is {value}",
    "derived": "{point} cannot be computed",
    "spc": "{point} = {value} {unit}: out of statistical control",
    "lot": "lot {lot}: {point} {stat} = {value}, limit {limit}",
}


#: a rule mapping's values by key
Items = dict[str, YNode]


def _opt_value(ctx: Ctx, items: Items, key: str, slot: UnitSlot) -> float | None:
    return ctx.value(items[key], key, slot) if key in items else None


def _opt_duration(
    ctx: Ctx, items: Items, key: str, default: float, positive: bool = False
) -> float:
    if key not in items:
        return default
    got = ctx.duration(items[key], key, positive)
    return default if got is None else got


def _limit(
    ctx: Ctx, node: YMap, items: Items, slot: UnitSlot, common: dict[str, Any]
) -> Rule | None:
    low = _opt_value(ctx, items, "low", slot)
    high = _opt_value(ctx, items, "high", slot)
    deadband = _opt_value(ctx, items, "deadband", slot)
    if "low" not in items and "high" not in items:
        ctx.error(node, "a limit rule needs 'low', 'high' or both")
        return None
    if low is not None and high is not None and low >= high:
        ctx.error(items["low"], f"low: {low:g} must be below high {high:g}")
        return None
    if deadband is not None:
        if deadband < 0:
            ctx.error(
                items["deadband"],
                f"deadband: {deadband:g} is negative: the hysteresis must "
                "lie inside the limits (the alarm clears at high - deadband, low + deadband)",
            )
            return None
        if low is not None and high is not None and deadband >= high - low:
            ctx.error(
                items["deadband"],
                f"deadband: {deadband:g} is not smaller than the band "
                f"high - low = {high - low:g} (the alarm could never clear)",
            )
            return None
    return LimitRule(
        **common,
        unit=slot.unit,
        low=low,
        high=high,
        deadband=deadband or 0.0,
        on_delay=_opt_duration(ctx, items, "on_delay", 0.0),
        off_delay=_opt_duration(ctx, items, "off_delay", 0.0),
    )


def _rate(
    ctx: Ctx, node: YMap, items: Items, slot: UnitSlot, common: dict[str, Any]
) -> Rule | None:
    for needed in ("max_change", "per"):
        if needed not in items:
            ctx.error(node, f"missing key {needed!r} (a rate rule allows max_change per duration)")
    if "max_change" not in items or "per" not in items:
        return None
    max_change = ctx.value(items["max_change"], "max_change", slot)
    if max_change is not None and max_change <= 0:
        ctx.error(items["max_change"], "max_change: must be above 0")
        return None
    per = ctx.duration(items["per"], "per", positive=True)
    direction = "both"
    if "direction" in items:
        direction = ctx.choice(items["direction"], "direction", ("rise", "fall", "both")) or "both"
    if max_change is None or per is None:
        return None
    return RateRule(
        **common,
        unit=slot.unit,
        max_change=max_change,
        per=per,
        window=_opt_duration(ctx, items, "window", per, positive=True),
        direction=direction,
    )


def _stale(
    ctx: Ctx, node: YMap, items: Items, slot: UnitSlot, common: dict[str, Any]
) -> Rule | None:
    if "max_age" not in items:
        ctx.error(node, "missing key 'max_age' (how long without data, e.g. '5s')")
        return None
    max_age = ctx.duration(items["max_age"], "max_age", positive=True)
    return None if max_age is None else StaleRule(**common, unit=slot.unit, max_age=max_age)


def _quality(
    ctx: Ctx, node: YMap, items: Items, slot: UnitSlot, common: dict[str, Any]
) -> Rule | None:
    return QualityRule(
        **common, unit=slot.unit, duration=_opt_duration(ctx, items, "duration", 0.0)
    )


def _derived(
    ctx: Ctx, node: YMap, items: Items, slot: UnitSlot, common: dict[str, Any]
) -> Rule | None:
    if common["expression"] is None:
        return None
    return DerivedRule(**common, unit=slot.unit)


def _spc(ctx: Ctx, node: YMap, items: Items, slot: UnitSlot, common: dict[str, Any]) -> Rule | None:
    given = [k for k in ("center", "sigma", "ucl", "lcl", "baseline") if k in items]
    forms = {
        "center/sigma": {"center", "sigma"},
        "ucl/lcl": {"ucl", "lcl"},
        "baseline": {"baseline"},
    }
    matching = [f for f, keys in forms.items() if set(given) == keys]
    if not matching:
        ctx.error(
            node,
            "an spc rule needs its limits as 'center' and 'sigma', as 'ucl' and 'lcl', "
            f"or learned from 'baseline: N' readings (got: {', '.join(given) or 'none'})",
        )
    center = sigma = None
    baseline = 0
    if "center" in items:
        center = ctx.value(items["center"], "center", slot)
    if "sigma" in items:
        sigma = ctx.value(items["sigma"], "sigma", slot)
        if sigma is not None and sigma <= 0:
            ctx.error(items["sigma"], f"sigma: must be above 0, got {sigma:g}")
    if "ucl" in items and "lcl" in items:
        ucl = ctx.value(items["ucl"], "ucl", slot)
        lcl = ctx.value(items["lcl"], "lcl", slot)
        if ucl is not None and lcl is not None:
            if ucl <= lcl:
                ctx.error(items["lcl"], f"lcl: {lcl:g} must be below ucl {ucl:g}")
            center, sigma = (ucl + lcl) / 2, (ucl - lcl) / 6
    if "baseline" in items:
        baseline = ctx.integer(items["baseline"], "baseline", 2) or 0
    nelson: tuple[int, ...] = (1,)
    if "nelson" in items:
        nelson = _nelson(ctx, items["nelson"]) or nelson
    if not matching:
        return None
    return SpcRule(
        **common,
        unit=slot.unit,
        center=center,
        sigma=sigma,
        baseline=baseline,
        nelson=nelson,
        on_delay=_opt_duration(ctx, items, "on_delay", 0.0),
        off_delay=_opt_duration(ctx, items, "off_delay", 0.0),
        decimals=_decimals(items, ("center", "sigma", "ucl", "lcl")),
    )


def _decimals(items: Items, keys: tuple[str, ...]) -> int | None:
    """Most decimals among the numbers written at ``keys`` (``0.25 degC`` -> 2); None if none."""
    found = None
    for key in keys:
        node = items.get(key)
        if isinstance(node, YScalar):
            number = node.text.split()[0] if node.text.split() else ""
            mantissa = number.lower().split("e")[0]
            if "e" in number.lower():
                continue  # exponent form: no fixed decimals to follow
            places = len(mantissa.split(".")[1]) if "." in mantissa else 0
            found = places if found is None else max(found, places)
    return found


def _nelson(ctx: Ctx, node: YNode) -> tuple[int, ...] | None:
    if isinstance(node, YScalar) and node.value == "all":
        return NELSON_RULES
    if not isinstance(node, YSeq) or not node.items:
        ctx.error(node, "nelson: expected a list of rule numbers 1-8 (e.g. [1, 2, 5]) or 'all'")
        return None
    chosen: list[int] = []
    for item in node.items:
        if not (isinstance(item, YScalar) and type(item.value) is int):
            ctx.error(item, f"nelson: {getattr(item, 'text', 'this')!r} is not a rule number 1-8")
        elif item.value not in NELSON_RULES:
            ctx.error(item, f"nelson: unknown Nelson rule {item.value} (rules are numbered 1-8)")
        elif item.value in chosen:
            ctx.error(item, f"nelson: rule {item.value} is listed twice")
        else:
            chosen.append(item.value)
    return tuple(sorted(chosen))


def _lot(ctx: Ctx, node: YMap, items: Items, slot: UnitSlot, common: dict[str, Any]) -> Rule | None:
    low = _opt_value(ctx, items, "low", slot)
    high = _opt_value(ctx, items, "high", slot)
    if low is not None and high is not None and low >= high:
        ctx.error(items["low"], f"low: {low:g} must be below high {high:g}")
    if "checks" not in items:
        ctx.error(node, "missing key 'checks' (e.g. ['cpk >= 1.33', 'count >= 10'])")
        return None
    checks_node = items["checks"]
    if not isinstance(checks_node, YSeq) or not checks_node.items:
        ctx.error(checks_node, "checks: expected a list like ['cpk >= 1.33', 'count >= 10']")
        return None
    checks = []
    for item in checks_node.items:
        check = ctx.check(item, slot)
        if check is None:
            continue
        if check.stat == "cp" and ("low" not in items or "high" not in items):
            ctx.error(item, "checks: cp needs both 'low' and 'high' spec limits")
        elif check.stat == "cpk" and "low" not in items and "high" not in items:
            ctx.error(item, "checks: cpk needs a 'low' or 'high' spec limit")
        checks.append(check)
    return LotRule(**common, unit=slot.unit, low=low, high=high, checks=tuple(checks))


KIND_READERS: dict[str, Callable[[Ctx, YMap, Items, UnitSlot, dict[str, Any]], Rule | None]] = {
    "limit": _limit,
    "rate": _rate,
    "stale": _stale,
    "quality": _quality,
    "derived": _derived,
    "spc": _spc,
    "lot": _lot,
}
