"""Benchmarks of the rule language: compiled expressions (scalar and vector) and the loader.

Each prints its figure, the limit it is measured against, and the ratio (figure / limit), using
CPU time of this process (one core).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edge.rules.expressions import compile_expression
from edge.rules.loader import load_rules

#: a derived point costs at most 2 us per evaluation (docs/design.md: a few us of work per reading)
SCALAR_LIMIT = 500_000.0
#: the vector form must keep up with the 5,000,000 rows/s replay target
VECTOR_LIMIT = 5_000_000.0
#: rule files load at 200 rules/s at least (a 100-rule file in half a second)
LOADER_LIMIT = 200.0

EXPR = "(fill_weight - tare) / max(nominal, 1) * 100"


def report(name: str, figure: float, limit: float, unit: str) -> None:
    print(f"\n{name}: {figure:,.0f} {unit} (limit {limit:,.0f}; ratio {figure / limit:.2f})")


def test_scalar_expression_evaluations_per_second() -> None:
    fn = compile_expression(EXPR).fn
    n = 300_000
    start = time.process_time()
    for i in range(n):
        fn(500.0, 20.0, float(i & 7) + 1.0)
    figure = n / (time.process_time() - start)
    report("expression scalar", figure, SCALAR_LIMIT, "evaluations/s")


def test_vector_expression_rows_per_second() -> None:
    vf = compile_expression(EXPR).vector_fn
    rows = 2_000_000
    rng = np.random.default_rng(1)
    cols = [rng.normal(500, 1, rows), np.full(rows, 20.0), rng.normal(480, 1, rows)]
    start = time.process_time()
    for _ in range(5):
        vf(*cols)
    figure = 5 * rows / (time.process_time() - start)
    report("expression vector", figure, VECTOR_LIMIT, "rows/s")


def test_loader_rules_per_second(tmp_path: Path) -> None:
    lines = ["units: {p: degC}", "rules:"]
    n = 500
    for i in range(n):
        lines += [
            f"  - id: r{i}", "    kind: limit", "    point: p", "    high: 8.0 degC",
            "    deadband: 0.5 degC", "    on_delay: 2s", "    message: '{point} {value}'",
        ]  # fmt: skip
    path = tmp_path / "big.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    start = time.process_time()
    rs = load_rules([path], {"p": "degC"})
    figure = len(rs.rules) / (time.process_time() - start)
    assert len(rs.rules) == n
    report("rule loader", figure, LOADER_LIMIT, "rules/s")
