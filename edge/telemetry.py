"""Telemetry: readings of chosen points, published in batches for dashboards (best effort).

Unlike the ledger streams (:mod:`edge.outbox`), telemetry is a view, not a record: the raw
readings are in the ledger's readings store whatever happens here. So it is bounded in memory
and lossy under pressure: when more readings wait than ``max_queued`` (the broker is down or
slower than the line), the oldest are dropped and counted (``telemetry_dropped``), because a
dashboard wants the present, not a late flood of the past.

Payload (QoS 0, not retained) on ``<prefix>/<node>/telemetry/<device>``::

    {"v": 1, "node": "gw1", "device": "tunnel", "readings": [
      {"point": "tunnel_temp", "ts": "2026-11-23T10:31:40.123456Z", "value": 4.02,
       "quality": "good", "unit": "degC"}, ...]}
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from edge.ledger.entry import format_ts
from edge.outbox import OutboxStats
from edge.outbox_payloads import PAYLOAD_VERSION
from edge.readings import Reading

__all__ = ["Telemetry"]


class Telemetry:
    """The bounded queue of telemetry readings and their batching (pure: no I/O).

    Args:
        points: the points to publish (already resolved from the configured points and devices).
        device_of: point -> device name (the topic level a batch goes to).
        stats: where the counters live (shared with the outbox's figures).
        max_queued: most readings waiting; beyond it the oldest are dropped and counted.
        batch_max: most readings in one message.
    """

    def __init__(
        self,
        points: Collection[str],
        device_of: Mapping[str, str],
        stats: OutboxStats,
        *,
        max_queued: int = 10_000,
        batch_max: int = 500,
    ) -> None:
        self.points = frozenset(points)
        self._device_of = dict(device_of)
        self.stats = stats
        self.max_queued = max_queued
        self.batch_max = batch_max
        self._queue: deque[Reading] = deque()

    def offer(self, readings: Sequence[Reading]) -> None:
        """Queue the readings of telemetry points (never waits); drop the oldest when full."""
        if not self.points:
            return
        q = self._queue
        wanted = self.points
        for r in readings:
            if r.point in wanted:
                q.append(r)
        over = len(q) - self.max_queued
        if over > 0:
            for _ in range(over):
                q.popleft()
            self.stats.telemetry_dropped += over
        self.stats.telemetry_queued = len(q)

    def take(self, node: str) -> list[tuple[str, dict[str, Any]]]:
        """Take what waits as messages: (device, payload), at most ``batch_max`` readings each."""
        q = self._queue
        per_device: dict[str, list[dict[str, Any]]] = {}
        while q:
            r = q.popleft()
            per_device.setdefault(self._device_of.get(r.point, ""), []).append(
                {
                    "point": r.point,
                    "ts": format_ts(r.ts),
                    "value": r.value,
                    "quality": str(r.quality),
                    "unit": r.unit,
                }
            )
        self.stats.telemetry_queued = 0
        out = []
        for device, rows in per_device.items():
            for i in range(0, len(rows), self.batch_max):
                chunk = rows[i : i + self.batch_max]
                body = {"v": PAYLOAD_VERSION, "node": node, "device": device, "readings": chunk}
                out.append((device, body))
        return out

    def requeue_count(self) -> int:
        """Readings waiting."""
        return len(self._queue)
