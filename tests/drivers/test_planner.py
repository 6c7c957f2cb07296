"""Read coalescing: greedy plan == exhaustive minimum, and every plan respects the limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.config import DeviceConfig, PointConfig
from edge.drivers.codec import register_count
from edge.drivers.planner import minimum_requests, plan_reads, point_problems, split_request

TYPES = ["uint16", "int32", "float32", "float64", "bit", "string"]


@st.composite
def maps(draw: st.DrawFn) -> tuple[DeviceConfig, list[PointConfig]]:
    forbidden: list[tuple[int, int]] = []
    if draw(st.booleans()):
        lo = draw(st.integers(0, 300))
        forbidden.append((lo, lo + draw(st.integers(0, 10))))
    device = DeviceConfig(
        "d", "b",
        max_registers=draw(st.integers(4, 125)),
        max_bits=draw(st.integers(1, 64)),
        max_gap=draw(st.integers(0, 20)),
        forbidden=tuple(forbidden),
    )  # fmt: skip
    points = []
    for i in range(draw(st.integers(0, 30))):
        table = draw(st.sampled_from(["holding", "holding", "input", "coil", "discrete"]))
        dtype = "bool" if table in ("coil", "discrete") else draw(st.sampled_from(TYPES))
        p = PointConfig(
            f"p{i}",
            "d",
            register=draw(st.integers(0, 320)),
            table=table,
            type=dtype,
            length=draw(st.integers(1, 4)),
        )
        if not point_problems(device, p):
            points.append(p)
    return device, points


@settings(max_examples=300, deadline=None)
@given(maps())
def test_plan_is_minimal_and_within_limits(m: tuple[DeviceConfig, list[PointConfig]]) -> None:
    device, points = m
    plan = plan_reads(device, points)
    assert len(plan) == minimum_requests(device, points)
    covered = [pp.point.name for r in plan for pp in r.points]
    assert sorted(covered) == sorted(p.name for p in points)  # every point exactly once
    for r in plan:
        limit = device.max_bits if r.table in ("coil", "discrete") else device.max_registers
        assert 1 <= r.count <= limit
        for pp in r.points:
            assert pp.point.table == r.table
            assert r.start <= pp.address
            assert pp.end <= r.end
        if r.table in ("holding", "input"):
            for lo, hi in device.forbidden:
                assert r.end < lo or r.start > hi, (r, device.forbidden)


def test_gap_filled_up_to_max_gap() -> None:
    device = DeviceConfig("d", "b", max_gap=3)
    pts = [
        PointConfig("a", "d", register=0),
        PointConfig("b", "d", register=4),
        PointConfig("c", "d", register=9),
    ]
    plan = plan_reads(device, pts)
    assert [(r.start, r.count) for r in plan] == [(0, 5), (9, 1)]


def test_limits_split_requests() -> None:
    device = DeviceConfig("d", "b", max_registers=125)
    pts = [
        PointConfig(f"p{i}", "d", register=i * 2, type="float32") for i in range(100)
    ]  # 200 registers
    plan = plan_reads(device, pts)
    assert [r.count for r in plan] == [124, 76]


def test_forbidden_range_is_never_read() -> None:
    device = DeviceConfig("d", "b", forbidden=((5, 6),), max_gap=20)
    pts = [PointConfig("a", "d", register=4), PointConfig("b", "d", register=7)]
    assert [(r.start, r.count) for r in plan_reads(device, pts)] == [(4, 1), (7, 1)]
    assert (
        "forbidden" in point_problems(device, PointConfig("c", "d", register=5, type="uint32"))[0]
    )


def test_forbidden_and_address_base() -> None:
    device = DeviceConfig("d", "b", forbidden=((40005, 40006),), address_base=1, max_gap=20)
    pts = [PointConfig("a", "d", register=40004), PointConfig("b", "d", register=40007)]
    plan = plan_reads(device, pts)
    assert [(r.start, r.count) for r in plan] == [(40003, 1), (40006, 1)]


def test_bits_in_one_register_share_a_read() -> None:
    device = DeviceConfig("d", "b")
    pts = [PointConfig(f"b{i}", "d", register=10, type="bit", bit=i) for i in range(16)]
    plan = plan_reads(device, pts)
    assert len(plan) == 1
    assert plan[0].count == 1
    assert len(plan[0].points) == 16


def test_coils_use_bit_limits() -> None:
    device = DeviceConfig("d", "b", max_bits=100, max_gap=1)  # bit gap = 16
    pts = [PointConfig(f"c{i}", "d", register=i * 10, table="coil", type="bool") for i in range(20)]
    plan = plan_reads(device, pts)
    assert [(r.table, r.start, r.count) for r in plan] == [("coil", 0, 91), ("coil", 100, 91)]
    assert all(r.function == 1 for r in plan)


def test_split_request_halves_points() -> None:
    device = DeviceConfig("d", "b")
    pts = [PointConfig(f"p{i}", "d", register=i, type="uint16") for i in range(5)]
    (req,) = plan_reads(device, pts)
    a, b = split_request(req)
    assert (a.start, a.count, b.start, b.count) == (0, 2, 2, 3)
    with pytest.raises(ValueError, match="single-point"):
        split_request(split_request(a)[0])


def test_point_problems() -> None:
    device = DeviceConfig("d", "b", max_registers=2)
    assert "limit of 2" in point_problems(device, PointConfig("p", "d", type="float64"))[0]
    assert (
        "outside 0..65535"
        in point_problems(
            DeviceConfig("d", "b"), PointConfig("p", "d", register=65535, type="uint32")
        )[0]
    )
    assert register_count(PointConfig("p", "d", type="uint64")) == 4
