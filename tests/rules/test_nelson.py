"""Nelson / Western Electric rules 1-8: planted patterns with boundary cases, and agreement of the
streaming and vectorised forms with a second, deliberately naive implementation written here
straight from the rule statements (windows re-scanned at every point, no counters)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.rules.nelson import NelsonState, Zones, mask_of, nelson_flags, rules_in

C, S = 10.0, 0.5  # exactly representable: every zone line below is exact
Z = Zones.of(C, S)


def sd(k: float) -> float:
    """The value k sigma from the centre line."""
    return C + k * S


# ---- the naive oracle ------------------------------------------------------------------------
def naive(xs: list[float], c: float = C, s: float = S) -> list[set[int]]:
    out: list[set[int]] = []
    for i in range(len(xs)):
        fired: set[int] = set()

        def last(k: int, i: int = i) -> list[float]:
            return xs[max(0, i - k + 1) : i + 1]

        x = xs[i]
        if x > c + 3 * s or x < c - 3 * s:
            fired.add(1)
        w = last(9)
        if len(w) == 9 and (all(v > c for v in w) or all(v < c for v in w)):
            fired.add(2)
        w = last(6)
        if len(w) == 6 and (
            all(b > a for a, b in itertools.pairwise(w))
            or all(b < a for a, b in itertools.pairwise(w))
        ):
            fired.add(3)
        w = last(14)
        if len(w) == 14:
            diffs = [b - a for a, b in itertools.pairwise(w)]
            if all(d != 0 for d in diffs) and all(
                (d1 > 0) != (d2 > 0) for d1, d2 in itertools.pairwise(diffs)
            ):
                fired.add(4)
        w = last(3)
        if sum(v > c + 2 * s for v in w) >= 2 or sum(v < c - 2 * s for v in w) >= 2:
            fired.add(5)
        w = last(5)
        if sum(v > c + s for v in w) >= 4 or sum(v < c - s for v in w) >= 4:
            fired.add(6)
        w = last(15)
        if len(w) == 15 and all(c - s < v < c + s for v in w):
            fired.add(7)
        w = last(8)
        if (
            len(w) == 8
            and all(v > c + s or v < c - s for v in w)
            and any(v > c + s for v in w)
            and any(v < c - s for v in w)
        ):
            fired.add(8)
        out.append(fired)
    return out


def streaming(xs: list[float]) -> list[set[int]]:
    state = NelsonState()
    return [set(rules_in(state.push(x, Z))) for x in xs]


def vectorised(xs: list[float]) -> list[set[int]]:
    return [set(rules_in(m)) for m in nelson_flags(xs, Z).tolist()]


def fires(xs: list[float], rule: int) -> list[int]:
    """Indices where ``rule`` signals, checked to agree across all three implementations."""
    a, b, c = streaming(xs), vectorised(xs), naive(xs)
    assert a == b == c
    return [i for i, s in enumerate(a) if rule in s]


# ---- planted patterns ---------------------------------------------------------------------------
def test_rule1_beyond_three_sigma_strictly() -> None:
    assert fires([C, sd(3), sd(-3)], 1) == []  # exactly on the line is not beyond
    assert fires([C, sd(3.2), sd(-3.2)], 1) == [1, 2]


def test_rule2_nine_on_one_side() -> None:
    assert fires([sd(0.5)] * 8, 2) == []
    assert fires([sd(0.5)] * 9, 2) == [8]
    assert fires([sd(-0.5)] * 10, 2) == [8, 9]
    run = [sd(0.5)] * 4 + [C] + [sd(0.5)] * 4  # a point on the centre line breaks the run
    assert fires(run, 2) == []
    assert fires([sd(0.5)] * 4 + [sd(-0.5)] + [sd(0.5)] * 8, 2) == []


def test_rule3_six_points_rising_or_falling() -> None:
    rising = [sd(k / 10) for k in range(6)]
    assert fires(rising, 3) == [5]
    assert fires(rising[:5], 3) == []  # five points (four rises) is not enough
    assert fires(list(reversed(rising)), 3) == [5]
    tie = [sd(0), sd(0.1), sd(0.2), sd(0.2), sd(0.3), sd(0.4), sd(0.5)]  # a tie breaks the run
    assert fires(tie, 3) == []


def test_rule4_fourteen_alternating() -> None:
    zigzag = [sd(0.2) if i % 2 else sd(-0.2) for i in range(14)]
    assert fires(zigzag, 4) == [13]
    assert fires(zigzag[:13], 4) == []
    broken = [*zigzag[:7], zigzag[6], *zigzag[7:]]  # a repeated value (tie) breaks it
    assert fires(broken, 4) == []


def test_rule5_two_of_three_beyond_two_sigma() -> None:
    assert fires([C, sd(2.1), C, sd(2.1)], 5) == [3]
    assert fires([C, sd(2), sd(2.1)], 5) == []  # exactly at 2 sigma does not count
    assert fires([C, sd(3.5), sd(2.1)], 5) == [2]  # beyond 3 sigma counts
    assert fires([C, sd(2.1), sd(-2.1)], 5) == []  # not the same side
    assert fires([sd(2.1), C, C, sd(2.1)], 5) == []  # not within three points


def test_rule6_four_of_five_beyond_one_sigma() -> None:
    assert fires([sd(1.5), sd(1.5), C, sd(1.5), sd(1.5)], 6) == [4]
    assert fires([sd(1.5), sd(1.5), sd(1), sd(1.5), C], 6) == []  # exactly at 1 sigma is not beyond
    assert fires([sd(-1.5), sd(-2.5), sd(-3.5), sd(-1.1)], 6) == [3]


def test_rule7_fifteen_within_one_sigma() -> None:
    hugging = [sd(0.5) if i % 3 else sd(-0.5) for i in range(15)]
    assert fires(hugging, 7) == [14]
    assert fires(hugging[:14], 7) == []
    edge = [*hugging[:7], sd(1), *hugging[8:]]  # exactly at 1 sigma is not within
    assert fires(edge, 7) == []


def test_rule8_eight_beyond_one_sigma_on_both_sides() -> None:
    mixed = [sd(1.5), sd(-1.5)] * 4
    assert fires(mixed, 8) == [7]
    assert fires(mixed[:7], 8) == []
    assert fires([sd(1.5)] * 8, 8) == []  # one side only
    assert fires([*mixed[:3], sd(1), *mixed[4:]], 8) == []  # exactly at 1 sigma breaks it


def test_rule_selection_masks() -> None:
    assert mask_of([1, 5]) == 0b10001
    assert rules_in(0b10000001) == (1, 8)
    with pytest.raises(ValueError, match="no Nelson rule 9"):
        mask_of([9])


def test_state_round_trip_continues_identically() -> None:
    xs = [sd(0.5)] * 5
    state = NelsonState()
    for x in xs:
        state.push(x, Z)
    copy = NelsonState.from_list(state.to_list())
    more = [sd(0.5)] * 5
    assert [state.push(x, Z) for x in more] == [copy.push(x, Z) for x in more]


# ---- agreement on arbitrary data ------------------------------------------------------------------
# values on a half-sigma grid hit every zone line and produce ties
grid = st.sampled_from([sd(k / 2) for k in range(-8, 9)])


@given(st.lists(grid, max_size=60))
def test_three_implementations_agree_on_grid_values(xs: list[float]) -> None:
    assert streaming(xs) == vectorised(xs) == naive(xs)


@settings(max_examples=50)
@given(st.lists(st.floats(C - 4 * S, C + 4 * S), max_size=80))
def test_three_implementations_agree_on_floats(xs: list[float]) -> None:
    assert streaming(xs) == vectorised(xs) == naive(xs)


@given(st.lists(st.sampled_from([sd(1.5), sd(-1.5), sd(0.5), sd(-0.5)]), min_size=20, max_size=60))
def test_agreement_on_long_runs(xs: list[float]) -> None:
    assert streaming(xs) == vectorised(xs) == naive(xs)


@given(st.lists(grid, max_size=60), st.sets(st.integers(1, 8), min_size=1))
def test_selected_rules_only_are_computed_identically(xs: list[float], rules: set[int]) -> None:
    sel = mask_of(rules)
    state = NelsonState()
    pushed = [state.push(x, Z, sel) for x in xs]
    assert pushed == nelson_flags(xs, Z, sel).tolist()
    assert [set(rules_in(m)) for m in pushed] == [s & rules for s in naive(xs)]
