"""What every ``edge`` command prints the same way: failures, local times, JSON.

- A failure is one line: ``edge: <message>`` on stderr in text mode; with ``--json`` one JSON
  object ``{"ok": false, "error": "<message>"}`` on stdout (where the program reading the JSON
  looks) instead. Either way a non-zero exit status.
- Times people read are local, with the date only when it is not today; ``--json`` keeps the raw
  epoch seconds.

Light on purpose (no rich, no orjson at import): command modules import it at the top.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, NoReturn

import click

__all__ = ["dump_json", "fail", "local_time", "timezone_name"]


def dump_json(value: Any, *, indent: bool = False) -> str:
    """JSON text of ``value`` (UTF-8, keys in their order)."""
    return json.dumps(value, ensure_ascii=False, indent=2 if indent else None)


def fail(message: str, *, as_json: bool = False, code: int = 1) -> NoReturn:
    """End the command with ``message`` (its first line) and exit status ``code``."""
    line = (message.splitlines() or [""])[0]
    if as_json:
        click.echo(dump_json({"ok": False, "error": line}))
    else:
        click.echo(f"edge: {line}", err=True)
    sys.exit(code)


def local_time(ts: float | None, now: float) -> str:
    """``14:03:07`` today, ``12-02 14:03`` this year, ``2025-12-02 14:03`` before; ``-`` for None."""
    if ts is None:
        return "-"
    at, today = time.localtime(ts), time.localtime(now)
    if at[:3] == today[:3]:
        return time.strftime("%H:%M:%S", at)
    if at.tm_year == today.tm_year:
        return time.strftime("%m-%d %H:%M", at)
    return time.strftime("%Y-%m-%d %H:%M", at)


def timezone_name(now: float) -> str:
    """The local zone as people read it: ``CET, UTC+01:00``."""
    at = time.localtime(now)
    offset = at.tm_gmtoff or 0
    sign = "+" if offset >= 0 else "-"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return f"{at.tm_zone}, UTC{sign}{hours:02d}:{minutes:02d}"
