"""Statistical process control: individuals/moving-range limits, X-bar/R limits, capability.

Everything here is plain arithmetic on Python floats with a fixed summation order
(:func:`math.fsum`), so the streaming engine and the replay path that both call it learn
bit-identical limits from the same baseline.

Formulas (Montgomery, *Introduction to Statistical Quality Control*; NIST/SEMATECH
e-Handbook §6.3.2)::

    I-MR:    centre = mean(x);  MRbar = mean(|x[i] - x[i-1]|);  sigma = MRbar / d2(2)
             UCL/LCL = centre +- 3 sigma;  MR UCL = D4(2) * MRbar;  MR LCL = D3(2) * MRbar = 0
    X-bar/R: UCL/LCL = grand mean +- A2(n) * Rbar;  R UCL = D4(n) * Rbar;  R LCL = D3(n) * Rbar
    Cp  = (USL - LSL) / (6 sigma);  Cpk = min(USL - mean, mean - LSL) / (3 sigma)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "A2",
    "D2",
    "D3",
    "D4",
    "Capability",
    "ImrLimits",
    "XbarRLimits",
    "capability",
    "imr_given",
    "imr_limits",
    "xbar_r_limits",
]

# Control-chart constants for subgroup sizes 2..10 (ASTM STP 15D / Montgomery Appendix VI).
D2: dict[int, float] = {
    2: 1.128, 3: 1.693, 4: 2.059, 5: 2.326, 6: 2.534, 7: 2.704, 8: 2.847, 9: 2.970, 10: 3.078,
}  # fmt: skip
A2: dict[int, float] = {
    2: 1.880, 3: 1.023, 4: 0.729, 5: 0.577, 6: 0.483, 7: 0.419, 8: 0.373, 9: 0.337, 10: 0.308,
}  # fmt: skip
D3: dict[int, float] = {
    2: 0.0, 3: 0.0, 4: 0.0, 5: 0.0, 6: 0.0, 7: 0.076, 8: 0.136, 9: 0.184, 10: 0.223,
}  # fmt: skip
D4: dict[int, float] = {
    2: 3.267, 3: 2.574, 4: 2.282, 5: 2.114, 6: 2.004, 7: 1.924, 8: 1.864, 9: 1.816, 10: 1.777,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ImrLimits:
    """Individuals / moving-range chart limits.

    Attributes:
        center: centre line of the individuals chart.
        sigma: process sigma estimate (``MRbar / d2`` when learned).
        ucl: ``center + 3 sigma``.
        lcl: ``center - 3 sigma``.
        mr_bar: mean moving range (``d2 * sigma`` when the limits were given).
        mr_ucl: upper limit of the moving-range chart, ``D4(2) * MRbar``.
    """

    center: float
    sigma: float
    ucl: float
    lcl: float
    mr_bar: float
    mr_ucl: float

    def zone(self, k: int) -> tuple[float, float]:
        """The lines ``center - k sigma`` and ``center + k sigma`` (k = 1, 2, 3)."""
        return self.center - k * self.sigma, self.center + k * self.sigma


def imr_given(center: float, sigma: float) -> ImrLimits:
    """Limits from a configured centre line and sigma."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    mr_bar = D2[2] * sigma
    return ImrLimits(
        center=center,
        sigma=sigma,
        ucl=center + 3 * sigma,
        lcl=center - 3 * sigma,
        mr_bar=mr_bar,
        mr_ucl=D4[2] * mr_bar,
    )


def imr_limits(values: Sequence[float]) -> ImrLimits:
    """Learn I-MR limits from a baseline of individual values.

    Raises:
        ValueError: fewer than two values, or a constant baseline (sigma would be 0 and every
            later point a signal).
    """
    xs = [float(v) for v in values]
    if len(xs) < 2:
        raise ValueError(f"need at least 2 values to learn limits, got {len(xs)}")
    center = math.fsum(xs) / len(xs)
    mr_bar = math.fsum(abs(b - a) for a, b in itertools.pairwise(xs)) / (len(xs) - 1)
    sigma = mr_bar / D2[2]
    if not sigma > 0:
        raise ValueError("baseline is constant: moving range is 0")
    return ImrLimits(
        center=center,
        sigma=sigma,
        ucl=center + 3 * sigma,
        lcl=center - 3 * sigma,
        mr_bar=mr_bar,
        mr_ucl=D4[2] * mr_bar,
    )


@dataclass(frozen=True, slots=True)
class XbarRLimits:
    """X-bar / R chart limits for subgroups of equal size ``n``."""

    n: int
    grand_mean: float
    r_bar: float
    xbar_ucl: float
    xbar_lcl: float
    r_ucl: float
    r_lcl: float


def xbar_r_limits(subgroups: Sequence[Sequence[float]]) -> XbarRLimits:
    """X-bar/R limits from rational subgroups (all of one size, 2..10).

    Raises:
        ValueError: no subgroups, unequal sizes, or a size outside 2..10.
    """
    if not subgroups:
        raise ValueError("no subgroups")
    n = len(subgroups[0])
    if any(len(g) != n for g in subgroups) or n not in A2:
        raise ValueError("subgroups must all have the same size, between 2 and 10")
    means = [math.fsum(g) / n for g in subgroups]
    ranges = [max(g) - min(g) for g in subgroups]
    grand = math.fsum(means) / len(means)
    r_bar = math.fsum(ranges) / len(ranges)
    return XbarRLimits(
        n=n,
        grand_mean=grand,
        r_bar=r_bar,
        xbar_ucl=grand + A2[n] * r_bar,
        xbar_lcl=grand - A2[n] * r_bar,
        r_ucl=D4[n] * r_bar,
        r_lcl=D3[n] * r_bar,
    )


@dataclass(frozen=True, slots=True)
class Capability:
    """Process capability indices; None where a limit needed is not set or sigma is 0/unknown.

    Attributes:
        cp: ``(USL - LSL) / 6 sigma`` (needs both limits).
        cpk: ``min(cpu, cpl)`` of the limits that are set.
        cpu: ``(USL - mean) / 3 sigma``.
        cpl: ``(mean - LSL) / 3 sigma``.
    """

    cp: float | None
    cpk: float | None
    cpu: float | None
    cpl: float | None


def _ratio(num: float, den: float) -> float | None:
    # sigma 0 (every reading equal): infinitely capable if inside, infinitely bad if outside;
    # exactly on the limit with no spread is undefined.
    if den > 0:
        return num / den
    if den == 0 and num != 0:
        return math.copysign(math.inf, num)
    return None


def capability(
    mean: float, sigma: float | None, low: float | None, high: float | None
) -> Capability:
    """Cp/Cpk of a process with the given mean and sigma against spec limits ``low``/``high``."""
    if sigma is None or math.isnan(sigma) or math.isnan(mean):
        return Capability(None, None, None, None)
    cpu = _ratio(high - mean, 3 * sigma) if high is not None else None
    cpl = _ratio(mean - low, 3 * sigma) if low is not None else None
    cp = _ratio(high - low, 6 * sigma) if high is not None and low is not None else None
    sides = [c for c in (cpu, cpl) if c is not None]
    both_known = (cpu is not None or high is None) and (cpl is not None or low is None)
    cpk = min(sides) if sides and both_known else None
    return Capability(cp=cp, cpk=cpk, cpu=cpu, cpl=cpl)
