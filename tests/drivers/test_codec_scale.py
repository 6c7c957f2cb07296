"""Scaling integer registers by decimal factors gives the decimal the device meant."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.drivers.codec import scale_value


@pytest.mark.parametrize(
    ("raw", "scale", "offset", "expected"),
    [
        (228, 0.01, 0.0, "2.28"),
        (851, 0.1, 0.0, "85.1"),
        (-5, 0.1, -40.0, "-40.5"),
        (3, 1e-7, 0.0, "3E-7"),
    ],
)
def test_integer_times_decimal_scale_is_exact(
    raw: int, scale: float, offset: float, expected: str
) -> None:
    assert Decimal(repr(scale_value(raw, scale, offset))) == Decimal(expected)


@given(st.integers(-32768, 65535), st.sampled_from([0.1, 0.01, 0.001, 0.5, 2.0, 0.25]))
def test_matches_decimal_arithmetic(raw: int, scale: float) -> None:
    # Decimal arithmetic on the decimal strings is the independent oracle
    exact = Decimal(raw) * Decimal(repr(scale))
    assert scale_value(raw, scale, 0.0) == float(exact)


def test_floats_are_not_rounded() -> None:
    assert scale_value(1.23456789, 0.1, 0.0) == pytest.approx(0.123456789, rel=1e-12)
