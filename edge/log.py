"""Structured logs: one line per event, ``key=value`` pairs a person can read and a program can parse.

Example::

    ts=2026-11-23T10:31:40.123Z level=warning event=device.backoff bus=rs485-1 device=tunnel unit=1 retry_in=4s

Every module logs through :func:`event` with an event name (``area.what``) and fields, never with
free text: grep and log shippers need stable keys.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

__all__ = ["configure", "event", "format_fields"]

_LOGGER = logging.getLogger("edge")


def _quote(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return text


def format_fields(fields: dict[str, Any]) -> str:
    """Render fields as ``k=v`` pairs, quoting values with spaces, quotes or ``=``."""
    return " ".join(f"{k}={_quote(v)}" for k, v in fields.items())


class _KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        fields.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[1] is not None:
            fields["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return format_fields(fields)


def configure(level: str = "info", stream: Any = None) -> None:
    """Send edge's logs to ``stream`` (stderr by default) as key=value lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_KeyValueFormatter())
    _LOGGER.handlers[:] = [handler]
    _LOGGER.setLevel(level.upper())
    _LOGGER.propagate = False


def event(name: str, level: int = logging.INFO, /, **fields: Any) -> None:
    """Log one event with its fields (``event("bus.reopen", bus="rs485-1", attempt=3)``)."""
    if _LOGGER.isEnabledFor(level):
        _LOGGER.log(level, name, extra={"fields": fields})
