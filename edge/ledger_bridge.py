"""What the runtime records, and how: rule events turned into ledger entries, raw readings in blocks.

This is the one place that knows the entry bodies of the runtime's types (docs/reference/ledger.md
lists them): ``node.start``, ``node.stop``, ``config.change``, ``rules.change``, ``alarm``,
``alarm.ack``/``shelve``/``unshelve``, ``lot.start``, ``lot.end``, ``readings.digest`` and
``correction``. Measured values go in as decimal strings (no floats in
hashed content), to :data:`SIGNIFICANT_DIGITS` significant digits.

It also keeps what makes a node's records crash-atomic (docs/design.md, "Crash-atomic records"): the
rule engine's state lives in the ledger database and is stored with the batch that carries the
events it reflects (:meth:`LedgerBridge.track_state`); raw readings are staged with every batch
(:meth:`LedgerBridge.add_readings`); at start, :meth:`LedgerBridge.previous_run` closes the block
a killed run left open and says how and when the previous run ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge.config import NodeConfig
from edge.errors import LedgerClosed, NotCanonical, StorageError
from edge.failpoints import hit
from edge.ledger import Entry, LedgerWriter, NodeKey, create_key_file, decimal, format_ts, load_key
from edge.ledger.committer import JOURNAL_FRAME_MAX
from edge.ledger.correction import plan_correction
from edge.ledger.entry import CHECKPOINT
from edge.log import event
from edge.readings import Reading
from edge.rules import Engine, EngineState, LotEvent, Transition

__all__ = ["SIGNIFICANT_DIGITS", "EntryArgs", "LedgerBridge", "recorded_decimal"]

#: The ``engine_state`` row the rule engine's state is kept under.
STATE_NAME = "rules"
#: Where the state was kept before it moved into the ledger database (read once, then removed).
LEGACY_STATE_FILE = "engine-state.json"


@dataclass(frozen=True, slots=True)
class EntryArgs:
    """One entry to append: what :meth:`LedgerWriter.append` takes."""

    type: str
    body: dict[str, Any]
    ts: float
    lots: list[str] = field(default_factory=list)
    actor: str = ""


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
        self._units = {name: p.unit for name, p in config.points.items()}
        self._legacy_state = config.data_dir / LEGACY_STATE_FILE

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
            self.path,
            key,
            flush_interval=lc.flush_interval,
            batch_max=lc.batch_max,
            # 0: every batch straight to SQLite ([ledger] commit_journal = false)
            journal_max=JOURNAL_FRAME_MAX if lc.commit_journal else 0,
            commit_worker=lc.commit_worker,
        )

    @property
    def writer(self) -> LedgerWriter:
        """The open writer (after :meth:`open`)."""
        assert self._writer is not None, "LedgerBridge.open() first"
        return self._writer

    def load_state(self, engine: Engine) -> EngineState:
        """The engine state the ledger database holds (else the legacy state file's, else new).

        A state saved under other rules is adopted: unchanged rules keep their states. A state
        that cannot be read is logged and replaced by a fresh one (the node must start).
        """
        stored = self.writer.ledger.stored_state(STATE_NAME)
        source = "ledger"
        raw: bytes | None = stored[1] if stored is not None else None
        if raw is None:
            try:
                raw = self._legacy_state.read_bytes()
                source = str(self._legacy_state)
            except FileNotFoundError:
                return engine.initial_state()
            except OSError as exc:
                event("rules.state_unreadable", logging.WARNING, file=source, error=str(exc))
                return engine.initial_state()
        try:
            state = EngineState.from_json(raw)
        except Exception as exc:  # a damaged state must not keep the node from starting
            event("rules.state_unreadable", logging.WARNING, file=source, error=str(exc))
            return engine.initial_state()
        return engine.adopt(state)

    def track_state(self, current: Callable[[], EngineState]) -> None:
        """Store ``current()`` with every batch cut after :meth:`state_changed`.

        The state goes into the ``engine_state`` table in the transaction of the batch that
        carries every entry appended before it: the state and the events it reflects are
        durable together. A legacy ``engine-state.json`` is removed once the first stored state
        is durable (it would otherwise be read again if the database lost its state).
        """
        writer = self.writer

        def source() -> bytes:
            return current().to_json()

        writer.ledger.track_state(STATE_NAME, source)
        writer.state_changed()  # the state loaded (and rebased) is stored with the first batch

    def drop_legacy_state(self, seq: int) -> None:
        """Remove a legacy ``engine-state.json`` once the entry at ``seq`` is durable.

        The state loaded from it is stored with that entry's batch or an earlier one.
        """
        path = self._legacy_state
        if path.exists():
            self.writer.on_durable(seq, lambda: path.unlink(missing_ok=True))

    def state_changed(self) -> None:
        """The engine state changed: store it with the next batch."""
        self.writer.state_changed()
        hit("state.queued")

    def previous_run(self) -> dict[str, Any] | None:
        """How the last run ended, for this run's ``node.start`` (None on the first start).

        Closes the readings block a killed run left open first (its digest entry goes before
        this run's ``node.start``: it belongs to the run whose readings it covers).

        Returns:
            ``{"clean": bool, "last_entry": ts, "last_reading": ts}``: ``clean`` when the run
            recorded its ``node.stop``; the times (RFC 3339) of its last durable entry and raw
            reading (None when it had none).
        """
        writer = self.writer
        ledger = writer.ledger
        last_reading = ledger.last_reading_ts()  # before the open block is closed (pending)
        count = len(ledger.open_block)
        if count:
            recovered = writer.close_block()
            assert recovered is not None
            event("ledger.readings_recovered", readings=count, block=recovered.body["block"])
        try:
            last = ledger.last_entry(skip=(CHECKPOINT, "readings.digest"))
        except NotCanonical as exc:  # a damaged entry: verify names it; the node must start
            event("ledger.previous_run_unreadable", logging.WARNING, error=str(exc))
            return {"clean": False, "last_entry": None, "last_reading": last_reading}
        if last is None:
            return None
        return {
            "clean": last.type == "node.stop",
            "last_entry": last.ts,
            "last_reading": last_reading,
        }

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
    ) -> Entry:
        """Append one entry (waits for queue space: backpressure)."""
        assert self._writer is not None
        return await self._writer.append(
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
            "statistic": t.statistic,  # what value is: value, rate, age, Nelson 5, Cpk ...
            "severity": str(t.severity),
            "message": t.message,
        }

    def transition_entry(self, t: Transition, comment: str = "") -> EntryArgs:
        """The entry of an alarm transition (operator actions: their own types, who and why)."""
        type_ = _OPERATOR_TYPES.get(t.event, "alarm")
        body = self.transition_body(t)
        if type_ != "alarm":
            body["comment"] = comment
        return EntryArgs(type_, body, t.ts, [t.lot] if t.lot else [], t.actor)

    def lot_entry(self, ev: LotEvent) -> EntryArgs:
        """The entry of a lot start or a lot end with its aggregates and checks."""
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
        return EntryArgs(
            "lot.start" if ev.kind == "lot_start" else "lot.end", body, ev.ts, [ev.lot]
        )

    def append_now(self, args: EntryArgs) -> Entry:
        """Append without waiting (after :meth:`LedgerWriter.room`): see ``append_now`` there."""
        return self.writer.append_now(
            args.type, args.body, ts=args.ts, lots=args.lots, actor=args.actor
        )

    async def append_transition(self, t: Transition, comment: str = "") -> None:
        """Record an alarm transition (waits for room; see :meth:`transition_entry`)."""
        a = self.transition_entry(t, comment)
        await self.append(a.type, a.body, lots=a.lots, actor=a.actor, ts=a.ts)

    async def append_lot_event(self, ev: LotEvent) -> None:
        """Record a lot start or end (waits for room; see :meth:`lot_entry`)."""
        a = self.lot_entry(ev)
        await self.append(a.type, a.body, lots=a.lots, actor=a.actor, ts=a.ts)

    async def sync(self) -> dict[str, Any]:
        """Sign and move the commit journal into the database (a reader's ``sync`` request).

        Returns ``{"entries": N}``, our feed's durable size, all of it in the database now.

        Raises:
            StorageError: not done within 10 s (the disk or the commit worker is stuck).
        """
        writer = self.writer
        try:
            async with asyncio.timeout(10.0):
                await writer.sync()
        except TimeoutError:
            raise StorageError(f"ledger {self.path}: sync: not done within 10 s") from None
        return {"entries": writer.size}

    async def correct(self, ref: str, reason: str, actor: str) -> dict[str, Any]:
        """Record a ``correction`` of the entry ``ref`` names (see :mod:`edge.ledger.correction`).

        Returns what was recorded, with ``durable`` False when the disk did not commit it
        within a few seconds (it stays queued and is committed when the disk lets us).

        Raises:
            UnknownEntry: ``ref`` names no entry, or several.
            LedgerError: no reason, or the entry is a checkpoint.
        """
        assert self._writer is not None
        await self._writer.sync()  # the entry may still be in the commit journal
        plan = plan_correction(self._writer.ledger.conn, ref, reason)
        entry = await self._writer.append(
            "correction", plan.body, ts=time.time(), lots=plan.lots, actor=actor, refs=plan.refs
        )
        self._writer.commit_now()  # an operator waits for the answer: no flush timer
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

    def add_readings(self, batch: Sequence[Reading]) -> Entry | None:
        """Stage raw readings (durable with the next batch); close the block when full.

        Returns:
            The closed block's ``readings.digest`` entry; None when the block is not full yet.
        """
        writer = self.writer
        writer.stage_readings(batch)
        if len(writer.ledger.open_block) >= self.config.ledger.readings_block:
            return self.flush_readings()
        return None

    def flush_readings(self) -> Entry | None:
        """Close the open readings block now, however few it holds (None when empty)."""
        if self._writer is None:
            return None
        entry = self._writer.close_block()
        if entry is not None:
            hit("readings.flush")
        return entry

    async def prune_readings(self, now: float) -> int:
        """Drop raw readings older than the retention; their digests stay on the ledger."""
        if self._writer is None:
            return 0
        retention = self.config.ledger.readings_retention
        deleted = await self._writer.prune_readings(now - retention, retention=retention, now=now)
        # minute summaries outlive raw readings, but not for ever (hour summaries do):
        # deleted without a ledger entry, as edge.ledger.summary_retention explains
        before = now - self.config.ledger.minute_summary_retention
        rows = await self._writer.prune_minute_summaries(before)
        if rows:
            event("ledger.summaries_pruned", rows=rows, before=format_ts(before))
        return deleted

    async def prune_on_request(self, before: float, actor: str, comment: str) -> dict[str, Any]:
        """An operator's prune of raw readings before ``before``: recorded (who, why), then done."""
        if self._writer is None:
            raise StorageError("the ledger is not open")
        deleted = await self._writer.prune_readings(before, actor=actor, comment=comment)
        return {"readings": deleted, "before": format_ts(before)}

    async def close(self) -> None:
        """Close the open readings block, drain the writer, commit, checkpoint and close."""
        if self._writer is not None:
            with contextlib.suppress(LedgerClosed):  # closed already: nothing to flush
                self.flush_readings()
            await self._writer.aclose()

    async def abort(self) -> None:
        """Release the database if the node is going down on an error (idempotent)."""
        if self._writer is not None:
            try:
                self._writer.ledger.close()
            except Exception as exc:  # closing must not mask the error that brought us here
                event("ledger.close_failed", logging.WARNING, error=str(exc))
