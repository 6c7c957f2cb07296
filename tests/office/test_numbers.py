"""Numbers shown to people: the point's resolution, else four significant digits."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from office_lot import LotLedger

from edge.config import load_config
from edge.ledger.query import StoredEntry, summarize
from edge.office import decimals_for, fmt_against, fmt_number, point_resolutions, summary_numbers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (33.7737570706, "33.77"),  # the std
        ("33.7737570706", "33.77"),  # as recorded in a lot.end
        (123456.78, "123457"),  # whole digits are never cut
        (-0.0001234567, "-0.0001235"),
        (2.5, "2.5"),  # no invented trailing zeros
        (0, "0"),
        (-0.00001, "-0.00001"),
        (1e-12, "0.000000000001"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        (math.nan, "nan"),
        (None, ""),
        ("OK", "OK"),  # a text point's value as it is
        (True, "true"),
    ],
)
def test_significant_digits_without_a_resolution(value: object, expected: str) -> None:
    assert fmt_number(value) == expected


@pytest.mark.parametrize(
    ("value", "resolution", "stat", "expected"),
    [
        (33.7737570706, 0.1, False, "33.8"),
        (33.7737570706, 0.1, True, "33.77"),  # a statistic: one decimal more
        (2.5, 0.01, False, "2.50"),  # the resolution's decimals, zeros included
        (502.0, 0.5, False, "502.0"),
        (502.26, 0.5, False, "502.5"),  # rounded to a multiple of the step
        (1234.0, 5, False, "1235"),
        (-0.04, 0.1, False, "0.0"),  # no "-0.0"
    ],
)
def test_rounded_to_the_resolution(
    value: float, resolution: float, stat: bool, expected: str
) -> None:
    assert fmt_number(value, resolution, stat=stat) == expected


def test_decimals_of_a_resolution() -> None:
    assert [decimals_for(r) for r in (1, 0.1, 0.05, 0.001, 5, 0.25)] == [0, 1, 2, 3, 0, 2]
    with pytest.raises(ValueError, match="positive"):
        decimals_for(0)


def test_a_failed_value_never_reads_as_its_limit() -> None:
    # 499.46 fails "mean >= 499.5"; rounded to four digits it would print as the limit
    assert fmt_number(499.46) == "499.5"
    assert fmt_against(499.46, "499.5") == "499.46"
    assert fmt_against(1.3299, 1.33, 0.01) == "1.3299"
    assert fmt_against("500.12", "499.5") == "500.1"  # far apart: rounded as usual
    assert fmt_against(2.0, 2.0) == "2"


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_rounding_stays_close_and_parses_back(x: float) -> None:
    text = fmt_number(x)
    back = float(text)
    # four significant digits: within half a unit of the fourth digit (or whole-number rounding)
    tolerance = max(abs(x) * 5e-4, 0.5 if abs(x) >= 1000 else 0.0) + 1e-300
    assert abs(back - x) <= tolerance * 1.0000001


@given(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.sampled_from([0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 10.0]),
)
def test_resolution_rounding_is_a_multiple_of_the_step(x: float, step: float) -> None:
    back = float(fmt_number(x, step))
    assert abs(back - x) <= step / 2 + 1e-9
    assert abs(back / step - round(back / step)) < 1e-6


def test_point_resolutions_from_a_node_config(lot_ledger: LotLedger) -> None:
    config = load_config(Path(lot_ledger.config))
    # fill_weight: uint16 scaled by 0.1; cap_torque a float32 with resolution 0.001; lot_code text
    assert point_resolutions(config) == {"fill_weight": 0.1, "cap_torque": 0.001}


def test_a_resolution_that_is_not_positive_is_a_config_error(tmp_path: Path) -> None:
    from edge.errors import ConfigError

    config = tmp_path / "node.toml"
    config.write_text(
        '[node]\nid = "n"\n[buses.b]\nkind = "tcp"\naddress = "127.0.0.1:5020"\n'
        '[devices.d]\nbus = "b"\n[points.w]\ndevice = "d"\nregister = 0\nresolution = 0\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert any("points.w.resolution" in p and "positive" in p for p in info.value.problems)


def _alarm(value: str, limit: str, kind: str = "limit") -> StoredEntry:
    body = {"rule": "r", "kind": kind, "point": "tunnel_temp", "event": "activated",
            "from": "normal", "to": "active_unack", "value": value, "limit": limit,
            "unit": "degC", "severity": "high"}  # fmt: skip
    return StoredEntry(
        "i", "f" * 64, 1, None, "2026-11-23T08:00:00.000000Z", "alarm", "", (), body, ()
    )


def test_alarm_summaries_for_people_and_as_recorded() -> None:
    entry = _alarm("8.599809", "8.0")  # a float32 reading, as recorded
    assert "tunnel_temp = 8.599809 degC (limit 8.0)" in summarize(entry)  # exports: as recorded
    assert "tunnel_temp = 8.6 degC (limit 8)" in summarize(entry, summary_numbers())
    assert "= 8.60 degC (limit 8.00)" in summarize(entry, summary_numbers({"tunnel_temp": 0.01}))
    # a value just past its limit keeps the digits that show it is past
    near = summarize(_alarm("8.00004", "8.0"), summary_numbers())
    assert "= 8.00004 degC (limit 8)" in near
    # a rate is not a reading: the point's resolution does not apply to it
    rate = summarize(_alarm("2.7612345", "2.0", "rate"), summary_numbers({"tunnel_temp": 1.0}))
    assert "rate = 2.761 degC (limit 2)" in rate


@given(
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
    st.sampled_from([None, 0.001, 0.1, 1.0]),
)
def test_a_value_and_its_limit_never_print_alike_unless_equal(
    value: float, limit: float, resolution: float | None
) -> None:
    shown = fmt_against(value, limit, resolution)
    shown_limit = fmt_against(limit, value, resolution)  # as a table prints the pair
    assert float(shown) == pytest.approx(value, rel=1e-3, abs=(resolution or 0) / 2 + 1e-9)
    assert (shown == shown_limit) == (value == limit)
