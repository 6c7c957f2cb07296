"""The outbox's figures as health metrics (``/metrics``, ``edge status``): a registry source.

Read from the counters the publisher keeps (:class:`edge.outbox.OutboxStats`), no second
bookkeeping; registered by the runtime with ``Node.health.add("outbox", ...)`` when ``[mqtt]``
is configured. docs/reference/metrics.md lists them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from edge.health import Metric, Sample, Source, metric

if TYPE_CHECKING:
    from edge.alerts import AlertPublisher

__all__ = ["outbox_source"]


def outbox_source(publisher: AlertPublisher) -> Source:
    """A health source reading ``publisher.stats`` at each collection."""

    def collect(now: float) -> Iterable[Metric]:
        st = publisher.stats
        streams = st.streams.items()

        def per_stream(name: str, kind: str, help: str, value: object) -> Metric:
            get = value if callable(value) else None
            return metric(
                name,
                "counter" if kind == "c" else "gauge",
                help,
                *(
                    Sample(float(get(s) if get else getattr(s, str(value))), {"stream": n})
                    for n, s in streams
                ),
            )

        return [
            per_stream("edge_outbox_depth", "g",
                       "Ledger entries of the stream the broker has not acknowledged yet.", "depth"),
            per_stream("edge_outbox_oldest_age_seconds", "g",
                       "Seconds the oldest unacknowledged entry of the stream has waited.",
                       lambda s: s.oldest_age(now)),
            per_stream("edge_outbox_delivered_total", "c",
                       "Entries of the stream the broker acknowledged this run.", "delivered"),
            per_stream("edge_outbox_replayed_total", "c",
                       "Of those, entries read back from the ledger (after an outage, a restart).",
                       "replayed"),
            per_stream("edge_outbox_overflows_total", "c",
                       "Times more entries waited than memory holds (the stream went to the ledger).",
                       "overflows"),
            metric("edge_telemetry_published_total", "counter",
                   "Telemetry messages (batches) published.", Sample(float(st.telemetry_published))),
            metric("edge_telemetry_readings_total", "counter",
                   "Readings in published telemetry messages.", Sample(float(st.telemetry_readings))),
            metric("edge_telemetry_dropped_total", "counter",
                   "Telemetry readings dropped, oldest first, from a full telemetry queue.",
                   Sample(float(st.telemetry_dropped))),
            metric("edge_telemetry_queued", "gauge", "Telemetry readings waiting.",
                   Sample(float(st.telemetry_queued))),
        ]  # fmt: skip

    return collect
