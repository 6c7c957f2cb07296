"""``edge alarm list`` for people (80 columns, local times) and the ``config:rules`` lifecycle."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.cli.alarm import render_alarm_list
from edge.config_alarm import CONFIG_RULE, ConfigAlarm
from edge.rules import AlarmState

NOW = 1_796_404_800.0  # 2026-12-04 17:20 UTC, 18:20 in Berlin


@pytest.fixture(autouse=True)
def berlin() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def _alarm(state: str = "normal", **kw: Any) -> dict[str, Any]:
    base = {"state": state, "activations_10min": 0, "total": 0, "flood": False,
            "chattering": False, "shelved_until": None, "suppressed": False,
            "out_of_service": False, "since": None, "value": None, "limit": None, "unit": "",
            "message": ""}  # fmt: skip
    return {**base, **kw}


def test_two_long_similar_ids_stay_distinct_and_times_are_local() -> None:
    alarms = {
        "tunnel2-temperature-high-zone-a": _alarm(
            "active_unack", since=NOW - 30, value=9.123456, unit="degC",
            message="tunnel product temperature 9.12 degC above 8 degC",
        ),
        "tunnel2-temperature-high-zone-b": _alarm(
            "rtn_unack", since=NOW - 2 * 86400, value=7.2, unit="degC",
            shelved_until=NOW + 1800, message="back below 8 degC",
        ),
        CONFIG_RULE: _alarm(),
    }  # fmt: skip
    lines = render_alarm_list(alarms, NOW, node="gw1")
    text = "\n".join(lines)
    assert max(map(len, lines)) <= 80
    assert lines[0] == "3 alarms on gw1; times are local (CET, UTC+01:00)"
    a = next(x for x in lines if x.startswith("tunnel2-temperature-high-zone-a "))
    b = next(x for x in lines if x.startswith("tunnel2-temperature-high-zone-b "))
    assert a.split()[1:] == ["ACTIVE", "unacked", "18:19:30", "9.1235", "degC"]
    assert b.split()[1:] == ["returned", "unacked", "12-02", "18:20", "7.2", "degC"]
    assert "    back below 8 degC; shelved until 18:50:00" in lines
    assert "1796" not in text  # no epoch floats for people
    assert "…" not in text
    assert "..." not in text
    # attention first: active, then returned, then normal
    assert (
        lines.index(a)
        < lines.index(b)
        < next(i for i, x in enumerate(lines) if x.startswith(CONFIG_RULE))
    )
    assert any(x.startswith("returned unacked: the condition has gone") for x in lines)


def test_other_years_show_the_year_and_flags_are_words() -> None:
    alarms = {"r": _alarm("active_ack", since=NOW - 400 * 86400, suppressed=True,
                          out_of_service=True, flood=True, activations_10min=12)}  # fmt: skip
    lines = render_alarm_list(alarms, NOW)
    row = next(x for x in lines if x.startswith("r "))
    assert "2025-10-30 18:20" in row
    assert "    suppressed; out of service; 12x in 10 min; FLOOD" in lines


@given(
    ids=st.lists(
        st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=120),
        min_size=1, max_size=6, unique=True,
    ),
    width=st.integers(40, 200),
    message=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=300),
    value=st.one_of(st.none(), st.floats(allow_nan=False), st.integers()),
    unit=st.sampled_from(["", "degC", "degC per 1m", "kg per 1h", "s"]),
    since=st.one_of(st.none(), st.floats(NOW - 3e8, NOW)),
)  # fmt: skip
def test_no_line_is_wider_than_the_screen_and_every_id_reads_whole(
    ids: list[str], width: int, message: str, value: float | None, unit: str, since: float | None
) -> None:
    alarms = {
        i: _alarm("active_unack", since=since, value=value, unit=unit, message=message) for i in ids
    }
    lines = render_alarm_list(alarms, NOW, width)
    assert max(map(len, lines)) <= width
    body = lines[2:]  # title, blank
    for rule in ids:
        # the id is on one line, or on consecutive lines of its own (longer than the screen)
        whole = any(x.startswith(rule + " ") or x == rule for x in body)
        chunks = [rule[i : i + width] for i in range(0, len(rule), width)]
        split = any(body[k : k + len(chunks)] == chunks for k in range(len(body)))
        assert whole or split, rule


def test_config_alarm_lifecycle() -> None:
    c = ConfigAlarm()
    c, t = c.accepted(1.0)
    assert t is None
    assert c.state is AlarmState.NORMAL
    c, t = c.rejected("tunnel.yaml:3:5: bad", 2.0)
    assert t is not None
    assert t.event == "activated"
    assert t.rule == CONFIG_RULE
    assert (t.from_state, t.to_state) == (AlarmState.NORMAL, AlarmState.ACTIVE_UNACK)
    assert "tunnel.yaml:3:5: bad" in t.message
    c, t = c.rejected("tunnel.yaml:4:1: worse", 3.0)
    assert t is None
    assert "worse" in c.message
    assert c.since == 2.0
    c, t = c.accepted(4.0)
    assert t is not None
    assert t.event == "cleared"
    assert t.to_state is AlarmState.RTN_UNACK
    c, t = c.acknowledge("qa.jane", 5.0)
    assert t is not None
    assert t.actor == "qa.jane"
    assert c.state is AlarmState.NORMAL
    c, t = c.acknowledge("qa.jane", 6.0)
    assert t is None
    # acknowledged while active: the valid reload returns it straight to normal
    c, _ = c.rejected("x", 7.0)
    c, _ = c.acknowledge("op", 8.0)
    c, t = c.accepted(9.0)
    assert t is not None
    assert (t.from_state, t.to_state) == (AlarmState.ACTIVE_ACK, AlarmState.NORMAL)
