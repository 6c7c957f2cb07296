"""Ledger replication between nodes over MQTT 5 (docs/reference/sync.md).

Each node announces its head of every trusted feed it holds, pushes new entries of its own feed
live, answers range requests for any feed it holds and fetches what it lacks from any peer; the
ledger (:mod:`edge.ledger.replica`) verifies everything before it is stored. The wire format
(:mod:`edge.sync.wire`) and topics (:mod:`edge.sync.topics`) are versioned and documented for
other implementations.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.sync.catchup import Ask, Planner
    from edge.sync.node import make_service, restore_own_feed
    from edge.sync.service import SyncService
    from edge.sync.stats import SyncStats
    from edge.sync.topics import Topics

# Loaded on first use: `edge --help` must not import aiomqtt.
_HOMES = {
    "Ask": "catchup",
    "Planner": "catchup",
    "make_service": "node",
    "restore_own_feed": "node",
    "SyncService": "service",
    "SyncStats": "stats",
    "Topics": "topics",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'edge.sync' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"edge.sync.{home}"), name)


__all__ = [
    "Ask",
    "Planner",
    "SyncService",
    "SyncStats",
    "Topics",
    "make_service",
    "restore_own_feed",
]
