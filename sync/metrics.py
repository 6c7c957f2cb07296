"""Sync's health source: its counters and per-feed lag as metrics (``/metrics``, ``edge status``).

Registered by the runtime with ``Node.health.add("sync", sync_source(service.stats))``;
docs/reference/metrics.md lists the metrics.
"""

from __future__ import annotations

from collections.abc import Iterable

from edge.health import Metric, Sample, Source, metric
from edge.sync.stats import SyncStats

__all__ = ["sync_source"]


def sync_source(stats: SyncStats) -> Source:
    """A health source reading ``stats`` at each collection."""

    def collect(now: float) -> Iterable[Metric]:
        snap = stats.snapshot()
        feeds = snap["feeds"]
        return [
            metric(
                "edge_sync_connected",
                "gauge",
                "1 while sync is connected to its broker.",
                Sample(1.0 if snap["connected"] else 0.0),
            ),
            metric(
                "edge_sync_events_total",
                "counter",
                "Sync counters by event (docs/reference/sync.md, Alarms and counters).",
                *(Sample(float(v), {"event": k}) for k, v in snap["counters"].items()),
            ),
            metric(
                "edge_sync_feed_entries",
                "gauge",
                "Entries of a feed held here (held) and the most a peer announced (announced).",
                *(
                    Sample(float(f[what]), {"feed": feed, "what": what})
                    for feed, f in feeds.items()
                    for what in ("held", "announced")
                ),
            ),
            metric(
                "edge_sync_feed_lag_entries",
                "gauge",
                "Entries of a feed a peer announced that this node does not hold yet.",
                *(Sample(float(f["lag"]), {"feed": feed}) for feed, f in feeds.items()),
            ),
            metric(
                "edge_sync_queued_batches",
                "gauge",
                "Entries messages waiting to be verified and stored.",
                Sample(float(snap["queued"])),
            ),
            metric(
                "edge_sync_requests_outstanding",
                "gauge",
                "Range requests sent and not yet answered.",
                Sample(float(snap["outstanding"])),
            ),
        ]

    return collect
