"""Control-chart data and SVG, checked against published SPC results and hand-built series."""

from __future__ import annotations

import json
import math
import random
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.ledger.query import StoredEntry
from edge.office import (
    AlarmPeriod,
    SpcSettings,
    SpecLimits,
    alarm_periods,
    chart_data,
    chart_svg,
    decimate,
    spc_settings,
    spec_limits,
)
from edge.rules.loader import load_rules
from edge.rules.nelson import NelsonState, Zones, rules_in
from edge.rules.spc import imr_given, imr_limits

REF = json.loads(
    (
        Path(__file__).resolve().parents[3] / "shared" / "vectors" / "spc" / "reference.json"
    ).read_text()
)
SVG = "{http://www.w3.org/2000/svg}"


def _series(values: list[float], start: int = 0) -> list[tuple[str, float]]:
    return [
        (
            f"2026-11-23T{10 + (start + i) // 3600:02d}:{(start + i) // 60 % 60:02d}:{(start + i) % 60:02d}.000000Z",
            v,
        )
        for i, v in enumerate(values)
    ]


def _svg(text: str) -> ET.Element:
    return ET.fromstring(text)  # the SVG is well-formed XML


def _find(root: ET.Element, cls: str, tag: str = "*") -> list[ET.Element]:
    return [
        e
        for e in root.iter(f"{SVG}{tag}" if tag != "*" else tag)
        if cls in (e.get("class") or "").split()
    ]


def test_nist_individuals_chart_limits() -> None:
    case = REF["nist_imr"]
    want = case["expected"]
    data = chart_data(_series(case["values"]))
    lim = data.limits
    assert lim is not None
    assert lim.center == pytest.approx(want["centre"], abs=1e-9)
    assert lim.mr_bar == pytest.approx(want["mean_moving_range"], abs=1e-4)
    assert lim.ucl == pytest.approx(want["ucl"], abs=1e-3)
    assert lim.lcl == pytest.approx(want["lcl"], abs=1e-3)
    assert lim.mr_ucl == pytest.approx(want["mr_ucl"], abs=1e-3)
    assert [h.index for h in data.hits] == want["signals"] == []
    # the drawn lines carry the same numbers
    root = _svg(chart_svg(data))
    lines = {
        c: float(_find(root, c, "line")[0].get("data-value", "nan"))
        for c in ("center", "ucl", "lcl", "mr-ucl")
    }
    assert lines["center"] == pytest.approx(want["centre"], abs=1e-9)
    assert lines["ucl"] == pytest.approx(want["ucl"], abs=1e-3)
    assert lines["lcl"] == pytest.approx(want["lcl"], abs=1e-3)
    assert lines["mr-ucl"] == pytest.approx(want["mr_ucl"], abs=1e-3)
    assert not _find(root, "nelson-hit", "g")


def test_nist_capability() -> None:
    case = REF["nist_capability"]
    # two readings mean +- sqrt(2) sigma: mean 16, sample standard deviation exactly sigma
    d = case["sigma"] / math.sqrt(2)
    data = chart_data(
        _series([case["mean"] - d, case["mean"] + d]), spec=SpecLimits(case["lsl"], case["usl"])
    )
    assert data.std == pytest.approx(case["sigma"])
    assert data.capability.cp == pytest.approx(case["expected"]["cp"], abs=1e-4)
    assert data.capability.cpk == pytest.approx(case["expected"]["cpk"], abs=1e-4)
    text = _find(_svg(chart_svg(data)), "capability", "text")[0]
    assert float(text.get("data-cpk", "nan")) == pytest.approx(0.6667, abs=1e-4)
    assert "Cpk = 0.67" in (text.text or "")


def _known_signals() -> tuple[list[float], dict[int, set[int]]]:
    """A series with given limits (centre 0, sigma 1) and the hits a person reads off it."""
    values = [0.5, -0.5] * 10  # 20 points alternating around the centre, within 1 sigma
    values[5] = 3.5  # rule 1 at 5
    values += [0.5] * 9  # nine on one side: rule 2 at the ninth (index 28)
    expected: dict[int, set[int]] = {5: {1}, 28: {2}}
    return values, expected


def test_nelson_hits_are_marked_by_rule_number() -> None:
    values, expected = _known_signals()
    data = chart_data(_series(values), limits=imr_given(0.0, 1.0), nelson=[1, 2])
    assert {h.index: set(h.rules) for h in data.hits} == expected
    root = _svg(chart_svg(data))
    marked = {
        (int(g.get("data-index", "-1")), int(g.get("data-rule", "0")))
        for g in _find(root, "nelson-hit", "g")
    }
    assert marked == {(5, 1), (28, 2)}
    title = _find(root, "nelson-hit", "g")[0].find(f"{SVG}title")
    assert title is not None
    assert "rule 1: 1 point beyond 3 sigma" in (title.text or "")
    # given limits are drawn as given
    assert float(_find(root, "ucl", "line")[0].get("data-value", "nan")) == 3.0


def test_hits_agree_with_the_streaming_rule_on_random_data() -> None:
    rng = random.Random(3)
    values = [rng.gauss(10, 1) for _ in range(5000)]
    for i in range(2000, 2030):
        values[i] += 1.5  # a shift: rules 2, 5, 6 fire
    data = chart_data(_series(values), baseline=500)
    lim = imr_limits(values[:500])
    assert data.limits == lim
    # the streaming form the running node uses, pushed point by point after the baseline
    state, zones = NelsonState(), Zones.of(lim.center, lim.sigma)
    expected = {}
    for i, v in enumerate(values[500:], start=500):
        mask = state.push(v, zones)
        if mask:
            expected[i] = rules_in(mask)
    assert {h.index: h.rules for h in data.hits} == expected
    assert min(expected) >= 500  # nothing marked inside the baseline
    assert {2, 5, 6} <= {r for h in data.hits if 2000 <= h.index < 2040 for r in h.rules}


def test_a_rules_settings_drive_its_chart() -> None:
    rules = """\
version: 1
rules:
  - {id: w-given, kind: spc, point: w, center: 10, sigma: 0.5, nelson: [1, 5]}
  - {id: v-learned, kind: spc, point: v, baseline: 20, nelson: [2]}
"""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "r.yaml"
        path.write_text(rules, encoding="utf-8")
        settings = spc_settings(load_rules([path]))
    assert settings["w"] == SpcSettings("w-given", (1, 5), imr_given(10, 0.5), None)
    assert settings["v"] == SpcSettings("v-learned", (2,), None, 20)
    w = settings["w"]
    data = chart_data(
        _series([10.0, 11.2, 11.3, 12.0, 10.1]), limits=w.limits, nelson=w.nelson, rule=w.rule
    )
    # rule 5: two of three beyond 2 sigma (11.0) at 2, 3 and 4; rule 1 beyond 3 sigma (11.5) at 3
    assert {h.index: h.rules for h in data.hits} == {2: (5,), 3: (1, 5), 4: (5,)}
    assert data.limits_source == "given (rule w-given)"


def test_decimation_keeps_extremes_and_every_hit_but_not_for_statistics() -> None:
    rng = random.Random(5)
    values = [rng.gauss(50, 1) for _ in range(120_000)]
    values[77_777] = 70.0  # one spike far above everything
    values[11_111] = 30.0
    data = chart_data(_series(values), width=1000)
    # statistics on every reading
    assert data.count == 120_000
    assert data.limits == imr_limits(values)
    assert data.mean == pytest.approx(math.fsum(values) / len(values), rel=1e-12)
    # display: about two points per pixel column, plus the hits
    hits = {h.index for h in data.hits}
    assert hits
    assert hits <= set(data.shown.tolist())
    assert len(data.shown) <= 2 * 500 + len(hits) + 2
    assert {77_777, 11_111, 0, 119_999} <= set(data.shown.tolist())
    root = _svg(chart_svg(data))
    series = _find(root, "series", "polyline")[0]
    assert len(series.get("points", "").split()) == len(data.shown)
    assert len(_find(root, "nelson-hit", "g")) == sum(len(h.rules) for h in data.hits)
    # each bucket's min and max are among the shown points
    x = np.asarray(values)
    shown = set(data.shown.tolist())
    for b in (0, 137, 499):
        lo, hi = b * len(values) // 500, (b + 1) * len(values) // 500
        assert lo + int(np.argmin(x[lo:hi])) in shown
        assert lo + int(np.argmax(x[lo:hi])) in shown


def test_decimate_small_series_keeps_everything() -> None:
    x = np.arange(10, dtype=np.float64)
    assert decimate(x, 5).tolist() == list(range(10))


def test_alarm_periods_are_shaded() -> None:
    def alarm(seq: int, ts: str, event: str, rule: str = "w-high") -> StoredEntry:
        body = {"rule": rule, "event": event, "point": "w", "severity": "high"}
        return StoredEntry(f"id{seq}", "f" * 64, seq, None, ts, "alarm", "", (), body, ())

    entries = [
        alarm(1, "2026-11-23T10:00:05.000000Z", "activated"),
        alarm(2, "2026-11-23T10:00:08.000000Z", "cleared"),
        alarm(3, "2026-11-23T10:00:15.000000Z", "activated", "other"),  # never cleared
    ]
    periods = alarm_periods(entries)
    assert periods == [
        AlarmPeriod(
            "w-high", "2026-11-23T10:00:05.000000Z", "2026-11-23T10:00:08.000000Z", "high", "w"
        ),
        AlarmPeriod("other", "2026-11-23T10:00:15.000000Z", None, "high", "w"),
    ]
    far = AlarmPeriod("late", "2026-11-24T00:00:00.000000Z", None)
    data = chart_data(_series([float(i % 3) for i in range(30)]), alarms=[*periods, far])
    assert data.alarm_spans == ((5, 8), (15, 29))
    rects = _find(_svg(chart_svg(data)), "alarm-period", "rect")
    assert [(r.get("data-rule"), r.get("data-end")) for r in rects] == [
        ("w-high", "2026-11-23T10:00:08.000000Z"),
        ("other", ""),
    ]


def test_spec_limits_come_from_the_rules() -> None:
    ruleset = load_rules(
        [Path(__file__).resolve().parents[2] / "examples" / "rules" / "bottling.yaml"]
    )
    spec = spec_limits(ruleset)
    assert spec["fill_weight"] == SpecLimits(495.0, 505.0)  # the lot rule's
    assert spec["cap_torque"] == SpecLimits(1.9, 2.5)
    assert spec["tunnel_temp"] == SpecLimits(None, 8.0)


def test_spec_lines_and_json() -> None:
    data = chart_data(_series([1.0, 2.0, 1.5, 1.7]), point="w", unit="g", spec=SpecLimits(0.0, 3.0))
    root = _svg(chart_svg(data, resolution=0.1))
    assert root.get("class") == "control-chart"
    assert root.get("data-point") == "w"
    assert {float(e.get("data-value", "nan")) for e in _find(root, "usl", "line")} == {3.0}
    assert {float(e.get("data-value", "nan")) for e in _find(root, "lsl", "line")} == {0.0}
    doc: dict[str, Any] = json.loads(json.dumps(data.to_json()))
    assert doc["count"] == 4
    assert doc["spec"] == {"low": 0.0, "high": 3.0}
    assert [p[2] for p in doc["points"]] == [1.0, 2.0, 1.5, 1.7]
    assert doc["limits"]["center"] == pytest.approx(1.55)


def test_too_few_or_constant_readings_chart_without_limits() -> None:
    one = chart_data(_series([5.0]))
    assert one.limits is None
    assert one.hits == ()
    assert one.std is None
    flat = chart_data(_series([5.0] * 10))
    assert flat.limits is None
    assert "constant" in flat.limits_source
    for data in (one, flat):
        root = _svg(chart_svg(data))
        assert not _find(root, "ucl", "line")
        assert _find(root, "series", "polyline")
    with pytest.raises(ValueError, match="no readings"):
        chart_data([])
