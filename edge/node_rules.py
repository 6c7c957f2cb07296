"""The node's rule sets: load, record, watch and hot-reload them; a part of :class:`edge.runtime.Node`.

:class:`RuleSets` is a mixin of :class:`~edge.runtime.Node`: the attributes declared below are
the node's (set in ``Node.__init__``); the methods moved here from the runtime so it stays
about supervising tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edge.beat import Beat
from edge.config import NodeConfig
from edge.config_alarm import ConfigAlarm
from edge.errors import ConfigError
from edge.ledger_bridge import EntryArgs, LedgerBridge
from edge.log import event
from edge.rules import AlarmState, Engine, EngineState, RuleSet, Transition, load_rules

if TYPE_CHECKING:
    from edge.node_types import NodeSummary, Observer, RuleEvent

__all__ = ["RuleSets"]


class RuleSets:
    """The running rule set of a node and its validated hot reload (file change or SIGHUP)."""

    # the node's (edge.runtime.Node.__init__)
    config: NodeConfig
    observer: Observer
    summary: NodeSummary
    _ledger: LedgerBridge
    _ruleset: RuleSet
    _engine: Engine
    _state: EngineState
    _config_alarm: ConfigAlarm
    _reload_requested: asyncio.Event
    beat: Beat

    if TYPE_CHECKING:

        def _record(self, ev: RuleEvent, comment: str = "") -> bool: ...

        def request_reload(self) -> None:
            """Ask for the rule files to be re-read (the node's)."""

    # -- rule sets ----------------------------------------------------------------------------

    def _load_rules(self) -> RuleSet:
        return load_rules(
            self.config.rules.files, known_points={n: p.unit for n, p in self.config.points.items()}
        )

    def _record_ruleset(self, ruleset: RuleSet, now: float) -> None:
        # appended now, without yielding: the state of the new rule set goes in its batch
        self._ledger.append_now(EntryArgs(
            "rules.change",
            {"hash": ruleset.hash, "files": [str(f) for f in self.config.rules.files],
             "rules": [r.id for r in ruleset.rules]}, now,
        ))  # fmt: skip

    async def _watch_rules(self) -> None:
        """Poll the rule files' modification times; a change (or SIGHUP) requests a reload.

        About once a second, in a poll's wake-up (:mod:`edge.beat`); every 2 s at the latest.
        """
        if not self.config.rules.reload:
            return
        seen = _mtimes(self.config.rules.files)
        while True:
            await self.beat.sleep(1.0, 2.0)
            now = _mtimes(self.config.rules.files)
            if now != seen:
                seen = now
                self.request_reload()

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
                self._record(change)
                self._ledger.writer.commit_now()
            if self.observer.on_message:
                self.observer.on_message(f"rule reload rejected: {first}")
            return
        self._config_alarm, change = self._config_alarm.accepted(now)
        if change is not None:
            self._record(change)
            self._ledger.writer.commit_now()
        if ruleset.hash == self._ruleset.hash:
            return
        before = self._engine.alarm_states(self._state)
        old_rules = {r.id: r for r in self._ruleset.rules}
        self._engine, self._state = self._engine.reload(self._state, ruleset)
        self._ruleset = ruleset
        self.summary.reloads += 1
        self._record_ruleset(ruleset, now)
        after = self._engine.alarm_states(self._state)
        for rid, was in before.items():
            now_state = after.get(rid)
            if was is AlarmState.NORMAL or (
                now_state is not None and now_state is not AlarmState.NORMAL
            ):
                continue
            rule = old_rules[rid]
            why = "its rule was removed" if now_state is None else "its rule was changed"
            self._record(
                Transition(
                    rule=rid, kind=rule.kind, point=rule.point, severity=rule.severity.value,
                    from_state=was, to_state=AlarmState.NORMAL, event="reset", value=None,
                    limit=None, lot=self._state.lot, ts=now,
                    message=f"reset to normal by a rule reload: {why} (rule set {ruleset.hash[:12]})",
                )
            )  # fmt: skip
        # the new rule set's state goes with its rules.change (and resets): no yield since
        self._ledger.state_changed()
        self._ledger.writer.commit_now()
        event("rules.reloaded", hash=ruleset.hash[:16], rules=len(ruleset.rules))
        if self.observer.on_message:
            self.observer.on_message(
                f"rules reloaded: {len(ruleset.rules)} rules, hash {ruleset.hash[:12]}"
            )


def _mtimes(files: Sequence[Path]) -> tuple[float, ...]:
    out = []
    for f in files:
        try:
            out.append(f.stat().st_mtime)
        except OSError:
            out.append(-1.0)
    return tuple(out)
