"""SPC limits and capability against published results (shared/vectors/spc/reference.json)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.rules.nelson import Zones, nelson_flags
from edge.rules.spc import A2, D2, D3, D4, capability, imr_given, imr_limits, xbar_r_limits

REF_PATH = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "spc" / "reference.json"


@pytest.fixture(scope="module")
def ref() -> dict:
    if not REF_PATH.exists():  # pragma: no cover - the vectors ship with the workspace
        pytest.skip(f"{REF_PATH} missing")
    return json.loads(REF_PATH.read_text())


def test_nist_imr_limits(ref: dict) -> None:
    case = ref["nist_imr"]
    exp = case["expected"]
    lim = imr_limits(case["values"])
    assert lim.center == pytest.approx(exp["centre"], abs=1e-9)
    assert lim.mr_bar == pytest.approx(exp["mean_moving_range"], abs=1e-4)
    assert lim.ucl == pytest.approx(exp["ucl"], abs=1e-3)
    assert lim.lcl == pytest.approx(exp["lcl"], abs=1e-3)
    assert lim.mr_ucl == pytest.approx(exp["mr_ucl"], abs=1e-3)


def test_nist_imr_has_no_signals(ref: dict) -> None:
    case = ref["nist_imr"]
    lim = imr_limits(case["values"])
    flags = nelson_flags(case["values"], Zones.of(lim.center, lim.sigma))
    signals = [i for i, m in enumerate(flags.tolist()) if m]
    assert signals == case["expected"]["signals"]


def test_nist_capability(ref: dict) -> None:
    case = ref["nist_capability"]
    cap = capability(case["mean"], case["sigma"], case["lsl"], case["usl"])
    assert cap.cp == pytest.approx(case["expected"]["cp"], abs=1e-4)
    assert cap.cpk == pytest.approx(case["expected"]["cpk"], abs=1e-4)


def test_montgomery_copy_is_intact(ref: dict) -> None:
    case = ref["montgomery_piston_rings"]
    groups = case["phase1_subgroups"]
    assert len(groups) == 25
    assert all(len(g) == 5 for g in groups)
    sums = case["checksums"]
    assert math.fsum(math.fsum(g) / 5 for g in groups) == pytest.approx(
        sums["sum_of_subgroup_means"], abs=1e-3
    )
    assert math.fsum(max(g) - min(g) for g in groups) == pytest.approx(
        sums["sum_of_ranges"], abs=1e-6
    )


def test_montgomery_xbar_r_phase1(ref: dict) -> None:
    case = ref["montgomery_piston_rings"]
    exp = case["expected_phase1"]
    lim = xbar_r_limits(case["phase1_subgroups"])
    assert lim.n == 5
    assert lim.grand_mean == pytest.approx(exp["grand_mean"], abs=1e-5)
    assert lim.r_bar == pytest.approx(exp["mean_range"], abs=1e-5)
    assert lim.xbar_ucl == pytest.approx(exp["xbar_ucl"], abs=1e-4)
    assert lim.xbar_lcl == pytest.approx(exp["xbar_lcl"], abs=1e-4)
    assert lim.r_ucl == pytest.approx(exp["r_ucl"], abs=1e-4)
    assert lim.r_lcl == pytest.approx(exp["r_lcl"], abs=1e-9)
    assert (A2[5], D3[5], D4[5], D2[5]) == (exp["A2"], exp["D3"], exp["D4"], exp["d2"])


def test_montgomery_phase2_shifts_upward_at_the_end(ref: dict) -> None:
    case = ref["montgomery_piston_rings"]
    lim = xbar_r_limits(case["phase1_subgroups"])
    means = [math.fsum(g) / len(g) for g in case["phase2_subgroups"]]
    above = [i for i, m in enumerate(means) if m > lim.xbar_ucl]
    below = [i for i, m in enumerate(means) if m < lim.xbar_lcl]
    assert above, "phase II should leave the phase I limits"
    assert min(above) >= len(means) - 5  # only the last subgroups
    assert below == []


def test_chart_constants_match_reference(ref: dict) -> None:
    c = ref["constants"]
    for i, n in enumerate(c["n"]):
        assert D2[n] == c["d2"][i]
        assert A2[n] == c["A2"][i]
        assert D3[n] == c["D3"][i]
        assert D4[n] == c["D4"][i]


def test_given_limits() -> None:
    lim = imr_given(10.0, 0.5)
    assert (lim.lcl, lim.center, lim.ucl) == (8.5, 10.0, 11.5)
    assert lim.mr_bar == pytest.approx(1.128 * 0.5)
    assert lim.zone(2) == (9.0, 11.0)
    with pytest.raises(ValueError, match="sigma"):
        imr_given(1.0, 0.0)


def test_learning_refuses_degenerate_baselines() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        imr_limits([1.0])
    with pytest.raises(ValueError, match="constant"):
        imr_limits([3.0, 3.0, 3.0])


def test_xbar_r_refuses_ragged_subgroups() -> None:
    with pytest.raises(ValueError, match="same size"):
        xbar_r_limits([[1.0, 2.0], [1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="no subgroups"):
        xbar_r_limits([])


def test_capability_one_sided_and_degenerate() -> None:
    upper = capability(16.0, 2.0, None, 20.0)
    assert upper.cp is None
    assert upper.cpk == pytest.approx(4 / 6)
    lower = capability(16.0, 2.0, 8.0, None)
    assert lower.cpk == pytest.approx(8 / 6)
    assert capability(16.0, None, 8.0, 20.0).cpk is None
    assert capability(16.0, 0.0, 8.0, 20.0).cpk == math.inf  # no spread, inside spec
    assert capability(25.0, 0.0, 8.0, 20.0).cpk == -math.inf  # no spread, outside spec
    assert capability(20.0, 0.0, 8.0, 20.0).cpk is None  # on the limit with no spread


@given(
    # A spread that survives the shift: [0, 0, 3e-141] + 1.0 is a constant baseline.
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=3, max_size=50).filter(
        lambda xs: max(xs) - min(xs) > 1e-3
    ),
    st.floats(-1e3, 1e3),
)
def test_learned_limits_shift_with_the_data(xs: list[float], shift: float) -> None:
    a = imr_limits(xs)
    b = imr_limits([x + shift for x in xs])
    assert b.center == pytest.approx(a.center + shift, abs=1e-6)
    assert b.sigma == pytest.approx(a.sigma, rel=1e-6, abs=1e-6)
    assert a.ucl - a.center == pytest.approx(3 * a.sigma)
