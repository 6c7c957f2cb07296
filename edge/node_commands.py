"""The node's operator commands (control socket or MQTT) and its alarm list: a part of :class:`edge.runtime.Node`.

:class:`OperatorCommands` is a mixin of :class:`~edge.runtime.Node`: the attributes declared
below are the node's (set in ``Node.__init__``); the methods moved here from the runtime so
it stays about supervising tasks.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from edge.commands import OperatorCommand
from edge.config import NodeConfig
from edge.config_alarm import CONFIG_RULE, ConfigAlarm
from edge.errors import LedgerError
from edge.failpoints import hit
from edge.health import HealthRegistry
from edge.ledger_bridge import LedgerBridge
from edge.readings_budget import ReadingsBudget
from edge.rules import AlarmStats, Engine, EngineState, Transition
from edge.storage_alarm import STORAGE_RULE

if TYPE_CHECKING:
    from edge.node_types import RuleEvent

__all__ = ["OperatorCommands"]


class OperatorCommands:
    """Operator commands on a running node: ack, shelve, suppress, correct, prune, status."""

    # the node's (edge.runtime.Node.__init__)
    config: NodeConfig
    health: HealthRegistry
    _ledger: LedgerBridge
    _engine: Engine
    _state: EngineState
    _last_durable: int
    _last_change: dict[str, Transition]
    _config_alarm: ConfigAlarm
    _budget: ReadingsBudget

    if TYPE_CHECKING:

        def _record(self, ev: RuleEvent, comment: str = "") -> bool: ...

        def _wake_rules(self) -> None: ...

    # -- operator commands ------------------------------------------------------------------

    async def apply_command(self, cmd: OperatorCommand) -> dict[str, Any]:
        """Carry out an operator command (control socket or MQTT); record what it changed.

        Answers once what it changed is durable (with ``"durable": false`` when the disk did not
        commit it within 5 s: it stays queued).
        """
        if cmd.action == "health":
            return {"ok": True, "node": self.config.node_id,
                    "metrics": [m.json() for m in self.health.collect(time.time())]}  # fmt: skip
        if cmd.action == "sync":
            return {"ok": True, **await self._ledger.sync()}
        if cmd.action not in ("status", "correct", "prune_readings"):
            await self._ledger.writer.room()  # before the state changes (see _evaluate)
        now = time.time()
        eng, st = self._engine, self._state
        if cmd.action == "status":
            return {"ok": True, "node": self.config.node_id, "alarms": self._alarm_list(now)}
        if cmd.rule in (CONFIG_RULE, STORAGE_RULE):
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
        self._wake_rules()  # a shelve starts a timer: the rules loop may be waiting without one
        seqs = [-1]
        for ev in events:
            self._record(ev, comment=cmd.comment)
            seqs.append(self._last_durable)
        hit("entry.queued")
        writer = self._ledger.writer
        self._ledger.state_changed()
        writer.commit_now()
        durable = True
        if max(seqs) >= 0:
            try:
                async with asyncio.timeout(5.0):
                    await writer.durable(max(seqs))
            except (TimeoutError, LedgerError):
                durable = False
        answer: dict[str, Any] = {
            "ok": True,
            "events": [ev.event for ev in events if isinstance(ev, Transition)],
        }
        if not durable:  # recorded but not yet on disk (it stays queued): say so
            answer["durable"] = False
        return answer

    # -- alarm list -----------------------------------------------------------------------------

    def _alarm_list(self, now: float) -> dict[str, dict[str, Any]]:
        """``edge alarm list``'s data: every alarm's state and figures, raw (epoch seconds)."""
        out = {}
        for rid, s in self._engine.alarm_stats(self._state, now).items():
            out[rid] = _stats_json(s, self._last_change.get(rid))
        for rid, c in ((CONFIG_RULE, self._config_alarm), (STORAGE_RULE, self._budget.alarm)):
            out[rid] = {
                "state": str(c.state), "activations_10min": 0, "total": 0, "flood": False,
                "chattering": False, "shelved_until": None, "suppressed": False,
                "out_of_service": False, "since": c.since, "value": None, "limit": None,
                "unit": "", "message": c.message,
            }  # fmt: skip
        return out

    async def _config_alarm_command(self, cmd: OperatorCommand, now: float) -> dict[str, Any]:
        if cmd.action != "ack":
            return {"ok": False, "error": f"{cmd.rule} can only be acknowledged"}
        if cmd.rule == STORAGE_RULE:
            change = self._budget.acknowledge(cmd.actor, now)
        else:
            self._config_alarm, change = self._config_alarm.acknowledge(cmd.actor, now)
        if change is not None:
            self._record(change, comment=cmd.comment)
            self._ledger.writer.commit_now()
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
