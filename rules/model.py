"""The rule model: what a validated rule file turns into (the contract between loader and engine).

Every value here has been checked by :mod:`edge.rules.loader`; the engine never re-validates.
All durations are seconds (``float``), all limits are plain floats in the point's engineering
unit (the file may write ``8.0 degC``; units are checked against the point, never converted).

Boundary conventions (the engine implements them; docs/reference/rules.md explains them):

* a limit is violated when the value is *strictly* beyond it (``value > high``, ``value < low``);
  a value exactly at the limit is in spec;
* an active limit alarm clears when the value is back inside by the deadband
  (``value <= high - deadband``, ``value >= low + deadband``);
* a delay is met when the condition has held for *at least* the delay
  (``now - since >= on_delay``); a delay of 0 acts on the first reading.

Rules can be built in code too (engine tests do)::

    rs = RuleSet.build([LimitRule(id="t-high", point="tunnel_temp", high=8.0, deadband=0.5)])
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # numpy only for the type: a running node does not load it
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]

__all__ = [
    "NELSON_RULES",
    "PLACEHOLDERS",
    "STATS",
    "DerivedRule",
    "Expression",
    "LimitRule",
    "Location",
    "LotCheck",
    "LotRule",
    "QualityRule",
    "RateRule",
    "Rule",
    "RuleBase",
    "RuleSet",
    "Severity",
    "SpcRule",
    "StaleRule",
]

#: Placeholders a message template may use (``"{point} = {value} {unit} above {limit} {unit}"``).
PLACEHOLDERS: tuple[str, ...] = (
    "rule",
    "point",
    "value",
    "limit",
    "unit",
    "lot",
    "severity",
    "stat",
)

#: Nelson / Western Electric run-rule numbers an SPC rule may select.
NELSON_RULES: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)

#: Statistics a lot check may compare: ``count mean min max std cp cpk``.
STATS: tuple[str, ...] = ("count", "mean", "min", "max", "std", "cp", "cpk")


class Severity(enum.StrEnum):
    """How urgent an alarm is (ordered: ``LOW < MEDIUM < HIGH < CRITICAL`` by :attr:`rank`)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for low ... 3 for critical, for sorting and filtering."""
        return ("low", "medium", "high", "critical").index(self.value)


@dataclass(frozen=True, slots=True)
class Location:
    """Where something was written.

    Attributes:
        file: the rule file's path as given to the loader (``"<code>"`` for rules built in code).
        line: 1-based line number (0 when unknown).
        col: 1-based column number (0 when unknown).
    """

    file: str = "<code>"
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Expression:
    """A checked arithmetic expression over points, compiled to closures (never ``eval``'d).

    Built by :func:`edge.rules.expressions.compile_expression`. Undefined arithmetic (division by
    zero, overflow, a fractional power of a negative number) and any non-finite result give
    ``math.nan`` in both forms, identically; callers treat NaN as "no value".

    Attributes:
        source: the expression as normalised text (``ast.unparse`` of the checked tree); two
            spellings of one expression (``a+b`` and ``a + b``) share it.
        inputs: the point names it reads, sorted and unique; the positional order of :attr:`fn`
            and :attr:`vector_fn`.
        fn: ``fn(*values)`` with one float per input (in :attr:`inputs` order) -> float.
        vector_fn: ``vector_fn(*arrays)`` with one float64 array per input (equal lengths) ->
            float64 array, element-wise identical to :attr:`fn`.
    """

    source: str
    inputs: tuple[str, ...]
    fn: Callable[..., float] = field(compare=False, repr=False)
    vector_fn: Callable[..., FloatArray] = field(compare=False, repr=False)

    def evaluate(self, values: Mapping[str, float]) -> float:
        """Evaluate with values looked up by point name (convenience; :attr:`fn` is faster)."""
        return self.fn(*(float(values[name]) for name in self.inputs))


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleBase:
    """Fields every rule kind has.

    Attributes:
        id: unique within the rule set (``"tunnel-temp-high"``); alarms are keyed by it.
        point: the point the rule watches: a configured point, or a point defined by a
            :class:`DerivedRule` (for a derived rule: the point it defines). A rule written
            with ``expr:`` instead of ``point:`` watches the implicit derived point
            ``"expr:<id>"`` that the loader adds ahead of it.
        severity: how urgent its alarm is.
        tags: free labels for routing and filtering (``("cold-chain", "haccp")``), file order.
        message: template with placeholders from :data:`PLACEHOLDERS` (``{point} {value}
            {limit} {unit} {lot} {rule} {severity}``), already checked; format it with
            ``message.format_map(...)``.
        unit: the watched point's engineering unit (from the file's ``units:`` map, the
            known points, or a unit written on a value); ``""`` when unknown.
        expression: for a :class:`DerivedRule`, its formula (never None); for other kinds the
            inline ``expr:`` the rule was written over (then ``point`` is ``"expr:<id>"``),
            else None.
        location: where the rule's entry starts in its file.
        clear_message: template of the text a cleared event carries (same placeholders);
            ``""`` = the kind's default, which says the value is back.
        decimals: decimals its computed limits are shown with in messages (an SPC rule's
            zone lines: those of its centre and sigma as written); None = 6 significant
            digits. Presentation only: not part of the hash.
    """

    kind: ClassVar[str] = ""

    id: str
    point: str
    severity: Severity = Severity.MEDIUM
    tags: tuple[str, ...] = ()
    message: str = "{rule}: {point} = {value} {unit} (limit {limit})"
    unit: str = ""
    expression: Expression | None = None
    location: Location = field(default_factory=Location, compare=False)
    clear_message: str = ""
    decimals: int | None = field(default=None, compare=False)

    def render(self, **values: object) -> str:
        """Fill the message template.

        ``rule``, ``point``, ``unit`` and ``severity`` default to the rule's own; other
        placeholders not given render as ``""``.
        """
        filled: dict[str, object] = {name: "" for name in PLACEHOLDERS}
        filled.update(rule=self.id, point=self.point, unit=self.unit, severity=self.severity.value)
        filled.update(values)
        return self.message.format_map(filled)


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitRule(RuleBase):
    """Spec limits with deadband and delays (kind ``limit``).

    Attributes:
        low: alarm while ``value < low``; None = no lower limit.
        high: alarm while ``value > high``; None = no upper limit (at least one is set,
            and ``low < high``).
        deadband: hysteresis, >= 0 and < ``high - low``: an active alarm clears only once
            ``value <= high - deadband`` (``value >= low + deadband``).
        on_delay: the violation must hold at least this long before the alarm fires.
        off_delay: the return to normal must hold at least this long before it clears.
    """

    kind: ClassVar[str] = "limit"

    low: float | None = None
    high: float | None = None
    deadband: float = 0.0
    on_delay: float = 0.0
    off_delay: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RateRule(RuleBase):
    """Rate of change (kind ``rate``).

    The rate is ``(v_last - v_first) / (t_last - t_first) * per`` over the good readings of
    the last :attr:`window` seconds (at least two readings, ``t_last > t_first``); the alarm is
    active while the rate is strictly beyond :attr:`max_change` in the watched direction.

    Attributes:
        max_change: largest allowed change per :attr:`per` seconds, > 0, in the point's unit.
        per: the duration :attr:`max_change` refers to (``2 degC per 1m`` -> 60.0), > 0.
        window: how far back readings are used to measure the rate, > 0 (default: ``per``).
        direction: ``"rise"``, ``"fall"`` or ``"both"`` (absolute change).
    """

    kind: ClassVar[str] = "rate"

    max_change: float = math.inf
    per: float = 1.0
    window: float = 1.0
    direction: str = "both"


@dataclass(frozen=True, slots=True, kw_only=True)
class StaleRule(RuleBase):
    """No data (kind ``stale``): active once ``now - ts_of_last_reading`` reaches ``max_age``.

    The transition is stamped ``ts_of_last_reading + max_age`` (the moment the age reached it).

    A point that never reported counts from the engine's first ``now``.

    Attributes:
        max_age: seconds without any reading of the point (any quality), > 0.
    """

    kind: ClassVar[str] = "stale"

    max_age: float = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class QualityRule(RuleBase):
    """Bad quality (kind ``quality``): the point's readings are not ``good``.

    Attributes:
        duration: how long quality must stay not-good before the alarm fires (>= 0); it
            clears on the first good reading.
    """

    kind: ClassVar[str] = "quality"

    duration: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class DerivedRule(RuleBase):
    """A derived point (kind ``derived``): ``point`` = ``expression`` over other points.

    It raises no alarm itself; other rules watch ``point``. A new derived reading is made
    whenever one of the inputs gets a reading and every input has a value; its ``ts`` is that
    reading's, its quality the worst of the inputs' (a NaN result has quality
    ``config_error`` and value None). Derived rules come before the rules that use them in
    :attr:`RuleSet.rules` (dependency order), and never form a cycle. The formula is the
    inherited ``expression`` field (set; its ``inputs`` may include other derived points).
    """

    kind: ClassVar[str] = "derived"


@dataclass(frozen=True, slots=True, kw_only=True)
class SpcRule(RuleBase):
    """Individuals / moving-range SPC with Nelson rules (kind ``spc``).

    Limits are either given (:attr:`center` and :attr:`sigma` set, :attr:`baseline` 0) or
    learned (:attr:`baseline` > 0, :attr:`center`/:attr:`sigma` None) from the first
    ``baseline`` good readings: ``center = mean``, ``sigma = mean moving range / d2``
    (d2 = 1.128); signals are evaluated only after that. UCL/LCL = center +- 3 sigma.
    Run-rule conventions: strict comparisons, rule 3 = six points (five rises or falls, a tie
    breaks the run), rule 4 = fourteen points, rule 5 also counts points beyond 3 sigma.

    Attributes:
        center: centre line, or None when learned.
        sigma: process sigma (> 0), or None when learned.
        baseline: number of readings to learn limits from (>= 2), or 0 when limits are given.
        nelson: selected Nelson rules, sorted unique subset of :data:`NELSON_RULES`.
        on_delay: a selected rule must keep signalling this long (at every reading) before
            the alarm fires.
        off_delay: no selected rule may signal for this long before the alarm clears.
    """

    kind: ClassVar[str] = "spc"

    center: float | None = None
    sigma: float | None = None
    baseline: int = 0
    nelson: tuple[int, ...] = (1,)
    on_delay: float = 0.0
    off_delay: float = 0.0


@dataclass(frozen=True, slots=True)
class LotCheck:
    """One comparison evaluated on a lot's aggregate (``cpk >= 1.33``).

    Attributes:
        stat: one of :data:`STATS`. ``std`` is the sample standard deviation (n - 1);
            ``cp = (high - low) / 6 std``; ``cpk = min(high - mean, mean - low) / 3 std``
            using the limits that are set.
        op: ``">=" ">" "<=" "<" "==" "!="``.
        value: the number compared against, in the point's unit (``count``: a count).
        text: the check as written, normalised (``"cpk >= 1.33"``), for messages.
        location: where the check is written.
    """

    stat: str
    op: str
    value: float
    text: str = ""
    location: Location = field(default_factory=Location, compare=False)

    def holds(self, actual: float) -> bool:
        """True when ``actual <op> value`` (False for NaN, e.g. std of one reading)."""
        if math.isnan(actual):
            return False
        match self.op:
            case ">=":
                return actual >= self.value
            case ">":
                return actual > self.value
            case "<=":
                return actual <= self.value
            case "<":
                return actual < self.value
            case "==":
                return actual == self.value
            case _:
                return actual != self.value


@dataclass(frozen=True, slots=True, kw_only=True)
class LotRule(RuleBase):
    """Per-lot aggregate checks at lot end (kind ``lot``).

    A lot is the run of time during which the rule set's lot point (:attr:`RuleSet.lot`) keeps
    one non-empty string value; it ends when that value changes. The good readings of
    ``point`` in the lot are aggregated; the lot fails when any check does not hold.

    Attributes:
        low: lower spec limit for ``cp``/``cpk``, or None.
        high: upper spec limit for ``cp``/``cpk``, or None (``cp`` needs both).
        checks: the comparisons, in file order (at least one).
    """

    kind: ClassVar[str] = "lot"

    low: float | None = None
    high: float | None = None
    checks: tuple[LotCheck, ...] = ()


Rule = LimitRule | RateRule | StaleRule | QualityRule | DerivedRule | SpcRule | LotRule


def _canon_value(value: object) -> Any:
    """Turn a model value into JSON-safe canonical data (floats as ``repr`` strings)."""
    if isinstance(value, Expression):
        return value.source
    if isinstance(value, LotCheck):
        return [value.stat, value.op, repr(float(value.value))]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        return [_canon_value(v) for v in value]
    raise TypeError(f"cannot canonicalise {type(value).__name__}")


#: fields that only say where a rule is or how its numbers are shown: not hashed
_UNHASHED = frozenset({"location", "decimals"})
#: fields added after sets were hashed: hashed only when set, so older sets keep their hash
_HASHED_WHEN_SET: dict[str, object] = {"clear_message": "", "on_delay": 0.0, "off_delay": 0.0}


def canonical_rule(rule: Rule) -> dict[str, Any]:
    """A rule as canonical data: every field except locations and display hints, plus its kind."""
    data: dict[str, Any] = {"kind": rule.kind}
    for f in fields(rule):
        if f.name in _UNHASHED:
            continue
        value = getattr(rule, f.name)
        # limit rules always had delays (hashed as ever); spc delays and clear messages are new
        new_field = f.name == "clear_message" or (rule.kind == "spc" and f.name in _HASHED_WHEN_SET)
        if new_field and value == _HASHED_WHEN_SET[f.name]:
            continue
        data[f.name] = _canon_value(value)
    return data


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A validated set of rules from one or more files.

    Attributes:
        rules: every rule, derived rules first in dependency order, then the others in file
            order (files in the order given).
        lot: name of the point whose string value is the current lot code, or None (then
            lot rules never run).
        hash: hex SHA-256 of the canonical content (:meth:`canonical_bytes`): independent of
            file names, comments, key order, spelling of numbers/durations and rule order; the
            ledger records it when a set takes over.
        sources: the files the set was loaded from, in the order given.
    """

    rules: tuple[Rule, ...]
    lot: str | None = None
    hash: str = ""
    sources: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        rules: Iterable[Rule],
        lot: str | None = None,
        sources: Iterable[str] = (),
        hashed: Iterable[Rule] | None = None,
    ) -> RuleSet:
        """Make a set from rules already in dependency order, computing the hash.

        Args:
            rules: every rule, in dependency order.
            lot: the lot point, or None.
            sources: the files the rules came from.
            hashed: the rules the hash is taken of, when they differ from ``rules`` (the
                loader passes them without units that came from the node config alone).
        """
        rules = tuple(rules)
        digest = hashlib.sha256(
            cls.canonical_bytes(rules if hashed is None else tuple(hashed), lot)
        ).hexdigest()
        return cls(rules=rules, lot=lot, hash=digest, sources=tuple(sources))

    @staticmethod
    def canonical_bytes(rules: Iterable[Rule], lot: str | None) -> bytes:
        """The bytes :attr:`hash` is taken of: sorted-key compact JSON, rules sorted by id."""
        content = {
            "lot": lot,
            "rules": sorted((canonical_rule(r) for r in rules), key=lambda d: str(d["id"])),
            "version": 1,
        }
        return json.dumps(
            content, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()

    def by_id(self) -> dict[str, Rule]:
        """Rules keyed by id."""
        return {r.id: r for r in self.rules}

    @property
    def derived(self) -> tuple[DerivedRule, ...]:
        """The derived rules, in dependency order."""
        return tuple(r for r in self.rules if isinstance(r, DerivedRule))

    def input_points(self) -> frozenset[str]:
        """Points the set reads that no derived rule defines (what the drivers must supply)."""
        defined = {r.point for r in self.rules if isinstance(r, DerivedRule)}
        used: set[str] = set()
        for r in self.rules:
            if isinstance(r, DerivedRule):
                if r.expression is not None:
                    used.update(r.expression.inputs)
            else:
                used.add(r.point)
        if self.lot:
            used.add(self.lot)
        return frozenset(used - defined)
