"""One evaluator per rule kind: the streaming semantics of every rule, shared with replay.

The kinds live in :mod:`edge.rules.evaluator` (the shared state machine),
:mod:`edge.rules.point_evals`, :mod:`edge.rules.stat_evals` and :mod:`edge.rules.derived_eval`;
this module picks one for a rule.

The state machine, the replay's use of it and the time conventions are described in
:mod:`edge.rules.evaluator`.
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
