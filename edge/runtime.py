"""The node supervisor: one asyncio TaskGroup that owns every task of a running node.

Tasks (each named, all inside the group; nothing runs outside it)::

    bus:<name>      one per bus: the drivers' poller, emitting batches of readings
    rules           evaluates readings (and ticks the clock for delays/stale rules), records events
    ledger          the ledger writer: group commits, checkpoints
    alerts          MQTT: the ledger outbox, status, telemetry, commands (only with [mqtt])
    rules-reload    watches the rule files (and SIGHUP) and swaps in a validated new rule set
    control         the local control socket for operator commands (``edge alarm ...``)
    metrics         the Prometheus endpoint (only with [metrics]; edge.metrics, edge.health)
    stats           one ``node.stats`` log line a minute: queue depth, bus counters, drops
    retention       prunes raw readings past ``readings_retention`` (digests stay on the ledger)
    sync            replicates ledgers with peers over MQTT 5 (only with [sync]; edge.sync)

With ``[sync]``, before the ledger writer opens, the node checks that no peer holds (or cosigned)
more of its own feed than its database has, and fetches it back from them if so
(:func:`edge.sync.restore_own_feed`): a lost or rolled-back database never gets a second history.

Readings travel from the buses to the rules through one bounded queue: a slow consumer blocks the
pollers (backpressure) rather than losing readings silently. Shutdown runs in data-flow order:
stop polling, drain the queue through the rules, record ``node.stop``, flush and close the ledger.

Crash atomicity (docs/design.md, "Crash-atomic records"): the engine state lives in the ledger database
and is stored by the batch that carries the entries of its events. The rules task keeps one
rule: between changing the state and appending the entries of what changed, it never yields to
the event loop (where the writer cuts batches); it waits for room in the writer *before* it
touches the state. Alarm transitions, operator actions and lot records are committed at once
(no flush timer); console output leaves once they are durable, and the MQTT outbox
(edge.outbox) publishes them from the writer's durable batches, replaying from the ledger
what a broker outage or a restart kept from it.
At start the state is rebased to the new run's ``node.start`` (:func:`edge.rules.state.rebase`):
time does not pass for rules while the node is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from edge import __version__, failpoints
from edge.alerts import Alert, AlertPublisher
from edge.beat import Beat
from edge.config import NodeConfig
from edge.config_alarm import ConfigAlarm
from edge.control import ControlServer
from edge.drivers import BusPoller, build_pollers, gaps_body
from edge.errors import EdgeError, LedgerError, StorageError
from edge.failpoints import hit
from edge.health import HealthRegistry, NodeHealth
from edge.ledger_bridge import EntryArgs, LedgerBridge
from edge.log import event
from edge.node_commands import OperatorCommands
from edge.node_metrics import NodeParts, node_source
from edge.node_rules import RuleSets
from edge.node_types import NodeSummary, Observer, RuleEvent
from edge.outbox import OutboxStats
from edge.outbox_metrics import outbox_source
from edge.readings import Reading
from edge.readings_budget import CHECK_EVERY, ReadingsBudget
from edge.rules import (
    Engine,
    EngineState,
    Transition,
)
from edge.rules.state import rebase
from edge.telemetry import Telemetry

if TYPE_CHECKING:
    from edge.sync import SyncService

__all__ = ["Node", "NodeSummary", "Observer"]


class Node(OperatorCommands, RuleSets):
    """A running gateway: acquisition, rules, ledger and alerts under one supervisor.

    Its operator commands are in :mod:`edge.node_commands`, its rule-set reload in
    :mod:`edge.node_rules` (mixins of this class).

    Args:
        config: the validated node config.
        observer: console callbacks (optional).
        tick: how often the rules are evaluated with no readings (delays, stale data), seconds.
    """

    def __init__(
        self,
        config: NodeConfig,
        *,
        observer: Observer | None = None,
        tick: float = 0.25,
        freeze_gc: bool = False,
    ) -> None:
        """A node of ``config``; ``edge run`` passes ``freeze_gc``: the process is the node's.

        Once started, everything loaded so far (modules, config, rules: about 39,000 objects
        that live as long as the node) is moved out of the cyclic collector's sight
        (``gc.freeze``), so its passes walk only what the running node allocates. Not for a
        process that starts many nodes (tests): a frozen cycle is never collected.
        """
        failpoints.check()
        self._freeze_gc = freeze_gc
        self.config = config
        self.observer = observer or Observer()
        self.summary = NodeSummary()
        self._tick = tick
        self._queue: asyncio.Queue[list[Reading] | None] = asyncio.Queue(config.queue_size)
        self._reload_requested = asyncio.Event()
        #: housekeeping that rides on the poll's wake-ups (edge.beat): pulsed per batch
        self.beat = Beat()
        #: the rules loop's wait for readings, while it waits (:meth:`_wake_rules`)
        self._idle: asyncio.Timeout | None = None
        self._ruleset = self._load_rules()
        self._engine = Engine(self._ruleset)
        # loaded from the ledger database when it is open (run())
        self._state: EngineState = self._engine.initial_state()
        self._pollers: list[BusPoller] = build_pollers(config)
        self._ledger = LedgerBridge(config)
        self._telemetry: Telemetry | None = None
        self._alerts: AlertPublisher | None = None
        if config.mqtt is not None:
            self._telemetry = _telemetry(config)
            self._alerts = AlertPublisher(
                config.mqtt,
                config.node_id,
                on_command=self.apply_command,
                operators=config.operators,
                telemetry=self._telemetry,
                beat=self.beat,
            )
        self._last_state_save = 0.0
        self._last_durable = -1  # seq of the newest urgent entry (what shutdown waits for)
        self._control = ControlServer(config.control_socket, self.apply_command, config.operators)
        #: per rule, the last transition that changed its state this run (``edge alarm list``:
        #: since when, the value, the message)
        self._last_change: dict[str, Transition] = {}
        self._config_alarm = ConfigAlarm()
        #: what /metrics and ``edge status`` read; other subsystems add their sources here
        self.health = HealthRegistry()
        self._health = NodeHealth(config.node_id, {n: p.device for n, p in config.points.items()})
        self.sync: SyncService | None = None  #: the sync task's service (its ``stats``)
        self._budget = ReadingsBudget(config.ledger, config.ledger_path)

    @property
    def alerts(self) -> AlertPublisher | None:
        """The MQTT side (its figures: ``alerts.stats``); None without ``[mqtt]``."""
        return self._alerts

    def request_reload(self) -> None:
        """Ask for the rule files to be re-read (SIGHUP)."""
        self._reload_requested.set()
        self._wake_rules()

    async def run(self, stop: asyncio.Event) -> NodeSummary:
        """Run until ``stop`` is set, then shut down in data-flow order; return the summary."""
        cfg = self.config
        led = self._ledger
        syncing = cfg.sync is not None and cfg.sync.enabled
        if syncing:  # before the writer opens: never append over a past that peers hold
            from edge.sync import restore_own_feed

            await restore_own_feed(cfg, on_alarm=self._sync_alarm)
        await led.open()
        self.health.add("node", node_source(NodeParts(
            self._health, __version__, self.summary, self._queue, self._pollers, led.writer,
            self._alerts, self._control, lambda: self._engine.alarm_states(self._state),
        )))  # fmt: skip
        if self._alerts is not None:
            self._alerts.attach(led.writer)  # before node.start: it sees every entry of the run
            self.health.add("outbox", outbox_source(self._alerts))
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(led.run(), name="ledger")
                await led.writer.room()
                # From here to the first yield: the state, node.start and the rule set are
                # appended together (see the module docstring).
                self._state = led.load_state(self._engine)
                previous = led.previous_run()  # closes the block a killed run left open
                config_change = led.config_change()  # against the last node.start
                started = time.time()
                body: dict[str, Any] = {"node_id": cfg.node_id, "site": cfg.site,
                                        "version": __version__, "config_hash": led.config_hash}  # fmt: skip
                if previous is not None:
                    body["previous_run"] = previous
                start = led.append_now(EntryArgs("node.start", body, started))
                if config_change is not None:
                    led.append_now(EntryArgs("config.change", config_change, started))
                self._record_ruleset(self._ruleset, started)
                # time does not pass for rules while the node is down: resume at node.start
                self._state = rebase(self._state, started)
                led.track_state(lambda: self._state)
                led.drop_legacy_state(start.seq)
                led.writer.commit_now()
                hit("node.started")
                alerts_task = None
                if self._alerts is not None:
                    alerts_task = tg.create_task(self._alerts.run(), name="alerts")
                rules_task = tg.create_task(self._evaluate(), name="rules")
                reload_task = tg.create_task(self._watch_rules(), name="rules-reload")
                control_task = tg.create_task(self._control.run(), name="control")
                stats_task = tg.create_task(self._log_stats(), name="stats")
                retention_task = tg.create_task(self._prune_readings(), name="retention")
                metrics_task = None
                if cfg.metrics is not None:
                    from edge.metrics import MetricsServer  # prometheus-client only when asked

                    server = MetricsServer(*cfg.metrics.address, self.health)
                    metrics_task = tg.create_task(server.run(), name="metrics")
                sync_task = tg.create_task(self._run_sync(), name="sync") if syncing else None
                budget_task = tg.create_task(self._enforce_budget(), name="disk-budget")
                polls = [
                    tg.create_task(p.run(self._emit), name=f"bus:{p.name}") for p in self._pollers
                ]
                event(
                    "node.started",
                    node=cfg.node_id,
                    buses=len(polls),
                    rules=len(self._ruleset.rules),
                )
                if self._freeze_gc:
                    gc.collect()
                    gc.freeze()

                await stop.wait()
                hit("node.stopping")
                event("node.stopping", node=cfg.node_id)
                for task in polls:
                    task.cancel()
                await asyncio.gather(*polls, return_exceptions=True)
                reload_task.cancel()
                control_task.cancel()
                stats_task.cancel()
                retention_task.cancel()
                if metrics_task is not None:
                    metrics_task.cancel()
                budget_task.cancel()
                await self._queue.put(None)  # end of data: the rules loop drains and returns
                await rules_task
                await self._record_gaps()
                await led.writer.room()
                # The last readings' digest goes before node.stop: nothing of a run comes after it.
                led.flush_readings()
                stop_entry = led.append_now(EntryArgs("node.stop", {"reason": "stop requested"},
                                                      time.time()))  # fmt: skip
                led.state_changed()
                led.writer.commit_now()
                with contextlib.suppress(TimeoutError, LedgerError):
                    async with asyncio.timeout(10.0):  # the disk may be stuck: close() says so
                        await led.writer.durable(stop_entry.seq)  # alerts are offered by then
                if sync_task is not None:
                    if self.sync is not None:  # node.stop and what came before it, to peers
                        await self.sync.flush(grace=1.0)
                    sync_task.cancel()
                if self._alerts is not None and alerts_task is not None:
                    await self._alerts.close(grace=1.0)  # offline, cursors stored
                    alerts_task.cancel()
                await led.close()
        finally:
            await self._ledger.abort()
        s = self.summary
        s.ledger_entries = self._ledger.committed
        s.bus_stats = {p.name: p.stats() for p in self._pollers}
        if self._alerts is not None:
            s.alerts_published = self._alerts.published
            s.telemetry_dropped = self._alerts.stats.telemetry_dropped
        event("node.stopped", node=cfg.node_id, readings=s.readings, events=s.events,
              ledger_entries=s.ledger_entries)  # fmt: skip
        return s

    # -- sync ---------------------------------------------------------------------------------

    async def _run_sync(self) -> None:
        from edge.sync import make_service
        from edge.sync.metrics import sync_source

        try:
            self.sync = make_service(self.config, on_alarm=self._sync_alarm,
                                     writer=self._ledger.writer)  # fmt: skip
            self.health.add("sync", sync_source(self.sync.stats))
            await self.sync.run()
        except EdgeError as exc:  # the node keeps acquiring and recording without sync
            event("sync.stopped", logging.ERROR, error=str(exc))

    def _sync_alarm(self, kind: str, fields: dict[str, Any]) -> None:
        """A fork, a tampered feed, a rollback: to the operators' broker (it is logged already)."""
        if self._alerts is not None:
            self._alerts.offer(Alert(f"sync/{kind}", {"alarm": kind, **fields}))

    # -- stages -------------------------------------------------------------------------------

    async def _emit(self, readings: list[Reading]) -> None:
        """Called by pollers: hand a batch to the rules, waiting when the queue is full."""
        if self._queue.full():
            self.summary.batches_blocked += 1
        self._health.observe(readings)
        await self._queue.put(readings)

    def _idle_limit(self) -> float | None:
        """How long the rules may wait for readings before stepping anyway (None: for them).

        A step without readings is a tick: it only fires timers (delays, stale data, shelve
        expiry) and moves the engine's clock. With no timer running (``next_due`` infinite:
        the engine's lower bound of every rule's next timer), a tick can change nothing, so
        the loop sleeps until readings come or something wakes it (:meth:`_wake_rules`: an
        operator command, a reload request). At 1 s polls that is three wakeups a second
        fewer. With a timer running the ticks come every ``tick`` as before.
        """
        if self._reload_requested.is_set():
            return 0.0
        return None if self._state.next_due == math.inf else self._tick

    def _wake_rules(self) -> None:
        """Make a rules loop waiting for readings step now (the state or the rules changed)."""
        idle = self._idle
        if idle is not None and not idle.expired():
            idle.reschedule(asyncio.get_running_loop().time())

    async def _evaluate(self) -> None:
        led = self._ledger
        while True:
            batch: list[Reading] | None = []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._idle_limit()) as self._idle:
                    batch = await self._queue.get()
            self._idle = None
            if batch is None:
                return
            self.beat.pulse(asyncio.get_running_loop().time())
            # Room first: from here to the end of the step nothing yields, so a batch is never
            # cut between a state change and the entries that record it.
            await led.writer.room()
            now = time.time()
            if batch:
                self.summary.readings += len(batch)
                led.add_readings(batch)
                if self.observer.on_readings:
                    self.observer.on_readings(batch)
                if self._telemetry is not None:
                    self._telemetry.offer(batch)
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                await self._reload(now)
            self._state, events = self._engine.step(self._state, batch, now)
            hit("engine.stepped")
            urgent = False
            for ev in events:
                urgent = self._record(ev) or urgent
            if events:
                hit("entry.queued")
            if events or batch or now - self._last_state_save > 1.0:
                # Readings move lot sums and SPC counters too; timer-only progress is stored
                # once a second. Either way it rides with a batch (no write of its own).
                led.state_changed()
                self._last_state_save = now
            if urgent:
                led.writer.commit_now()

    def _record(self, ev: RuleEvent, comment: str = "") -> bool:
        """Append the entry of ``ev`` now (no waiting: the caller made room).

        Its console output leaves once the entry is durable (the MQTT outbox sees it then
        too, from the writer's durable batches). Returns True when it is
        urgent (always, for now: transitions, operator actions and lot records are what someone
        waits for).
        """
        self.summary.events += 1
        led = self._ledger
        if isinstance(ev, Transition):
            if ev.from_state != ev.to_state:
                self._last_change[ev.rule] = ev
            if ev.event == "activated":
                self.summary.activated += 1
            elif ev.event == "cleared":
                self.summary.cleared += 1
            entry = led.append_now(led.transition_entry(ev, comment))
        else:
            entry = led.append_now(led.lot_entry(ev))
        self._last_durable = entry.seq
        led.writer.on_durable(entry.seq, lambda: self._announce(ev))
        return True

    def _announce(self, ev: RuleEvent) -> None:
        """The outputs of an event whose entry is durable (the outbox has it already), console."""
        if self._alerts is not None:
            hit("alert.published")
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

    async def _enforce_budget(self) -> None:
        """Prune the oldest raw blocks when the disk budget is reached; raise/clear its alarm."""
        while self._budget.enabled:
            await asyncio.sleep(CHECK_EVERY)
            try:
                change = await self._budget.check(self._ledger.writer, time.time())
            except StorageError as exc:  # disk trouble: logged each round, the next one retries
                event("ledger.readings_budget_failed", logging.ERROR, error=str(exc))
                continue
            if change is not None:
                self._record(change)
                self._ledger.writer.commit_now()

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
                outbox_depth=alerts.pending if alerts else 0,
                outbox_delivered=alerts.published if alerts else 0,
                telemetry_dropped=alerts.stats.telemetry_dropped if alerts else 0,
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


def _telemetry(config: NodeConfig) -> Telemetry | None:
    """The telemetry queue of ``[mqtt] telemetry`` (points, or every point of a device)."""
    mqtt = config.mqtt
    if mqtt is None or not mqtt.telemetry:
        return None
    chosen = set(mqtt.telemetry)
    points = [n for n, p in config.points.items() if n in chosen or p.device in chosen]
    device_of = {n: p.device for n, p in config.points.items()}
    return Telemetry(points, device_of, OutboxStats(), max_queued=mqtt.telemetry_max_queued)
