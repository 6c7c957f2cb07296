"""Quality rules: the rule language (model, loader, expressions) and its evaluation.

Public API::

    from edge.rules import load_rules, RuleSet, LimitRule
    rs = load_rules(["rules/filler.yaml"], known_points={"fill_weight": "g"})
"""

from edge.rules.alarms import AlarmState, AlarmStats, Transition
from edge.rules.engine import Engine, Event
from edge.rules.explain import explain
from edge.rules.expressions import ExpressionError, compile_expression
from edge.rules.loader import Problem, check_rules, load_rules
from edge.rules.lots import Aggregate, LotCheckResult, LotEvent
from edge.rules.model import (
    DerivedRule,
    Expression,
    LimitRule,
    Location,
    LotCheck,
    LotRule,
    QualityRule,
    RateRule,
    Rule,
    RuleSet,
    Severity,
    SpcRule,
    StaleRule,
)
from edge.rules.replay import replay, replay_arrays
from edge.rules.spc import Capability, ImrLimits, capability, imr_limits, xbar_r_limits
from edge.rules.state import EngineState

__all__ = [
    "Aggregate",
    "AlarmState",
    "AlarmStats",
    "Capability",
    "DerivedRule",
    "Engine",
    "EngineState",
    "Event",
    "Expression",
    "ExpressionError",
    "ImrLimits",
    "LimitRule",
    "Location",
    "LotCheck",
    "LotCheckResult",
    "LotEvent",
    "LotRule",
    "Problem",
    "QualityRule",
    "RateRule",
    "Rule",
    "RuleSet",
    "Severity",
    "SpcRule",
    "StaleRule",
    "Transition",
    "capability",
    "check_rules",
    "compile_expression",
    "explain",
    "imr_limits",
    "load_rules",
    "replay",
    "replay_arrays",
    "xbar_r_limits",
]
