"""What the runtime records, and how: rule events turned into ledger entries, raw readings in blocks.

This is the one place that knows the entry bodies of the runtime's types (docs/reference/ledger.md
lists them): ``node.start``, ``node.stop``, ``config.change``, ``rules.change``, ``alarm``,
``alarm.ack``/``shelve``/``unshelve``, ``lot.start``, ``lot.end``, ``readings.digest`` and
``correction``. Measured values go in as decimal strings (no floats in
hashed content), to :data:`SIGNIFICANT_DIGITS` significant digits.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from edge.config import NodeConfig
from edge.errors import NotCanonical, StorageError
from edge.ledger import LedgerWriter, NodeKey, create_key_file, decimal, format_ts, load_key
from edge.ledger.correction import plan_correction
from edge.log import event
from edge.readings import Reading
from edge.rules import LotEvent, Transition

__all__ = ["SIGNIFICANT_DIGITS", "LedgerBridge", "recorded_decimal"]


#: transitions an operator causes are recorded under their own entry types (docs/reference/ledger.md)
_OPERATOR_TYPES = {
    "acknowledged": "alarm.ack",
    "shelved": "alarm.shelve",
    "unshelved": "alarm.unshelve",
}


#: Significant digits of values on the ledger. Computed values (means, rates, derived points)
#: carry binary noise in their last digits (500.48 - 500.0 is 0.4800000000000182); twelve
#: digits drop it and keep more than any sensor resolves. Readings are stored unrounded.
SIGNIFICANT_DIGITS = 12


def recorded_decimal(x: float | None) -> str | None:
    """A value as the ledger records it: a decimal string of :data:`SIGNIFICANT_DIGITS` digits."""
    if x is None:
        return None
    return decimal(float(f"{x:.{SIGNIFICANT_DIGITS}g}") if isinstance(x, float) else x)


class LedgerBridge:
    """Owns the node's ledger writer and the buffer of raw readings waiting for their block."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.path = config.ledger_path
        self.config_hash = hashlib.sha256(config.source.read_bytes()).hexdigest()
        self._writer: LedgerWriter | None = None
        self._readings: list[Reading] = []
        self._units = {name: p.unit for name, p in config.points.items()}

    @property
    def committed(self) -> int:
        """Entries durably committed during this run."""
        return self._writer.committed if self._writer is not None else 0

    async def open(self) -> None:
        """Open (creating on first start) the node key and the ledger database."""
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        key_path = self.config.key_path
        key: NodeKey
        if key_path.exists():
            key = load_key(key_path)
        else:
            key = create_key_file(key_path)
            event("ledger.key_created", file=str(key_path), feed=key.feed[:16])
        lc = self.config.ledger
        self._writer = LedgerWriter.open(
            self.path, key, flush_interval=lc.flush_interval, batch_max=lc.batch_max
        )

    def config_change(self) -> dict[str, Any] | None:
        """The ``config.change`` body this run records, or None when the config is the last run's.

        Call before this run's ``node.start`` is appended: the last stored ``node.start`` is the
        previous run's, and its ``config_hash`` names the config that run used (none on the
        node's first start: the config is then recorded with ``previous`` null).
        """
        assert self._writer is not None
        try:
            last = self._writer.ledger.latest("node.start")
        except NotCanonical as exc:  # a damaged entry: record the config; verify names the damage
            event("ledger.previous_start_unreadable", logging.WARNING, error=str(exc))
            last = None
        previous = last.body.get("config_hash") if last is not None else None
        if previous == self.config_hash:
            return None
        return {
            "hash": self.config_hash,
            "file": str(self.config.source),
            "previous": previous if isinstance(previous, str) else None,
        }

    async def run(self) -> None:
        """The ``ledger`` task: group commits until closed."""
        assert self._writer is not None
        await self._writer.run()

    async def append(
        self,
        type_: str,
        body: Mapping[str, Any],
        *,
        lots: Sequence[str] = (),
        actor: str = "",
        ts: float | None = None,
    ) -> None:
        """Append one entry (waits for queue space: backpressure)."""
        assert self._writer is not None
        await self._writer.append(
            type_, body, ts=time.time() if ts is None else ts, lots=lots, actor=actor
        )

    def transition_body(self, t: Transition) -> dict[str, Any]:
        """The ``alarm`` entry body (also the MQTT alert payload)."""
        return {
            "rule": t.rule,
            "kind": t.kind,
            "point": t.point,
            "event": t.event,
            "from": str(t.from_state),
            "to": str(t.to_state),
            "value": recorded_decimal(t.value),
            "limit": recorded_decimal(t.limit),
            "unit": t.unit,  # of value and limit: "degC per 1m" for a rate, "s" for a stale age
            "severity": str(t.severity),
            "message": t.message,
        }

    async def append_transition(self, t: Transition, comment: str = "") -> None:
        """Record an alarm transition; operator actions get their own types, with who and why."""
        type_ = _OPERATOR_TYPES.get(t.event, "alarm")
        body = self.transition_body(t)
        if type_ != "alarm":
            body["comment"] = comment
        await self.append(
            type_,
            body,
            lots=[t.lot] if t.lot else [],
            actor=t.actor,
            ts=t.ts,
        )

    async def append_lot_event(self, ev: LotEvent) -> None:
        """Record a lot start or a lot end with its aggregates and checks."""
        station = self.config.site or self.config.node_id
        body: dict[str, Any] = {"lot": ev.lot, "station": station}
        if ev.kind == "lot_end":
            body["aggregates"] = {
                point: {
                    "count": a.count,
                    "mean": recorded_decimal(a.mean),
                    "min": recorded_decimal(a.min),
                    "max": recorded_decimal(a.max),
                    "std": recorded_decimal(a.std),
                    "unit": a.unit or self._units.get(point, ""),
                }
                for point, a in ev.aggregates.items()
            }
            body["checks"] = [
                {
                    "rule": c.rule,
                    "point": c.point,
                    "statistic": c.stat,
                    "check": c.text,
                    "value": recorded_decimal(c.value),
                    "limit": recorded_decimal(c.limit),
                    "passed": c.passed,
                }
                for c in ev.checks
            ]
        await self.append(
            "lot.start" if ev.kind == "lot_start" else "lot.end", body, lots=[ev.lot], ts=ev.ts
        )

    async def correct(self, ref: str, reason: str, actor: str) -> dict[str, Any]:
        """Record a ``correction`` of the entry ``ref`` names (see :mod:`edge.ledger.correction`).

        Returns what was recorded, with ``durable`` False when the disk did not commit it
        within a few seconds (it stays queued and is committed when the disk lets us).

        Raises:
            UnknownEntry: ``ref`` names no entry, or several.
            LedgerError: no reason, or the entry is a checkpoint.
        """
        assert self._writer is not None
        plan = plan_correction(self._writer.ledger.conn, ref, reason)
        entry = await self._writer.append(
            "correction", plan.body, ts=time.time(), lots=plan.lots, actor=actor, refs=plan.refs
        )
        durable = True
        try:
            async with asyncio.timeout(5.0):
                await self._writer.durable(entry.seq)
        except TimeoutError:
            durable = False
        return {
            "entry": entry.id,
            "seq": entry.seq,
            "corrects": plan.target.id,
            "type": plan.target.type,
            "durable": durable,
        }

    async def add_readings(self, batch: Sequence[Reading]) -> None:
        """Buffer raw readings; every ``readings_block`` of them becomes a stored block + digest."""
        self._readings.extend(batch)
        if len(self._readings) >= self.config.ledger.readings_block:
            await self.flush_readings()

    async def flush_readings(self) -> None:
        """Make the buffered readings a block (with its digest entry) now, however few."""
        if self._readings and self._writer is not None:
            block, self._readings = self._readings, []
            await self._writer.add_readings(block)

    async def prune_readings(self, now: float) -> int:
        """Drop raw readings older than the retention; their digests stay on the ledger."""
        if self._writer is None:
            return 0
        retention = self.config.ledger.readings_retention
        return await self._writer.prune_readings(now - retention, retention=retention, now=now)

    async def prune_on_request(self, before: float, actor: str, comment: str) -> dict[str, Any]:
        """An operator's prune of raw readings before ``before``: recorded (who, why), then done."""
        if self._writer is None:
            raise StorageError("the ledger is not open")
        deleted = await self._writer.prune_readings(before, actor=actor, comment=comment)
        return {"readings": deleted, "before": format_ts(before)}

    async def close(self) -> None:
        """Flush buffered readings, drain the writer, commit, checkpoint and close."""
        if self._writer is not None:
            await self.flush_readings()
            await self._writer.aclose()

    async def abort(self) -> None:
        """Release the database if the node is going down on an error (idempotent)."""
        if self._writer is not None:
            try:
                self._writer.ledger.close()
            except Exception as exc:  # closing must not mask the error that brought us here
                event("ledger.close_failed", logging.WARNING, error=str(exc))
