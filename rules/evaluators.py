"""One evaluator per rule kind: the streaming semantics of every rule, shared with replay.

The kinds live in :mod:`edge.rules.evaluator` (the shared state machine),
:mod:`edge.rules.point_evals`, :mod:`edge.rules.stat_evals` and :mod:`edge.rules.derived_eval`;
this module picks one for a rule.

An evaluator holds a rule's static, precomputed configuration; its mutable part is the rule's
:class:`~edge.rules.alarms.AlarmRuntime` in the engine state. The replay path
(:mod:`edge.rules.replay`) computes conditions with numpy and then drives these same methods
only at the readings where a condition changes, so both paths share the state machine below.

Time conventions (docs/reference/rules.md, "Evaluation"):

* a delay timer started at ``since`` is due at ``due = since + delay`` and is met when the
  engine's clock reaches it (``clock >= due``, so exactly at the delay fires); a delayed
  transition is stamped ``due``, and fires *before* a reading stamped exactly ``due``;
* a stale rule is due at ``last + max_age`` and fires only once the clock is *past* it
  (``clock > due``: a reading exactly ``max_age`` after the previous one is in time);
* transitions are ordered by ``(ts, phase, seq, rule index, n)``: delay timers and shelve
  expiries (phase 0) before readings (phase 1) at equal times, stale activations (phase 2)
  after them; readings in arrival order, rules in rule-set order.
"""

from __future__ import annotations

from edge.rules.derived_eval import DerivedEval, as_float
from edge.rules.evaluator import QUALITIES, QUALITY_CODE, Evaluator, Key, Out
from edge.rules.model import (
    DerivedRule,
    LimitRule,
    LotRule,
    QualityRule,
    RateRule,
    Rule,
    SpcRule,
    StaleRule,
)
from edge.rules.point_evals import LimitEval, QualityEval, RateEval, StaleEval
from edge.rules.stat_evals import LotEval, SpcEval

__all__ = [
    "QUALITIES",
    "QUALITY_CODE",
    "DerivedEval",
    "Evaluator",
    "Key",
    "LimitEval",
    "LotEval",
    "Out",
    "QualityEval",
    "RateEval",
    "SpcEval",
    "StaleEval",
    "as_float",
    "make_evaluator",
]


def make_evaluator(rule: Rule, idx: int) -> Evaluator:
    """The evaluator for a rule of any kind."""
    if isinstance(rule, LimitRule):
        return LimitEval(rule, idx)
    if isinstance(rule, RateRule):
        return RateEval(rule, idx)
    if isinstance(rule, StaleRule):
        return StaleEval(rule, idx)
    if isinstance(rule, QualityRule):
        return QualityEval(rule, idx)
    if isinstance(rule, SpcRule):
        return SpcEval(rule, idx)
    if isinstance(rule, LotRule):
        return LotEval(rule, idx)
    if isinstance(rule, DerivedRule):
        return DerivedEval(rule, idx)
    raise TypeError(f"unknown rule kind {type(rule).__name__}")
