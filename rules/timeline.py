"""Saved timelines for ``edge rules test --expect``: events as plain entries, compared line by line.

A timeline file is YAML, one flow mapping per event (JSON syntax, so it diffs well)::

    # edge rules test timeline: rules tunnel.yaml, data recorded.csv
    - {"at": "2026-11-23T10:00:03.000Z", "rule": "tunnel-temp-high", "point": "tunnel_temp", ...}

Comparison is on :func:`render` of each entry: times to the millisecond, numbers to six
significant digits, so a timeline survives harmless float noise but not a changed result.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from edge.errors import ConfigError
from edge.rules.alarms import Transition
from edge.rules.engine import Event
from edge.rules.lots import LotEvent
from edge.rules.recorded import format_time

__all__ = ["diff", "dump_timeline", "entries", "load_timeline", "render"]

_FIELDS = ("at", "rule", "point", "event", "state", "value", "limit", "lot", "passed", "failed")


def _num(value: float | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    return float(f"{value:.6g}")


def _failed(event: LotEvent) -> list[str]:
    out = []
    for check in event.checks:
        if not check.passed:
            got = "none" if check.value is None else f"{check.value:.6g}"
            out.append(
                f"{check.rule}: {check.text or f'{check.stat} {check.op} {check.limit:g}'}"
                f" (got {got})"
            )
    return out


def entries(events: Sequence[Event]) -> list[dict[str, Any]]:
    """Events as plain entries (what a timeline file holds)."""
    out: list[dict[str, Any]] = []
    for ev in events:
        if isinstance(ev, Transition):
            out.append(
                {
                    "at": format_time(ev.ts),
                    "rule": ev.rule,
                    "point": ev.point,
                    "event": ev.event,
                    "state": str(ev.to_state),
                    "value": _num(ev.value),
                    "limit": _num(ev.limit),
                    "lot": ev.lot,
                }
            )
        else:
            entry: dict[str, Any] = {"at": format_time(ev.ts), "event": ev.kind, "lot": ev.lot}
            if ev.kind == "lot_end":
                entry["passed"] = ev.passed
                entry["failed"] = _failed(ev)
            out.append(entry)
    return out


def render(entry: dict[str, Any]) -> str:
    """One line per entry, fields in a fixed order; the unit of comparison."""
    parts = []
    for key in _FIELDS:
        if key not in entry:
            continue
        value = entry[key]
        if isinstance(value, float):
            value = f"{value:.6g}"
        elif isinstance(value, list):
            value = "[" + "; ".join(str(v) for v in value) + "]"
        elif value is None:
            value = "-"
        parts.append(f"{key}={value}")
    extra = sorted(set(entry) - set(_FIELDS))
    parts.extend(f"{key}={entry[key]}" for key in extra)
    return "  ".join(parts)


def dump_timeline(items: Sequence[dict[str, Any]], path: str | Path, header: str = "") -> None:
    """Write a timeline file (replacing it)."""
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    lines.extend("- " + json.dumps(item, ensure_ascii=False) for item in items)
    if not items:
        lines.append("[]")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_timeline(path: str | Path) -> list[dict[str, Any]]:
    """Read a timeline file.

    Raises:
        ConfigError: unreadable, not YAML, or not a list of mappings (one line, with the file).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(
            f"{path}: cannot read: {reason or exc} (create it with --update)"
        ) from None
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        return []
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise ConfigError(f"{path}: not a timeline (expected a list of event mappings)")
    return [dict(e) for e in data]


def diff(
    expected: Sequence[dict[str, Any]], actual: Sequence[dict[str, Any]], expected_name: str
) -> list[str]:
    """Unified diff of the rendered timelines; empty when they agree."""
    want = [render(e) for e in expected]
    got = [render(e) for e in actual]
    if want == got:
        return []
    return list(
        difflib.unified_diff(want, got, fromfile=expected_name, tofile="actual", lineterm="", n=2)
    )
