"""Numbers shown to people: rounded to what the instrument resolves, or to a few significant digits.

A reading of an integer register scaled by 0.1 is known to 0.1; printing its mean as
``33.7737570706`` claims eight digits nobody measured. Everything a person reads (``trace``
tables, ``query`` summaries, charts, the lot report, the web view) goes through
:func:`fmt_number`; exports (CSV, EPCIS, JSON, proof bundles) keep the recorded decimals in
full, since a program reading them must get what the ledger holds.

Rounding follows the point's *resolution*: the smallest step its readings can take. For a point
read from an integer register that is ``|scale|`` (:func:`point_resolutions`); float and text
points have none, and their numbers get :data:`DIGITS` significant digits. Statistics of a
point (mean, sigma, limits) are shown with one decimal more than its readings
(``stat=True``): the mean of readings to 0.1 is known better than to 0.1.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.config import NodeConfig
    from edge.ledger.query import NumberFormat

__all__ = [
    "DIGITS",
    "decimals_for",
    "fmt_against",
    "fmt_number",
    "point_resolutions",
    "summary_numbers",
]

#: Significant digits of a number with no known resolution.
DIGITS = 4

_INTEGER_TYPES = frozenset({"int16", "uint16", "int32", "uint32", "int64", "uint64"})


@functools.lru_cache(maxsize=256)
def decimals_for(resolution: float) -> int:
    """Decimal places that show a multiple of ``resolution`` exactly (0.1 -> 1, 0.05 -> 2, 5 -> 0)."""
    if not resolution > 0 or math.isinf(resolution):
        raise ValueError(f"resolution must be a positive number, got {resolution!r}")
    # the shortest decimal naming the float (0.1, not 0.1000000000000000055...)
    exponent = Decimal(repr(resolution)).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def _as_float(x: object) -> float | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, int | float):
        return float(x)
    if isinstance(x, str | Decimal):
        try:
            return float(x)
        except ValueError:
            return None
    return None


def fmt_number(
    x: object,
    resolution: float | None = None,
    digits: int = DIGITS,
    *,
    stat: bool = False,
) -> str:
    """``x`` as a person should read it.

    Args:
        x: a number, or a recorded decimal string (``"33.7737570706"``); None is ``""``, text
            that is not a number and booleans are returned as they are.
        resolution: the point's smallest step: the value is rounded to a multiple of it and
            shown with as many decimals as the step has.
        digits: significant digits when there is no resolution (whole-number digits are never
            cut: 123456.78 -> ``123457``).
        stat: a statistic of the point (mean, sigma, limit): one decimal more than a reading.

    Returns:
        ``"33.77"``, ``"2.50"`` (resolution 0.01), ``"-0.0001235"``, ``"inf"``.
    """
    if x is None:
        return ""
    value = _as_float(x)
    if value is None:
        return str(x).lower() if isinstance(x, bool) else str(x)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if resolution is not None and resolution > 0 and not math.isinf(resolution):
        places = decimals_for(resolution) + (1 if stat else 0)
        step = resolution / 10 if stat else resolution
        steps = value / step
        whole = round(steps)
        if abs(abs(steps - whole) - 0.5) > 1e-6 and abs(steps) < 1e15:
            text = f"{whole * step:.{places}f}"  # clear of a half step: floats round right
        else:  # a tie, decided on the decimals as written (0.15 -> 0.2), not the binary float
            exact = Decimal(repr(resolution)) / (10 if stat else 1)
            try:
                rounded = (Decimal(repr(value)) / exact).quantize(Decimal(1), ROUND_HALF_EVEN)
                text = f"{rounded * exact:.{places}f}"
            except InvalidOperation:  # astronomically many steps: plain fixed decimals
                text = f"{value:.{places}f}"
        return _no_negative_zero(text)
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    places = max(0, digits - 1 - magnitude)
    text = f"{value:.{places}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return _no_negative_zero(text)


def fmt_against(
    x: object, limit: object, resolution: float | None = None, *, stat: bool = False
) -> str:
    """``x`` rounded as :func:`fmt_number` does, but never so far that it reads as ``limit``.

    A lot mean of 499.46 against a limit of 499.5 fails; shown to four digits it would read
    ``499.5`` beside ``FAIL``. Digits are added until the two differ on the page (up to the
    17 that name any float), so a verdict is never contradicted by its own numbers. Print the
    limit with ``fmt_against(limit, x)``: both then get the same digits.
    """
    text = fmt_number(x, resolution, stat=stat)
    value, bound = _as_float(x), _as_float(limit)
    if value is None or bound is None or value == bound:
        return text
    if resolution is None:
        digits = DIGITS
        while text == fmt_number(bound, None, digits) and digits < 17:
            digits += 1
            text = fmt_number(value, None, digits)
        return text
    if text == fmt_number(bound, resolution, stat=stat):
        return fmt_against(value, bound)
    return text


def _no_negative_zero(text: str) -> str:
    if text.startswith("-") and not text.strip("-0."):
        return text[1:]
    return text


def point_resolutions(config: NodeConfig) -> dict[str, float]:
    """Per point of ``config``, the step its readings take.

    A point's ``resolution`` key wins (a float32 sensor that resolves 0.01); else an integer
    register scaled by ``scale`` moves in steps of ``|scale|`` (the offset shifts every value
    alike and does not change the step). Other points are absent: significant digits.
    """
    out: dict[str, float] = {}
    for name, point in config.points.items():
        if point.resolution is not None:
            out[name] = point.resolution
        elif point.type in _INTEGER_TYPES and point.scale != 0:
            out[name] = abs(point.scale)
    return out


def summary_numbers(resolutions: Mapping[str, float] | None = None) -> NumberFormat:
    """A ``number`` for :func:`edge.ledger.query.summarize`: alarm values and limits for people.

    To the point's resolution when known, else :data:`DIGITS` significant digits; a value never
    rounds onto the limit it is compared with. Tables and reports only: JSON and CSV keep the
    recorded decimals.
    """
    steps = resolutions or {}

    def number(value: Any, point: str, other: Any) -> str:
        res = steps.get(point) if point else None
        return fmt_number(value, res) if other is None else fmt_against(value, other, res)

    return number
