"""Failpoints: named places where a test can have the process SIGKILL itself.

Crash testing in the spirit of SQLite's: a record could be lost between two steps, so a test
switches on the failpoint between them and a real process dies exactly there. Switched on by
the environment of the process (inherited by the commit process)::

    EDGE_FAILPOINTS=name[:N][,name[:N]...]

``name`` dies at its first hit, ``name:N`` at its N-th (counted per process). Unset, :func:`hit`
is a function that returns at once (chosen at import: no lookup, no parsing on the hot path).

Dying means ``SIGKILL``, nothing flushed, no ``finally`` run. With the default commit thread the
node is the process that dies. In a commit process (``commit_worker = "process"``), the parent
(the node) is killed first and then the child: a power cut takes both, and a node whose commit
process vanished alone is covered by the writer's retry path (tests/ledger/test_commit_process).

Names (:data:`POINTS`; a name not listed here is refused at startup so a typo cannot make a
crash test pass vacuously).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable

from edge.errors import ConfigError

__all__ = ["ENV", "POINTS", "FailpointError", "check", "hit", "kill_parent_too", "parse"]

ENV = "EDGE_FAILPOINTS"

#: Every failpoint, with where it is.
POINTS: dict[str, str] = {
    "engine.stepped": "runtime: the engine stepped and produced events, nothing of them queued",
    "entry.queued": "runtime: a rule event's entry is queued in the writer, its state not yet",
    "state.queued": "runtime: the engine state that reflects queued events is queued too",
    "batch.cut": "writer: a batch (entries, readings, state) was cut, not yet sent to disk",
    "batch.durable": "writer: a batch is durable; its alerts and console output not yet out",
    "alert.published": "runtime: an alert was handed to the MQTT publisher",
    "readings.staged": "writer: raw readings were staged for the next batch, not yet durable",
    "readings.flush": "runtime: during a readings flush, the open block closed, its digest queued",
    "commit.begin": "commit worker: inside the batch transaction, before its first statement",
    "commit.entries": "commit worker: entries inserted, readings and state not yet",
    "commit.readings": "commit worker: readings inserted, engine state not yet",
    "commit.before_commit": "commit worker: every statement done, COMMIT not yet issued",
    "commit.after_commit": "commit worker: COMMIT returned (durable), the reply not yet sent",
    "journal.appended": "commit journal: a record written to the file, fdatasync not yet done",
    "journal.synced": "commit journal: a record durable (fdatasync returned), not yet acknowledged",
    "journal.moved": "commit journal: its records moved into SQLite (COMMIT), not yet truncated",
    "journal.sealed": "ledger opening: a killed run's unsigned journal entries moved and signed, "
    "COMMIT not yet issued",
    "node.started": "runtime: node.start and the rule set are queued, polling not yet started",
    "node.stopping": "runtime: a stop was requested, the shutdown sequence not yet run",
}


class FailpointError(ConfigError):
    """``EDGE_FAILPOINTS`` names an unknown failpoint or a bad count."""


def parse(spec: str) -> dict[str, int]:
    """``"a,b:3"`` -> ``{"a": 1, "b": 3}`` (the hit on which each point kills).

    Raises:
        FailpointError: an unknown name or a count that is not a positive integer.
    """
    out: dict[str, int] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, count = item.partition(":")
        if name not in POINTS:
            raise FailpointError(f"{ENV}: unknown failpoint {name!r}")
        try:
            n = int(count) if count else 1
        except ValueError:
            n = 0
        if n < 1:
            raise FailpointError(f"{ENV}: {item!r}: the count must be a positive integer")
        out[name] = n
    return out


def _die(name: str) -> None:
    del name
    if _IN_CHILD_OF is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(_IN_CHILD_OF, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _armed(points: dict[str, int]) -> Callable[[str], None]:
    remaining = dict(points)

    def hit(name: str) -> None:
        left = remaining.get(name)
        if left is None:
            return
        if left <= 1:
            _die(name)
        remaining[name] = left - 1

    return hit


def _off(name: str) -> None:
    del name


#: Set by the commit process: the node's pid, killed with it (see the module docstring).
_IN_CHILD_OF: int | None = None


def kill_parent_too(parent: int) -> None:
    """Called by a child process: a failpoint hit there kills ``parent`` first."""
    global _IN_CHILD_OF
    _IN_CHILD_OF = parent


def check() -> None:
    """Raise the error of a bad ``EDGE_FAILPOINTS`` (``edge run`` calls it at startup).

    Raises:
        FailpointError: see :func:`parse`.
    """
    if _ERROR is not None:
        raise _ERROR


def _load() -> tuple[Callable[[str], None], FailpointError | None]:
    spec = os.environ.get(ENV, "")
    if not spec:
        return _off, None
    try:
        return _armed(parse(spec)), None
    except FailpointError as exc:  # reported by check(): importing must not fail
        return _off, exc


#: ``hit(name)``: die here when ``name`` is armed (see the module docstring).
hit, _ERROR = _load()
