"""The long-term trend's X-bar/S limits, checked three ways: c4 against the published table,
Montgomery's piston rings (``shared/vectors/spc``), and an independent computation with
``statistics`` and ``math.gamma`` over the raw readings of the very hours a real ledger
summarised. And the SVG carries the limits it computed."""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

import pytest

from edge.ledger.keys import NodeKey
from edge.ledger.readings_read import Summary, read_summaries
from edge.ledger.store import Ledger
from edge.office.trend import c4, trend_data
from edge.office.trend_layout import trend_svg
from edge.readings import Reading

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "spc" / "reference.json"
T0 = 1_795_428_000.0  # 2026-11-23T10:00:00Z, on an hour

#: c4 as tabled (Montgomery, Appendix Table VI; ASTM E2587), n = 2..10 and 25.
C4_TABLE = {2: 0.7979, 3: 0.8862, 4: 0.9213, 5: 0.9400, 6: 0.9515, 7: 0.9594, 8: 0.9650,
            9: 0.9693, 10: 0.9727, 25: 0.9896}  # fmt: skip
#: A3 and B4 as tabled, n = 2..10: the limits for equal sizes are these with sbar = c4 sigma.
A3_TABLE = {2: 2.659, 3: 1.954, 4: 1.628, 5: 1.427, 6: 1.287, 7: 1.182, 8: 1.099, 9: 1.032,
            10: 0.975}  # fmt: skip
B4_TABLE = {2: 3.267, 3: 2.568, 4: 2.266, 5: 2.089, 6: 1.970, 7: 1.882, 8: 1.815, 9: 1.761,
            10: 1.716}  # fmt: skip


def _summaries(groups: list[list[float]], seconds: int = 3600) -> list[Summary]:
    out = []
    for i, g in enumerate(groups):
        start = T0 + i * seconds
        out.append(
            Summary("x", _ts(start), seconds, len(g), min(g), max(g), statistics.fmean(g),
                    statistics.stdev(g) if len(g) > 1 else 0.0)
        )  # fmt: skip
    return out


def _ts(epoch: float) -> str:
    from edge.ledger.readings_codec import format_micros

    return format_micros(round(epoch * 1_000_000))


def test_c4_and_the_tabled_constants() -> None:
    for n, tabled in C4_TABLE.items():
        assert c4(n) == pytest.approx(tabled, abs=6e-5)
    for n in A3_TABLE:
        c = c4(n)
        assert 3 / (c * math.sqrt(n)) == pytest.approx(A3_TABLE[n], abs=6e-4)
        assert 1 + 3 * math.sqrt(1 - c * c) / c == pytest.approx(B4_TABLE[n], abs=6e-4)
    assert c4(3600) == pytest.approx(1 - 1 / (4 * 3600) - 7 / (32 * 3600**2), rel=1e-10)
    with pytest.raises(ValueError, match="n >= 2"):
        c4(1)


def test_piston_rings_limits_agree_with_the_published_ones() -> None:
    data = json.loads(VECTORS.read_text())["montgomery_piston_rings"]
    groups = data["phase1_subgroups"]
    assert (
        round(sum(statistics.fmean(g) for g in groups), 3)
        == data["checksums"]["sum_of_subgroup_means"]
    )
    expected = data["expected_phase1"]
    trend = trend_data(_summaries(groups))
    assert trend is not None
    assert trend.grand_mean == pytest.approx(expected["grand_mean"], abs=1e-5)
    # X-bar/R limits printed by Montgomery (sigma from ranges): the S-based ones agree to 1e-3
    assert len(set(trend.ucl)) == 1  # equal sizes: one limit
    assert trend.ucl[0] == pytest.approx(expected["xbar_ucl"], abs=1e-3)
    assert trend.lcl[0] == pytest.approx(expected["xbar_lcl"], abs=1e-3)
    # and Montgomery's X-bar/S limits of the same data (Example 6.3: 74.014, 73.988)
    assert trend.ucl[0] == pytest.approx(74.014, abs=1e-3)
    assert trend.lcl[0] == pytest.approx(73.988, abs=1e-3)
    # Montgomery's X-bar/S of the same data (Example 6.3): S chart UCL 0.0196, LCL 0
    assert trend.s_ucl[0] == pytest.approx(0.0196, abs=3e-4)
    assert set(trend.s_lcl) == {0.0}
    assert trend.beyond == ()  # phase I: in control, as the book finds


@pytest.fixture(scope="module")
def hours(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[list[float]], list[Summary]]:
    """12 hours of one point through a real ledger; hour h holds 40 + 7h readings (unequal
    subgroups), hour 9 shifted up; returns the raw values per hour and the stored summaries."""
    db = tmp_path_factory.mktemp("trend") / "ledger.db"
    raw: list[list[float]] = []
    readings = []
    for h in range(12):
        n = 40 + 7 * h
        values = [20.0 + ((i * 7919 + h * 104729) % 211) / 100 + (0.9 if h == 9 else 0.0)
                  for i in range(n)]  # fmt: skip
        raw.append(values)
        readings += [Reading("x", T0 + h * 3600 + i * 3600 / n, v) for i, v in enumerate(values)]
    with Ledger.open(db, NodeKey.generate()) as led:
        for k in range(0, len(readings), 97):  # blocks across hours: summaries merge
            led.append_readings(readings[k : k + 97])
        led.commit()
        stored = list(read_summaries(led.conn, seconds=3600, points=["x"]))
    return raw, stored


def test_limits_match_an_independent_computation_over_the_raw_readings(
    hours: tuple[list[list[float]], list[Summary]],
) -> None:
    raw, stored = hours
    trend = trend_data(stored)
    assert trend is not None
    sizes = [len(g) for g in raw]
    means = [statistics.fmean(g) for g in raw]
    variances = [statistics.variance(g) for g in raw]
    grand = statistics.fmean([v for g in raw for v in g])
    d = sum(n - 1 for n in sizes)
    pooled = math.sqrt(sum((n - 1) * v for n, v in zip(sizes, variances, strict=True)) / d)

    def c4_gamma(n: int) -> float:  # by math.gamma, small n only: not the code's lgamma route
        return math.sqrt(2 / (n - 1)) * math.gamma(n / 2) / math.gamma((n - 1) / 2)

    # c4(d + 1) for d in the thousands overflows gamma: its series in n = d + 1, to 1e-11 there
    n_all = d + 1
    c4_d = 1 - 1 / (4 * n_all) - 7 / (32 * n_all**2) - 19 / (128 * n_all**3)
    sigma = pooled / c4_d
    assert trend.counts == tuple(sizes)
    assert trend.grand_mean == pytest.approx(grand, rel=1e-12)
    assert trend.sigma == pytest.approx(sigma, rel=1e-8)
    for i, n in enumerate(sizes):
        assert trend.means[i] == pytest.approx(means[i], rel=1e-12)
        assert trend.ucl[i] == pytest.approx(grand + 3 * sigma / math.sqrt(n), rel=1e-9)
        assert trend.lcl[i] == pytest.approx(grand - 3 * sigma / math.sqrt(n), rel=1e-9)
        c = c4_gamma(n)
        assert trend.s_center[i] == pytest.approx(c * sigma, rel=1e-9)
        assert trend.s_ucl[i] == pytest.approx((c + 3 * math.sqrt(1 - c * c)) * sigma, rel=1e-9)
    beyond = [i for i, m in enumerate(means) if abs(m - grand) > 3 * sigma / math.sqrt(sizes[i])]
    assert 9 in beyond  # the shifted hour
    assert list(trend.beyond) == beyond


def test_the_svg_carries_the_limits_it_computed(
    hours: tuple[list[list[float]], list[Summary]],
) -> None:
    _raw, stored = hours
    trend = trend_data(stored)
    assert trend is not None
    svg = trend_svg(trend, T0, T0 + 12 * 3600)
    ucl = [float(v) for v in re.findall(r'class="ucl" data-value="([^"]+)"', svg)]
    assert ucl == list(trend.ucl)  # sizes all differ: one segment per hour
    assert re.findall(r'class="beyond" data-start="([^"]+)"', svg) == [
        trend.starts[i] for i in trend.beyond
    ]
    assert f'data-grand-mean="{trend.grand_mean!r}"' in svg


def test_a_lone_reading_has_no_limits_and_no_spread() -> None:
    trend = trend_data(_summaries([[5.0], [5.0, 6.0, 7.0]]))
    assert trend is not None
    assert trend.ucl[0] is None
    assert trend.ucl[1] is not None
    assert trend_data(_summaries([[5.0]])) is not None
    lone = trend_data(_summaries([[5.0]]))
    assert lone is not None
    assert lone.sigma is None
    assert "trend-chart" in trend_svg(lone, T0, T0 + 3600)
    assert trend_data([]) is None
