"""Recorded data for ``edge rules test`` / ``explain``: a CSV of readings, and times as text.

The CSV has one reading per row, ``ts,point,value[,quality]``, with an optional header row
(``ts,point,value,quality``). ``ts`` is ISO-8601 (``2026-11-23T10:00:00.250Z``; a time without
offset is UTC) or epoch seconds (``1763892000.25``). ``value`` is a number when it reads as one,
``true``/``false`` for booleans, empty for no value, anything else is text (lot codes).
``quality`` is ``good`` (default), ``stale``, ``comm_fail`` or ``config_error``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Collection, Iterable
from pathlib import Path

from edge.errors import ConfigError
from edge.readings import Quality, Reading, Value

__all__ = ["format_time", "parse_rows", "parse_time", "read_csv"]

_QUALITIES = {q.value: q for q in Quality}
_MAX_PROBLEMS = 20
#: the epoch seconds a datetime can show (0001-01-01 .. 9999-12-31 UTC)
_FIRST = dt.datetime(1, 1, 1, tzinfo=dt.UTC).timestamp()
_LAST = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC).timestamp()


def parse_time(text: str) -> float:
    """Epoch seconds from ISO-8601 (naive = UTC) or from a number of epoch seconds.

    Raises:
        ValueError: the text is neither.
    """
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        # nan and inf would hang the replay's clock; a time outside years 1..9999 cannot be shown
        if not _FIRST <= seconds <= _LAST:  # nan fails both comparisons
            raise ValueError(
                f"bad time {text!r} (epoch seconds must be a finite time in years 1..9999)"
            )
        return seconds
    try:
        moment = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"bad time {text!r} (expected ISO-8601 like 2026-11-23T10:00:00Z or epoch seconds)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def format_time(ts: float) -> str:
    """``2026-11-23T10:00:02.500Z``: UTC, milliseconds."""
    moment = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _value(text: str, as_text: bool) -> Value | None:
    text = text.strip()
    if not text:
        return None
    if as_text:
        return text
    try:
        number = float(text)
    except ValueError:
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return text
    return number


def parse_rows(
    rows: Iterable[list[str]], name: str, text_points: Collection[str] = ()
) -> list[Reading]:
    """Readings from CSV rows, sorted by time (rows with equal times keep their order).

    Args:
        rows: the CSV rows.
        name: the file name for messages.
        text_points: points whose values stay text even when they read as numbers (the lot
            point: lot ``0042`` is not the number 42).

    Raises:
        ConfigError: ``name:LINE: problem`` for every bad row (the first twenty).
    """
    readings: list[Reading] = []
    problems: list[str] = []
    for number, row in enumerate(rows, start=1):
        if not row or all(not cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue
        if number == 1 and row[0].strip().lower() in ("ts", "time", "timestamp"):
            continue
        if len(row) not in (3, 4):
            problems.append(
                f"{name}:{number}: expected ts,point,value[,quality], got {len(row)} columns"
            )
            continue
        try:
            ts = parse_time(row[0])
        except ValueError as exc:
            problems.append(f"{name}:{number}: {exc}")
            continue
        point = row[1].strip()
        if not point:
            problems.append(f"{name}:{number}: empty point name")
            continue
        quality = Quality.GOOD
        if len(row) == 4 and row[3].strip():
            q = row[3].strip().lower()
            if q not in _QUALITIES:
                problems.append(
                    f"{name}:{number}: unknown quality {row[3].strip()!r} (one of: "
                    f"{', '.join(_QUALITIES)})"
                )
                continue
            quality = _QUALITIES[q]
        readings.append(
            Reading(point=point, ts=ts, value=_value(row[2], point in text_points), quality=quality)
        )
    if problems:
        extra = len(problems) - _MAX_PROBLEMS
        shown = problems[:_MAX_PROBLEMS]
        if extra > 0:
            shown.append(f"{name}: ... and {extra} more bad rows")
        raise ConfigError(shown)
    readings.sort(key=lambda r: r.ts)
    return readings


def read_csv(path: str | Path, text_points: Collection[str] = ()) -> list[Reading]:
    """Read a recorded CSV (see the module docstring), sorted by time.

    ``text_points``: see :func:`parse_rows`.

    Raises:
        ConfigError: the file cannot be read, or rows are bad (``file:line: problem``).
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:  # with its place, as rule files and node.toml say it
        start = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        line = raw.count(b"\n", 0, start) + 1
        col = start - (raw.rfind(b"\n", 0, start) + 1) + 1
        raise ConfigError(
            f"{path}:{line}:{col}: not UTF-8 text (byte 0x{raw[start]:02x} at offset {start}: "
            f"{exc.reason}); a recorded CSV is UTF-8 text"
        ) from None
    return parse_rows(csv.reader(io.StringIO(text)), str(path), text_points)
