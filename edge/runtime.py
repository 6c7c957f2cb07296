"""The node supervisor: one asyncio TaskGroup that owns every task of a running node.

Tasks (each named, all inside the group; nothing runs outside it)::

    bus:<name>      one per bus: the drivers' poller, emitting batches of readings
    rules           evaluates readings (and ticks the clock for delays/stale rules), records events
    ledger          the ledger writer: group commits, checkpoints
    alerts          MQTT alert publisher (only when [mqtt] is configured)
    rules-reload    watches the rule files (and SIGHUP) and swaps in a validated new rule set
    control         the local control socket for operator commands (``edge alarm ...``)
    stats           one ``node.stats`` log line a minute: queue depth, bus counters, drops
    retention       prunes raw readings past ``readings_retention`` (digests stay on the ledger)

Readings travel from the buses to the rules through one bounded queue: a slow consumer blocks the
pollers (backpressure) rather than losing readings silently. Shutdown runs in data-flow order:
stop polling, drain the queue through the rules, record ``node.stop``, flush and close the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge import __version__
from edge.alerts import Alert, AlertPublisher
from edge.commands import OperatorCommand
from edge.config import NodeConfig
from edge.config_alarm import CONFIG_RULE, ConfigAlarm
from edge.control import ControlServer
from edge.drivers import BusPoller, build_pollers, gaps_body
from edge.errors import ConfigError, LedgerError, StorageError
from edge.ledger_bridge import LedgerBridge
from edge.log import event
from edge.readings import Reading
from edge.rules import (
    AlarmState,
    AlarmStats,
    Engine,
    EngineState,
    LotEvent,
    RuleSet,
    Transition,
    load_rules,
)
from edge.statefile import load_state, save_state

__all__ = ["Node", "NodeSummary", "Observer"]

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
    alerts_published: int = 0
    alerts_dropped: int = 0
    reloads: int = 0
    reload_failures: int = 0
    bus_stats: dict[str, object] = field(default_factory=dict)


class Node:
    """A running gateway: acquisition, rules, ledger and alerts under one supervisor.

    Args:
        config: the validated node config.
        observer: console callbacks (optional).
        tick: how often the rules are evaluated with no readings (delays, stale data), seconds.
    """

    def __init__(
        self, config: NodeConfig, *, observer: Observer | None = None, tick: float = 0.25
    ) -> None:
        self.config = config
        self.observer = observer or Observer()
        self.summary = NodeSummary()
        self._tick = tick
        self._queue: asyncio.Queue[list[Reading] | None] = asyncio.Queue(config.queue_size)
        self._reload_requested = asyncio.Event()
        self._ruleset = self._load_rules()
        self._engine = Engine(self._ruleset)
        self._state_path = config.data_dir / "engine-state.json"
        self._state: EngineState = load_state(self._state_path, self._engine)
        self._pollers: list[BusPoller] = build_pollers(config)
        self._ledger = LedgerBridge(config)
        self._alerts = (
            AlertPublisher(
                config.mqtt,
                config.node_id,
                on_command=self.apply_command,
                operators=config.operators,
            )
            if config.mqtt is not None
            else None
        )
        self._last_state_save = 0.0
        self._control = ControlServer(config.control_socket, self.apply_command, config.operators)
        #: per rule, the last transition that changed its state this run (``edge alarm list``:
        #: since when, the value, the message)
        self._last_change: dict[str, Transition] = {}
        self._config_alarm = ConfigAlarm()

    def request_reload(self) -> None:
        """Ask for the rule files to be re-read (SIGHUP)."""
        self._reload_requested.set()

    async def run(self, stop: asyncio.Event) -> NodeSummary:
        """Run until ``stop`` is set, then shut down in data-flow order; return the summary."""
        cfg = self.config
        await self._ledger.open()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._ledger.run(), name="ledger")
                config_change = self._ledger.config_change()  # against the last node.start
                await self._ledger.append(
                    "node.start",
                    {"node_id": cfg.node_id, "site": cfg.site, "version": __version__,
                     "config_hash": self._ledger.config_hash},
                )  # fmt: skip
                if config_change is not None:
                    await self._ledger.append("config.change", config_change)
                await self._record_ruleset(self._ruleset)
                alerts_task = None
                if self._alerts is not None:
                    alerts_task = tg.create_task(self._alerts.run(), name="alerts")
                rules_task = tg.create_task(self._evaluate(), name="rules")
                reload_task = tg.create_task(self._watch_rules(), name="rules-reload")
                control_task = tg.create_task(self._control.run(), name="control")
                stats_task = tg.create_task(self._log_stats(), name="stats")
                retention_task = tg.create_task(self._prune_readings(), name="retention")
                polls = [
                    tg.create_task(p.run(self._emit), name=f"bus:{p.name}") for p in self._pollers
                ]
                event(
                    "node.started",
                    node=cfg.node_id,
                    buses=len(polls),
                    rules=len(self._ruleset.rules),
                )

                await stop.wait()
                event("node.stopping", node=cfg.node_id)
                for task in polls:
                    task.cancel()
                await asyncio.gather(*polls, return_exceptions=True)
                reload_task.cancel()
                control_task.cancel()
                stats_task.cancel()
                retention_task.cancel()
                await self._queue.put(None)  # end of data: the rules loop drains and returns
                await rules_task
                await save_state(self._state_path, self._state)
                if self._alerts is not None and alerts_task is not None:
                    await self._alerts.drain(grace=1.0)
                    alerts_task.cancel()
                await self._record_gaps()
                # The last readings' digest goes before node.stop: nothing of a run comes after it.
                await self._ledger.flush_readings()
                await self._ledger.append("node.stop", {"reason": "stop requested"})
                await self._ledger.close()
        finally:
            await self._ledger.abort()
        s = self.summary
        s.ledger_entries = self._ledger.committed
        s.bus_stats = {p.name: p.stats() for p in self._pollers}
        if self._alerts is not None:
            s.alerts_published, s.alerts_dropped = self._alerts.published, self._alerts.dropped
        event("node.stopped", node=cfg.node_id, readings=s.readings, events=s.events,
              ledger_entries=s.ledger_entries)  # fmt: skip
        return s

    # -- stages -------------------------------------------------------------------------------

    async def _emit(self, readings: list[Reading]) -> None:
        """Called by pollers: hand a batch to the rules, waiting when the queue is full."""
        if self._queue.full():
            self.summary.batches_blocked += 1
        await self._queue.put(readings)

    async def _evaluate(self) -> None:
        while True:
            batch: list[Reading] | None = []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._tick):
                    batch = await self._queue.get()
            if batch is None:
                return
            now = time.time()
            if batch:
                self.summary.readings += len(batch)
                await self._ledger.add_readings(batch)
                if self.observer.on_readings:
                    self.observer.on_readings(batch)
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                await self._reload(now)
            self._state, events = self._engine.step(self._state, batch, now)
            for ev in events:
                await self._record(ev)
            if events or now - self._last_state_save > 1.0:
                # Alarm states and running delay timers survive a restart (or a SIGKILL, to
                # within a second) because they are saved here, not only at shutdown.
                await save_state(self._state_path, self._state)
                self._last_state_save = now

    async def _record(self, ev: RuleEvent, comment: str = "") -> None:
        self.summary.events += 1
        if isinstance(ev, Transition):
            if ev.from_state != ev.to_state:
                self._last_change[ev.rule] = ev
            if ev.event == "activated":
                self.summary.activated += 1
            elif ev.event == "cleared":
                self.summary.cleared += 1
            await self._ledger.append_transition(ev, comment)
            if self._alerts is not None:
                self._alerts.offer(Alert(f"alarms/{ev.rule}", self._ledger.transition_body(ev)))
        else:
            await self._ledger.append_lot_event(ev)
            if self._alerts is not None:
                self._alerts.offer(Alert(f"lots/{ev.kind}", {"lot": ev.lot, "ts": ev.ts}))
        if self.observer.on_event:
            self.observer.on_event(ev)

    async def _prune_readings(self) -> None:
        every = min(3600.0, max(1.0, self.config.ledger.readings_retention / 10))
        while True:
            await asyncio.sleep(every)
            try:
                pruned = await self._ledger.prune_readings(time.time())
            except StorageError as exc:  # disk trouble: readings stay, the next round retries
                event("ledger.readings_prune_failed", logging.ERROR, error=str(exc))
                continue
            if pruned:
                event("ledger.readings_pruned", readings=pruned)

    async def _log_stats(self, every: float = 60.0) -> None:
        """Counters a technician can grep for: are we keeping up, is a bus failing?"""
        while True:
            await asyncio.sleep(every)
            s = self.summary
            alerts = self._alerts
            event(
                "node.stats",
                readings=s.readings,
                queue=self._queue.qsize(),
                blocked=s.batches_blocked,
                events=s.events,
                ledger_committed=self._ledger.committed,
                alerts_pending=alerts.pending if alerts else 0,
                alerts_dropped=alerts.dropped if alerts else 0,
            )
            for p in self._pollers:
                b = p.stats()
                event(
                    "bus.stats",
                    bus=b.bus,
                    requests=b.requests,
                    timeouts=b.timeouts,
                    frame_errors=b.frame_errors,
                    exceptions=b.exceptions,
                    overruns=b.overruns,
                    deferred=b.deferred,
                    late_replies=b.late_replies,
                    utilisation=round(b.utilisation, 3),
                    reopens=b.reopens,
                    port_open=b.port_open,
                )
                for d in b.devices.values():
                    if d.skipped or d.deferred or d.late_replies or d.status != "ok":
                        event(
                            "device.stats",
                            bus=b.bus,
                            device=d.name,
                            status=d.status,
                            polls=d.polls,
                            skipped=d.skipped,
                            deferred=d.deferred,
                            kept=round(d.kept, 4),
                            interval=d.interval,
                            late_replies=d.late_replies,
                        )
            await self._record_gaps()

    async def _record_gaps(self) -> None:
        """Record the cycles not polled since the last call as ``bus.gaps`` ledger entries.

        So the store tells a reading not polled (inside a recorded gap) from one not answered
        (stored with quality stale or comm_fail).
        """
        for p in self._pollers:
            gaps = p.take_gaps()
            if gaps:
                body = gaps_body(p.name, gaps, p.stats().gaps_dropped)
                await self._ledger.append("bus.gaps", body)

    # -- operator commands ------------------------------------------------------------------

    async def apply_command(self, cmd: OperatorCommand) -> dict[str, Any]:
        """Carry out an operator command (control socket or MQTT); record what it changed."""
        now = time.time()
        eng, st = self._engine, self._state
        if cmd.action == "status":
            return {"ok": True, "node": self.config.node_id, "alarms": self._alarm_list(now)}
        if cmd.rule == CONFIG_RULE:
            return await self._config_alarm_command(cmd, now)
        if cmd.action == "correct":
            try:
                return {"ok": True, **await self._ledger.correct(cmd.entry, cmd.comment, cmd.actor)}
            except LedgerError as exc:  # an unknown id: one line back, and the node runs on
                return {"ok": False, "error": str(exc)}
        if cmd.action == "prune_readings":
            try:
                return {
                    "ok": True,
                    **await self._ledger.prune_on_request(cmd.before, cmd.actor, cmd.comment),
                }
            except LedgerError as exc:
                return {"ok": False, "error": str(exc)}
        try:
            match cmd.action:
                case "ack":
                    st, events = eng.acknowledge(st, cmd.rule, cmd.actor, now, cmd.comment)
                case "shelve":
                    st, events = eng.shelve(st, cmd.rule, cmd.actor, cmd.duration, now)
                case "unshelve":
                    st, events = eng.unshelve(st, cmd.rule, cmd.actor, now)
                case "suppress" | "unsuppress":
                    st, events = eng.suppress(st, cmd.rule, cmd.action == "suppress", now)
                case _:  # out_of_service | in_service
                    st, events = eng.out_of_service(
                        st, cmd.rule, cmd.action == "out_of_service", cmd.actor, now
                    )
        except KeyError:
            return {
                "ok": False,
                "error": f"no alarm rule or tag {cmd.rule!r} in the running rule set",
            }
        except ValueError as exc:
            return {"ok": False, "error": str(exc)}
        self._state = st
        for ev in events:
            await self._record(ev, comment=cmd.comment)
        await save_state(self._state_path, self._state)
        return {"ok": True, "events": [ev.event for ev in events if isinstance(ev, Transition)]}

    # -- rule sets ----------------------------------------------------------------------------

    def _load_rules(self) -> RuleSet:
        return load_rules(
            self.config.rules.files, known_points={n: p.unit for n, p in self.config.points.items()}
        )

    async def _record_ruleset(self, ruleset: RuleSet) -> None:
        await self._ledger.append(
            "rules.change",
            {"hash": ruleset.hash, "files": [str(f) for f in self.config.rules.files],
             "rules": [r.id for r in ruleset.rules]},
        )  # fmt: skip

    async def _watch_rules(self) -> None:
        """Poll the rule files' modification times; a change (or SIGHUP) requests a reload."""
        if not self.config.rules.reload:
            return
        seen = _mtimes(self.config.rules.files)
        while True:
            await asyncio.sleep(1.0)
            now = _mtimes(self.config.rules.files)
            if now != seen:
                seen = now
                self._reload_requested.set()

    async def _reload(self, now: float) -> None:
        """Validate the rule files; swap them in only when valid, keeping unchanged rules' states.

        A rejected set raises the ``config:rules`` alarm; the next valid one clears it. An alarm
        that the new set resets (its rule changed or is gone while the alarm was not normal) gets
        a ``reset`` transition on the ledger: it does not return to normal unrecorded.
        """
        try:
            ruleset = self._load_rules()
        except ConfigError as exc:
            self.summary.reload_failures += 1
            first = exc.problems[0] if exc.problems else str(exc)
            event("rules.reload_rejected", logging.ERROR, problems=len(exc.problems), first=first)
            self._config_alarm, change = self._config_alarm.rejected(first, now)
            if change is not None:
                await self._record(change)
            if self.observer.on_message:
                self.observer.on_message(f"rule reload rejected: {first}")
            return
        self._config_alarm, change = self._config_alarm.accepted(now)
        if change is not None:
            await self._record(change)
        if ruleset.hash == self._ruleset.hash:
            return
        before = self._engine.alarm_states(self._state)
        old_rules = {r.id: r for r in self._ruleset.rules}
        self._engine, self._state = self._engine.reload(self._state, ruleset)
        self._ruleset = ruleset
        self.summary.reloads += 1
        await self._record_ruleset(ruleset)
        after = self._engine.alarm_states(self._state)
        for rid, was in before.items():
            now_state = after.get(rid)
            if was is AlarmState.NORMAL or (
                now_state is not None and now_state is not AlarmState.NORMAL
            ):
                continue
            rule = old_rules[rid]
            why = "its rule was removed" if now_state is None else "its rule was changed"
            await self._record(
                Transition(
                    rule=rid, kind=rule.kind, point=rule.point, severity=rule.severity.value,
                    from_state=was, to_state=AlarmState.NORMAL, event="reset", value=None,
                    limit=None, lot=self._state.lot, ts=now,
                    message=f"reset to normal by a rule reload: {why} (rule set {ruleset.hash[:12]})",
                )
            )  # fmt: skip
        event("rules.reloaded", hash=ruleset.hash[:16], rules=len(ruleset.rules))
        if self.observer.on_message:
            self.observer.on_message(
                f"rules reloaded: {len(ruleset.rules)} rules, hash {ruleset.hash[:12]}"
            )

    # -- alarm list -----------------------------------------------------------------------------

    def _alarm_list(self, now: float) -> dict[str, dict[str, Any]]:
        """``edge alarm list``'s data: every alarm's state and figures, raw (epoch seconds)."""
        out = {}
        for rid, s in self._engine.alarm_stats(self._state, now).items():
            out[rid] = _stats_json(s, self._last_change.get(rid))
        c = self._config_alarm
        out[CONFIG_RULE] = {
            "state": str(c.state), "activations_10min": 0, "total": 0, "flood": False,
            "chattering": False, "shelved_until": None, "suppressed": False,
            "out_of_service": False, "since": c.since, "value": None, "limit": None,
            "unit": "", "message": c.message,
        }  # fmt: skip
        return out

    async def _config_alarm_command(self, cmd: OperatorCommand, now: float) -> dict[str, Any]:
        if cmd.action != "ack":
            return {"ok": False, "error": f"{CONFIG_RULE} can only be acknowledged"}
        self._config_alarm, change = self._config_alarm.acknowledge(cmd.actor, now)
        if change is not None:
            await self._record(change, comment=cmd.comment)
        return {"ok": True, "events": [change.event] if change is not None else []}


def _stats_json(s: AlarmStats, last: Transition | None) -> dict[str, Any]:
    return {
        "state": str(s.state), "activations_10min": s.activations_10min, "total": s.total,
        "flood": s.flood, "chattering": s.chattering, "shelved_until": s.shelved_until,
        "suppressed": s.suppressed, "out_of_service": s.out_of_service,
        "since": last.ts if last else None, "value": last.value if last else None,
        "limit": last.limit if last else None, "unit": last.unit if last else "",
        "message": last.message if last else "",
    }  # fmt: skip


def _mtimes(files: Sequence[Path]) -> tuple[float, ...]:
    out = []
    for f in files:
        try:
            out.append(f.stat().st_mtime)
        except OSError:
            out.append(-1.0)
    return tuple(out)
