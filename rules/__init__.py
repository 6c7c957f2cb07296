"""Quality rules: the rule language (model, loader, expressions) and its evaluation.

Public API::

    from edge.rules import load_rules, RuleSet, LimitRule
    rs = load_rules(["rules/filler.yaml"], known_points={"fill_weight": "g"})
"""

from edge.rules.expressions import ExpressionError, compile_expression
from edge.rules.loader import load_rules
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

__all__ = [
    "DerivedRule",
    "Expression",
    "ExpressionError",
    "LimitRule",
    "Location",
    "LotCheck",
    "LotRule",
    "QualityRule",
    "RateRule",
    "Rule",
    "RuleSet",
    "Severity",
    "SpcRule",
    "StaleRule",
    "compile_expression",
    "load_rules",
]
