"""Durations written as strings with a unit (``"500ms"``, ``"5s"``, ``"2m"``, ``"1h30m"``).

A bare number is refused on purpose: ``poll = 5`` could mean seconds or milliseconds, and
integrators copy values from spec sheets that use both.
"""

from __future__ import annotations

import re
from decimal import Decimal

__all__ = ["format_duration", "parse_duration"]

# Decimal, so that "8236603ms" is 8236.603 s exactly rounded once (times 0.001 in floats gives
# 8236.603000000001: the same text would mean two durations, depending on how it is written).
_UNITS = {u: Decimal(v) for u, v in
          {"ms": "0.001", "s": "1", "m": "60", "min": "60", "h": "3600", "d": "86400"}.items()}  # fmt: skip
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d)")
_WHOLE = re.compile(r"\s*(?:\d+(?:\.\d+)?\s*(?:ms|min|s|m|h|d)\s*)+")


def parse_duration(text: str) -> float:
    """Return the duration in seconds.

    Args:
        text: one or more ``<number><unit>`` parts, units ms, s, m (or min), h, d.

    Raises:
        ValueError: with a message fit to follow a key path (``bad duration '5 parsecs' ...``).
    """
    if isinstance(text, str) and not _WHOLE.fullmatch(text):
        stripped = text.strip()
        if stripped.startswith("-") and _WHOLE.fullmatch(stripped[1:]):
            raise ValueError(
                f"negative duration {text!r} (a duration is 0 or more, e.g. '2s'; "
                "a delay cannot run backwards)"
            )
        if "," in text and _WHOLE.fullmatch(text.replace(",", ".")):
            raise ValueError(
                f"{text!r} has a decimal comma: write {text.replace(',', '.')!r} "
                "(a point separates decimals)"
            )
    if not isinstance(text, str) or not _WHOLE.fullmatch(text):
        raise ValueError(
            f"bad duration {text!r} (expected a number with a unit: ms, s, m, h, d, e.g. '500ms')"
        )
    return float(sum(Decimal(n) * _UNITS[u] for n, u in _PART.findall(text)))


def format_duration(seconds: float) -> str:
    """Format seconds the way :func:`parse_duration` reads them, in the largest whole unit.

    ``1.5`` -> ``"1500ms"``, ``90`` -> ``"90s"``, ``60`` -> ``"1m"``, ``7200`` -> ``"2h"``.
    """
    if seconds >= 1 and float(seconds).is_integer():
        whole = int(seconds)
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if whole % size == 0:
                return f"{whole // size}{unit}"
        return f"{whole}s"
    # fixed-point, never exponent form ("1e+06ms" would not parse back)
    return f"{round(seconds * 1000, 3):.3f}".rstrip("0").rstrip(".") + "ms"
