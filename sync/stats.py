"""Sync counters and lag: what ``edge.sync`` did, for logs and for the metrics exporter.

:meth:`SyncStats.snapshot` is the one read-only view (``/work/prompts/sync-interface.md``,
"metrics"): monotonic counters by name, the connection state, messages waiting, and per feed
the entries held, the most a peer announced and the lag between them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SyncStats"]


@dataclass(slots=True)
class SyncStats:
    """Counters of one node's sync (mutated by the service, read by anyone)."""

    counters: Counter[str] = field(default_factory=Counter)
    connected: bool = False
    #: feed -> (entries held, most announced by a peer)
    feeds: dict[str, tuple[int, int]] = field(default_factory=dict)
    queued: int = 0  #: entries messages waiting to be verified and stored
    outstanding: int = 0  #: range requests sent and not answered

    def inc(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` (spaces become ``_``: ``rejected.wrong_feed``)."""
        self.counters[name.replace(" ", "_")] += n

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able copy: ``{"connected", "queued", "outstanding", "counters", "feeds"}``.

        ``feeds`` maps each feed id to ``{"held", "announced", "lag"}``.
        """
        return {
            "connected": self.connected,
            "queued": self.queued,
            "outstanding": self.outstanding,
            "counters": dict(sorted(self.counters.items())),
            "feeds": {
                feed: {"held": held, "announced": best, "lag": max(0, best - held)}
                for feed, (held, best) in sorted(self.feeds.items())
            },
        }
