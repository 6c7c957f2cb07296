"""Hypothesis strategies shared by the replay and state tests: rule sets and recordings."""

from __future__ import annotations

from hypothesis import strategies as st

from edge.readings import Quality, Reading
from edge.rules.expressions import compile_expression
from edge.rules.model import (
    DerivedRule,
    LimitRule,
    LotCheck,
    LotRule,
    QualityRule,
    RateRule,
    RuleSet,
    SpcRule,
    StaleRule,
)

POINTS = ("a", "b", "c")
# a coarse grid makes exact-boundary values (at a limit, at a delay) common
values = st.sampled_from([0.0, 1.0, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.5, 8.0, 9.0, 10.0])
durations = st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0])
points = st.sampled_from((*POINTS, "d"))


@st.composite
def rulesets(draw: st.DrawFn) -> RuleSet:
    rules: list = [
        DerivedRule(
            id="d",
            point="d",
            expression=compile_expression(
                draw(st.sampled_from(["a - b", "a * 2 + c", "max(a, b) / c"])), None
            ),
        )
    ]
    if draw(st.booleans()):
        rules.append(DerivedRule(id="e", point="e", expression=compile_expression("d + a", None)))
    n = draw(st.integers(1, 8))
    for i in range(n):
        kind = draw(
            st.sampled_from(
                ["limit", "limit", "rate", "stale", "quality", "spc", "spc_learn", "lot"]
            )
        )
        p = draw(points)
        rid = f"r{i}"
        if kind == "limit":
            lo = draw(st.one_of(st.none(), st.sampled_from([1.0, 2.0])))
            hi = (
                draw(st.one_of(st.none(), st.sampled_from([7.5, 8.0])))
                if lo is not None
                else draw(st.sampled_from([7.5, 8.0]))
            )
            rules.append(
                LimitRule(
                    id=rid,
                    point=p,
                    low=lo,
                    high=hi,
                    deadband=draw(st.sampled_from([0.0, 0.5, 1.0])),
                    on_delay=draw(durations),
                    off_delay=draw(durations),
                )
            )
        elif kind == "rate":
            rules.append(
                RateRule(
                    id=rid,
                    point=p,
                    max_change=draw(st.sampled_from([1.0, 3.0])),
                    per=1.0,
                    window=draw(st.sampled_from([1.0, 2.5])),
                    direction=draw(st.sampled_from(["rise", "fall", "both"])),
                )
            )
        elif kind == "stale":
            rules.append(StaleRule(id=rid, point=p, max_age=draw(st.sampled_from([1.0, 2.0, 3.5]))))
        elif kind == "quality":
            rules.append(QualityRule(id=rid, point=p, duration=draw(durations)))
        elif kind == "spc":
            rules.append(
                SpcRule(
                    id=rid,
                    point=p,
                    center=5.0,
                    sigma=draw(st.sampled_from([1.0, 2.0])),
                    nelson=tuple(sorted(draw(st.sets(st.integers(1, 8), min_size=1)))),
                    on_delay=draw(durations),
                    off_delay=draw(durations),
                )
            )
        elif kind == "spc_learn":
            rules.append(
                SpcRule(
                    id=rid,
                    point=p,
                    baseline=draw(st.integers(2, 5)),
                    nelson=(1, 2, 3, 5, 6),
                    on_delay=draw(durations),
                )
            )
        else:
            rules.append(
                LotRule(
                    id=rid,
                    point=p,
                    low=1.0,
                    high=9.0,
                    checks=(
                        LotCheck(
                            draw(st.sampled_from(["mean", "cpk", "std", "count", "max"])),
                            ">=",
                            2.0,
                            "x",
                        ),
                    ),
                )
            )
    return RuleSet.build(rules, lot="lot")


@st.composite
def recordings(draw: st.DrawFn) -> list[Reading]:
    n = draw(st.integers(0, 60))
    t = 0.0
    out: list[Reading] = []
    for _ in range(n):
        t += draw(st.sampled_from([0.0, 0.5, 1.0, 1.0, 2.0, 3.5, -1.0]))  # ties and out-of-order
        if draw(st.integers(0, 9)) == 0:
            out.append(Reading("lot", t, draw(st.sampled_from(["L1", "L2", "", 7]))))
            continue
        q = draw(st.sampled_from([Quality.GOOD] * 6 + [Quality.STALE, Quality.COMM_FAIL]))
        v = None if q is Quality.COMM_FAIL else draw(values)
        out.append(Reading(draw(st.sampled_from(POINTS)), t, v, q))
    return out


@st.composite
def chunkings(draw: st.DrawFn, n: int) -> list[int]:
    """Cut points splitting n readings into steps."""
    cuts = sorted(set(draw(st.lists(st.integers(0, n), max_size=8))))
    return cuts
