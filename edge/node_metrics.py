"""The node's built-in health source: what its parts already count, read as metrics.

Read at each collection (a scrape of ``/metrics``, an ``edge status``) from the live objects:
the bus pollers' :meth:`~edge.drivers.BusPoller.stats` snapshots, the readings queue, the ledger
writer, the alert publisher, the rules engine, the control server. Nothing is counted twice;
the only counters of its own are the readings per device and quality
(:class:`edge.health.NodeHealth`). Metric names are documented in docs/reference/metrics.md.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge.health import Metric, NodeHealth, Sample, Source, metric
from edge.readings import Quality
from edge.rules import AlarmState

if TYPE_CHECKING:
    from edge.alerts import AlertPublisher
    from edge.control import ControlServer
    from edge.drivers import BusPoller
    from edge.ledger.writer import LedgerWriter

__all__ = ["NodeParts", "node_source"]


@dataclass(frozen=True, slots=True)
class NodeParts:
    """The live objects of a running node that the source reads."""

    health: NodeHealth
    version: str
    summary: Any  #: edge.runtime.NodeSummary (not imported: the runtime imports this module)
    queue: asyncio.Queue[Any]
    pollers: Sequence[BusPoller]
    writer: LedgerWriter
    alerts: AlertPublisher | None
    control: ControlServer
    alarm_states: Callable[[], Mapping[str, str]]


def _c(name: str, help: str, *samples: Sample) -> Metric:
    return metric(name, "counter", help, *samples)


def _g(name: str, help: str, *samples: Sample) -> Metric:
    return metric(name, "gauge", help, *samples)


def node_source(parts: NodeParts) -> Source:
    """The node's own metrics as a :data:`edge.health.Source`."""

    def collect(now: float) -> Iterable[Metric]:
        yield from _node(parts, now)
        yield from _acquisition(parts)
        yield from _queues(parts)
        yield from _ledger(parts.writer)
        yield from _rules(parts)

    return collect


def _node(p: NodeParts, now: float) -> Iterable[Metric]:
    h = p.health
    yield _g("edge_node_info", "The running node (value 1).",
             Sample(1.0, {"node": h.node_id, "version": p.version}))  # fmt: skip
    yield _g("edge_node_start_time_seconds", "When the node started (Unix time).",
             Sample(h.started))  # fmt: skip
    yield _g("edge_node_uptime_seconds", "Seconds since the node started.", Sample(now - h.started))


def _acquisition(p: NodeParts) -> Iterable[Metric]:
    h = p.health
    counts = h.readings  # every device and quality from the start: series do not appear late
    keys = sorted({*((d, q.value) for d in h.devices for q in Quality), *counts})
    yield _c("edge_readings_total", "Readings acquired, by device and quality.",
             *(Sample(float(counts[k]), {"device": k[0], "quality": k[1]}) for k in keys))  # fmt: skip
    yield _g("edge_device_readings_per_second",
             "Readings per second, by device, over about the last minute.",
             *(Sample(rate, {"device": d}) for d, rate in h.rates().items()))  # fmt: skip
    buses = [poller.stats() for poller in p.pollers]
    per_device: list[tuple[str, Any]] = [(b.bus, d) for b in buses for d in b.devices.values()]

    def dev(name: str, kind: str, help: str, value: Callable[[Any], float]) -> Metric:
        samples = (Sample(float(value(d)), {"bus": bus, "device": d.name}) for bus, d in per_device)
        return metric(name, "counter" if kind == "c" else "gauge", help, *samples)

    yield dev("edge_device_polls_total", "c", "Poll cycles done, by device.", lambda d: d.polls)
    yield dev("edge_device_failed_polls_total", "c", "Poll cycles that failed (no valid answer).",
              lambda d: d.failed_polls)  # fmt: skip
    yield dev("edge_device_deadline_misses_total", "c",
              "Poll deadlines missed by a whole interval (cycles skipped).", lambda d: d.skipped)  # fmt: skip
    yield dev("edge_device_deferred_total", "c",
              "Cycles given up while the interval was stretched (line over-committed).",
              lambda d: d.deferred)  # fmt: skip
    yield dev("edge_device_backoff", "g", "1 while the device's circuit breaker is open.",
              lambda d: d.state.value == "backoff")  # fmt: skip
    yield dev("edge_device_poll_interval_seconds", "g", "The device's effective poll interval.",
              lambda d: d.interval)  # fmt: skip

    def bus(name: str, kind: str, help: str, value: Callable[[Any], float]) -> Metric:
        samples = (Sample(float(value(b)), {"bus": b.bus}) for b in buses)
        return metric(name, "counter" if kind == "c" else "gauge", help, *samples)

    yield bus("edge_bus_requests_total", "c", "Transactions sent.", lambda b: b.requests)
    yield bus("edge_bus_timeouts_total", "c", "Transactions not answered in time.",
              lambda b: b.timeouts)  # fmt: skip
    yield bus("edge_bus_frame_errors_total", "c", "Replies discarded (CRC, unit, format).",
              lambda b: b.frame_errors)  # fmt: skip
    yield bus("edge_bus_exceptions_total", "c", "Modbus exception responses.",
              lambda b: b.exceptions)  # fmt: skip
    yield bus("edge_bus_poll_overruns_total", "c",
              "Poll deadlines missed by a whole period and skipped (all devices).",
              lambda b: b.overruns)  # fmt: skip
    yield bus("edge_bus_late_replies_total", "c", "Replies that came after the timeout.",
              lambda b: b.late_replies)  # fmt: skip
    yield bus("edge_bus_port_errors_total", "c", "Port open failures or losses.",
              lambda b: b.port_errors)  # fmt: skip
    yield bus("edge_bus_utilisation_ratio", "g",
              "Share of the line the live devices' cycles take (0..1, above 1: over-committed).",
              lambda b: b.utilisation)  # fmt: skip
    yield bus("edge_bus_port_open", "g", "1 while the bus's port is open.", lambda b: b.port_open)


def _queues(p: NodeParts) -> Iterable[Metric]:
    w = p.writer
    depth = [Sample(float(p.queue.qsize()), {"queue": "readings"}),
             Sample(float(w.ledger.pending), {"queue": "ledger"})]  # fmt: skip
    capacity = [Sample(float(p.queue.maxsize), {"queue": "readings"}),
                Sample(float(w.queue_size), {"queue": "ledger"})]  # fmt: skip
    if p.alerts is not None:
        depth.append(Sample(float(p.alerts.pending), {"queue": "alerts"}))
    yield _g("edge_queue_depth", "Items waiting, by queue (ledger: entries not yet durable).",
             *depth)  # fmt: skip
    yield _g("edge_queue_capacity", "Bound of each queue.", *capacity)
    yield _c("edge_readings_blocked_total",
             "Times a poller waited for room in the readings queue (backpressure, no loss).",
             Sample(float(p.summary.batches_blocked)))  # fmt: skip
    if p.alerts is not None:
        yield _c("edge_alerts_published_total", "Alerts the broker acknowledged.",
                 Sample(float(p.alerts.published)))  # fmt: skip
        yield _c("edge_alerts_dropped_total", "Notices (no ledger entry) dropped, oldest first.",
                 Sample(float(p.alerts.dropped)))  # fmt: skip
        yield _g("edge_mqtt_connected", "1 while connected to the broker.",
                 Sample(float(p.alerts.connected)))  # fmt: skip
    refused = [Sample(float(p.control.refused), {"via": "control"})]
    if p.alerts is not None:
        refused.append(Sample(float(p.alerts.refused), {"via": "mqtt"}))
    yield _c("edge_commands_refused_total", "Operator commands refused as unauthorised.", *refused)


def _ledger(w: LedgerWriter) -> Iterable[Metric]:
    head = w.ledger.head
    yield _g("edge_ledger_head_seq", "Seq of the newest durable entry of the node's feed.",
             Sample(float(head.seq) if head is not None else -1.0))  # fmt: skip
    yield _c("edge_ledger_entries_committed_total", "Entries durably committed this run.",
             Sample(float(w.committed)))  # fmt: skip
    yield _c("edge_ledger_commits_total", "Batches durably committed this run.",
             Sample(float(w.commits)))  # fmt: skip
    yield _c("edge_ledger_commit_seconds_total",
             "Time from handing a batch to the commit worker to its durable answer, summed "
             "(divide by edge_ledger_commits_total for the mean).", Sample(w.commit_seconds))  # fmt: skip
    yield _g("edge_ledger_commit_seconds_max", "The longest such time this run.",
             Sample(w.commit_seconds_max))  # fmt: skip


def _rules(p: NodeParts) -> Iterable[Metric]:
    states = Counter(str(s) for s in p.alarm_states().values())
    yield _g("edge_alarms", "Alarms by state.",
             *(Sample(float(states.get(s.value, 0)), {"state": s.value}) for s in AlarmState))  # fmt: skip
    s = p.summary
    yield _c("edge_rule_events_total", "Alarm transitions and lot events recorded this run.",
             Sample(float(s.events)))  # fmt: skip
    yield _c("edge_rules_reloads_total", "Rule sets swapped in this run.", Sample(float(s.reloads)))
    yield _c("edge_rules_reload_failures_total", "Rule sets rejected this run.",
             Sample(float(s.reload_failures)))  # fmt: skip
