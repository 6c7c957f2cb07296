"""What a running node reports to its console and at stop: :class:`Observer`, :class:`NodeSummary`.

Re-exported by :mod:`edge.runtime` (their home for users); here so the node's parts
(:mod:`edge.node_rules`, :mod:`edge.node_commands`) can name them without importing the runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from edge.readings import Reading
from edge.rules import LotEvent, Transition

__all__ = ["NodeSummary", "Observer", "RuleEvent"]

RuleEvent = Transition | LotEvent


@dataclass(slots=True)
class Observer:
    """Optional callbacks for a console (the demo, ``edge run`` in a terminal)."""

    on_readings: Callable[[Sequence[Reading]], None] | None = None
    on_event: Callable[[RuleEvent], None] | None = None
    on_message: Callable[[str], None] | None = None


@dataclass(slots=True)
class NodeSummary:
    """What a node did during one run (printed by the demo, logged at stop)."""

    readings: int = 0
    batches_blocked: int = 0  #: times a poller had to wait for queue space (backpressure)
    events: int = 0
    activated: int = 0
    cleared: int = 0
    ledger_entries: int = 0
    alerts_published: int = 0  #: ledger entries the broker acknowledged (PUBACK)
    telemetry_dropped: int = 0  #: telemetry readings dropped (oldest first) under pressure
    reloads: int = 0
    reload_failures: int = 0
    bus_stats: dict[str, object] = field(default_factory=dict)
