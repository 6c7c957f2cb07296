"""Read coalescing: merge a device's points into the fewest Modbus read requests. Pure.

A request reads one table (holding FC03, input FC04, coil FC01, discrete FC02) from ``start``
for ``count`` registers or bits. Points are sorted by wire address and merged greedily: a point
joins the open request when the merged span stays within the device's limit (``max_registers``,
or ``max_bits`` for coils/discrete inputs), the hole before it is at most ``max_gap`` registers
(``16 * max_gap`` bits: the same number of bytes on the line) and the span touches no forbidden
range. For this feasibility rule greedy is optimal among requests over consecutive points (a
consecutive part of a feasible group is feasible), which :func:`minimum_requests` checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edge.config import DeviceConfig, PointConfig
from edge.drivers.codec import register_count, wire_address

__all__ = [
    "BIT_TABLES",
    "FUNCTION_CODES",
    "PlannedPoint",
    "ReadRequest",
    "gap_limit",
    "minimum_requests",
    "plan_reads",
    "point_problems",
    "size_limit",
    "split_request",
]

FUNCTION_CODES = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
BIT_TABLES = ("coil", "discrete")
_TABLE_ORDER = ("holding", "input", "coil", "discrete")


@dataclass(frozen=True, slots=True)
class PlannedPoint:
    """A point with its wire address and width (registers or bits)."""

    point: PointConfig
    address: int
    count: int

    @property
    def end(self) -> int:
        """Last address the point occupies (inclusive)."""
        return self.address + self.count - 1


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read transaction: ``count`` registers/bits of ``table`` from wire address ``start``."""

    table: str
    start: int
    count: int
    points: tuple[PlannedPoint, ...]

    @property
    def function(self) -> int:
        """The Modbus function code."""
        return FUNCTION_CODES[self.table]

    @property
    def end(self) -> int:
        """Last address read (inclusive)."""
        return self.start + self.count - 1

    def describe(self) -> str:
        """Human form for messages: ``holding 100..109``."""
        return (
            f"{self.table} {self.start}..{self.end}"
            if self.count > 1
            else f"{self.table} {self.start}"
        )


def size_limit(device: DeviceConfig, table: str) -> int:
    """Most registers (or bits) one request may read on this device."""
    return device.max_bits if table in BIT_TABLES else device.max_registers


def gap_limit(device: DeviceConfig, table: str) -> int:
    """Most unused registers (or bits) a merged request may read to save a round trip."""
    return device.max_gap * 16 if table in BIT_TABLES else device.max_gap


def _forbidden(device: DeviceConfig) -> list[tuple[int, int]]:
    return [(lo - device.address_base, hi - device.address_base) for lo, hi in device.forbidden]


def _touches(lo: int, hi: int, ranges: Iterable[tuple[int, int]]) -> bool:
    return any(lo <= f_hi and f_lo <= hi for f_lo, f_hi in ranges)


def point_problems(device: DeviceConfig, point: PointConfig) -> list[str]:
    """Why ``point`` can never be read from ``device`` (empty when it can)."""
    out: list[str] = []
    address = wire_address(point, device.address_base)
    count = register_count(point)
    limit = size_limit(device, point.table)
    if count > limit:
        out.append(f"needs {count} registers, more than the device's limit of {limit} per request")
    if address < 0 or address + count - 1 > 0xFFFF:
        out.append(f"wire address {address}..{address + count - 1} is outside 0..65535")
    if point.table not in BIT_TABLES and _touches(address, address + count - 1, _forbidden(device)):
        out.append(
            f"register {point.register} overlaps a forbidden range of device {device.name!r}"
        )
    return out


def _feasible(
    group_start: int,
    group_end: int,
    nxt: PlannedPoint,
    table: str,
    device: DeviceConfig,
    prev_end: int,
) -> bool:
    end = max(group_end, nxt.end)
    if end - group_start + 1 > size_limit(device, table):
        return False
    if nxt.address - prev_end - 1 > gap_limit(device, table):
        return False
    return table in BIT_TABLES or not _touches(group_start, end, _forbidden(device))


def _planned(device: DeviceConfig, points: Iterable[PointConfig], table: str) -> list[PlannedPoint]:
    items = [
        PlannedPoint(p, wire_address(p, device.address_base), register_count(p))
        for p in points
        if p.table == table
    ]
    items.sort(key=lambda it: (it.address, it.end, it.point.name))
    return items


def _request(table: str, members: Sequence[PlannedPoint]) -> ReadRequest:
    start = members[0].address
    end = max(m.end for m in members)
    return ReadRequest(table, start, end - start + 1, tuple(members))


def plan_reads(device: DeviceConfig, points: Iterable[PointConfig]) -> list[ReadRequest]:
    """Merge the device's points into the fewest requests (see the module docstring).

    Points that fail :func:`point_problems` must have been rejected before.
    """
    pts = list(points)
    out: list[ReadRequest] = []
    for table in _TABLE_ORDER:
        members: list[PlannedPoint] = []
        end = -1
        for item in _planned(device, pts, table):
            if members and _feasible(members[0].address, end, item, table, device, end):
                members.append(item)
                end = max(end, item.end)
                continue
            if members:
                out.append(_request(table, members))
            members, end = [item], item.end
        if members:
            out.append(_request(table, members))
    return out


def split_request(request: ReadRequest) -> tuple[ReadRequest, ReadRequest]:
    """Halve a multi-point request (after exception 02/03) into two narrower ones.

    Raises:
        ValueError: the request holds a single point and cannot be split.
    """
    if len(request.points) < 2:
        raise ValueError("a single-point request cannot be split")
    half = len(request.points) // 2
    return _request(request.table, request.points[:half]), _request(
        request.table, request.points[half:]
    )


def minimum_requests(device: DeviceConfig, points: Iterable[PointConfig]) -> int:
    """The fewest requests over consecutive points, by exhaustive dynamic programming.

    An independent check of :func:`plan_reads` (tests, benchmark): ``O(n^2)`` per table.
    """
    pts = list(points)
    total = 0
    for table in _TABLE_ORDER:
        items = _planned(device, pts, table)
        n = len(items)
        best = [0] + [n + 1] * n
        for i in range(1, n + 1):
            # try every group items[j:i]
            for j in range(i - 1, -1, -1):
                group = items[j:i]
                start, end = group[0].address, max(g.end for g in group)
                ok = end - start + 1 <= size_limit(device, table)
                run_end = group[0].end
                for g in group[1:]:
                    ok = ok and g.address - run_end - 1 <= gap_limit(device, table)
                    run_end = max(run_end, g.end)
                if table not in BIT_TABLES:
                    ok = ok and not _touches(start, end, _forbidden(device))
                if ok:
                    best[i] = min(best[i], best[j] + 1)
        total += best[n]
    return total
