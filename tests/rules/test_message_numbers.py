"""Numbers in alarm messages: as measured, up to 6 significant digits (docs/reference/rules.md).

A float32 register reading arrives with 7 significant digits (``8.599809`` on the demo line); it
used to be printed whole, as did ``123456.78``, because the cut was made by text length.
"""

from __future__ import annotations

import pytest

from edge.rules.evaluator import number_text


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (8.0, "8.0"),
        (8.599809, "8.59981"),
        (-8.599809, "-8.59981"),
        (2.016133818589026, "2.01613"),
        (123456.78, "123457.0"),
        (0.000123456789, "0.000123457"),
        (1234567.0, "1234567.0"),
        (0.5, "0.5"),
        (1e-7, "1e-07"),
        (float("inf"), "inf"),
    ],
)
def test_at_most_six_significant_digits(x: float, text: str) -> None:
    assert number_text(x) == text


def test_decimals_win_when_given() -> None:
    assert number_text(4.5, 2) == "4.50"
