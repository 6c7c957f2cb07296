"""Recorded CSV parsing and saved timelines (the pieces behind ``edge rules test``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from edge.errors import ConfigError
from edge.readings import Quality
from edge.rules.recorded import format_time, parse_rows, parse_time, read_csv
from edge.rules.timeline import diff, dump_timeline, load_timeline, render


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1763892000.25", 1763892000.25),
        ("0", 0.0),
        ("2026-11-23T10:00:00Z", dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC).timestamp()),
        ("2026-11-23T10:00:00", dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC).timestamp()),
        ("2026-11-23T11:00:00+01:00", dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC).timestamp()),
        (
            "2026-11-23 10:00:00.250z",
            dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC).timestamp() + 0.25,
        ),
    ],
)
def test_parse_time(text: str, expected: float) -> None:
    assert parse_time(text) == expected


def test_parse_time_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="bad time 'soon'"):
        parse_time("soon")


def test_format_time_round_trips_to_the_millisecond() -> None:
    ts = dt.datetime(2026, 11, 23, 10, 0, 2, 500000, tzinfo=dt.UTC).timestamp()
    assert format_time(ts) == "2026-11-23T10:00:02.500Z"
    assert parse_time(format_time(ts)) == ts


def test_rows_are_typed_and_sorted_stably() -> None:
    rows = [
        ["ts", "point", "value", "quality"],
        ["# a comment row"],
        ["2", "b", "1.5"],
        [],
        ["1", "lot_code", "0042"],
        ["1", "a", "0042"],
        ["2", "a", "", "comm_fail"],
        ["1", "flag", "TRUE", "good"],
        ["1", "name", "abc", "STALE"],
    ]
    readings = parse_rows(rows, "x.csv", text_points={"lot_code"})
    assert [(r.ts, r.point, r.value, r.quality) for r in readings] == [
        (1.0, "lot_code", "0042", Quality.GOOD),
        (1.0, "a", 42.0, Quality.GOOD),
        (1.0, "flag", True, Quality.GOOD),
        (1.0, "name", "abc", Quality.STALE),
        (2.0, "b", 1.5, Quality.GOOD),
        (2.0, "a", None, Quality.COMM_FAIL),
    ]


def test_bad_rows_are_all_reported_up_to_twenty() -> None:
    rows = [["x", "p", "1"]] * 25
    with pytest.raises(ConfigError) as info:
        parse_rows(rows, "x.csv")
    assert len(info.value.problems) == 21
    assert info.value.problems[0].startswith("x.csv:1: bad time 'x'")
    assert info.value.problems[-1] == "x.csv: ... and 5 more bad rows"


def test_empty_point_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"x.csv:1: empty point name"):
        parse_rows([["1", " ", "2"]], "x.csv")
    with pytest.raises(ConfigError, match="cannot read: No such file"):
        read_csv(tmp_path / "nope.csv")


def test_timeline_round_trip_and_diff(tmp_path: Path) -> None:
    items = [
        {
            "at": "2026-11-23T10:00:03.000Z",
            "rule": "r",
            "point": "p",
            "event": "activated",
            "state": "active_unack",
            "value": 8.6,
            "limit": 8.0,
            "lot": None,
        },
        {
            "at": "2026-11-23T10:00:09.000Z",
            "event": "lot_end",
            "lot": "L1",
            "passed": False,
            "failed": ["lot-rule: cpk >= 1.33 (got 0.91)"],
        },
    ]
    path = tmp_path / "t.yaml"
    dump_timeline(items, path, header="hello\nworld")
    assert path.read_text(encoding="utf-8").startswith("# hello\n# world\n- {")
    loaded = load_timeline(path)
    assert loaded == items
    assert diff(loaded, items, "t.yaml") == []
    # float noise below six significant digits is not a difference; a real change is
    noisy = [dict(items[0], value=8.6000000001), items[1]]
    assert diff(items, noisy, "t.yaml") == []
    changed = [dict(items[0], value=8.7), items[1]]
    lines = diff(items, changed, "t.yaml")
    assert lines[:2] == ["--- t.yaml", "+++ actual"]
    assert f"-{render(items[0])}" in lines
    assert f"+{render(changed[0])}" in lines
    assert render(items[1]) == (
        "at=2026-11-23T10:00:09.000Z  event=lot_end  lot=L1  passed=False  "
        "failed=[lot-rule: cpk >= 1.33 (got 0.91)]"
    )


def test_empty_timeline(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    dump_timeline([], path)
    assert load_timeline(path) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- {a: 1\n", "invalid YAML"),
        ("a: 1\n", "not a timeline"),
        ("- 1\n", "not a timeline"),
    ],
)
def test_bad_timeline_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as info:
        load_timeline(path)
    assert str(info.value).startswith(str(path))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("ts", ["nan", "inf", "-inf", "1e300"])
def test_a_time_that_is_not_a_finite_date_is_a_bad_row_not_a_hang(tmp_path: Path, ts: str) -> None:
    # nan and inf used to hang `edge rules test --data` (the replay clock never reached them)
    path = tmp_path / "rec.csv"
    path.write_text(f"ts,point,value\n{ts},p,4\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        read_csv(path)
    assert str(err.value) == (
        f"{path}:2: bad time '{ts}' (epoch seconds must be a finite time in years 1..9999)"
    )


def test_a_csv_that_is_not_utf8_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "rec.csv"
    path.write_bytes(b"ts,point,value\n1,caf\xe9,4\n")
    with pytest.raises(ConfigError) as err:
        read_csv(path)
    assert str(err.value) == (
        f"{path}:2:6: not UTF-8 text (byte 0xe9 at offset 20: invalid continuation byte); "
        "a recorded CSV is UTF-8 text"
    )
