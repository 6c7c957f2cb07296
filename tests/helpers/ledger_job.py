"""The 100,000-entry alarm ledger the append and replica-accept benches both build.

One realistic alarm transition per entry, every other one tagged with a lot of 500 entries,
entry ``i`` at ``T0 + i * 0.1 ms``: tests/bench/test_bench_ledger_append.py appends it through
LedgerWriter (beside an SQLite insert of the same rows), tests/bench/test_bench_replica_accept.py
through Ledger.append before a second node accepts it. Written once so the two figures stay
comparable (issue 13 compares replica accept with local append).
"""

from __future__ import annotations

N = 100_000
T0 = 1_795_000_000.0


def body(i: int) -> dict[str, object]:
    """A realistic alarm transition."""
    return {
        "rule": "cold-chain-temp",
        "kind": "limit",
        "point": "tunnel.temp",
        "event": "raise",
        "from": "normal",
        "to": "active",
        "value": f"{8 + (i % 50) / 100}",
        "limit": "8.0",
        "unit": "degC",
        "severity": "high",
        "message": "temperature above 8.0 degC",
    }


def lots(i: int) -> list[str]:
    """Entry ``i``'s lots: every other entry, lots of 500 entries."""
    return [f"LOT-{i // 500}"] if i % 2 else []


def ts(i: int) -> float:
    """Entry ``i``'s time."""
    return T0 + i * 1e-4
