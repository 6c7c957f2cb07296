import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("5s", 5.0),
        ("2m", 120.0),
        ("2min", 120.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("1d", 86400.0),
    ],
)
def test_parses_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5 parsecs", "5", "", "s", "1.s", "5sec", "ms5"])
def test_rejects_with_a_message_that_quotes_the_input(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration") as info:
        parse_duration(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("text", ["-1s", "-2s", " -1m30s"])
def test_a_negative_duration_is_named_as_such(text: str) -> None:
    with pytest.raises(ValueError, match=r"^negative duration ") as info:
        parse_duration(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(("text", "fixed"), [("1,5s", "'1.5s'"), ("0,25 s", "'0.25 s'")])
def test_a_decimal_comma_is_named_as_such(text: str, fixed: str) -> None:
    with pytest.raises(ValueError, match="has a decimal comma") as info:
        parse_duration(text)
    assert fixed in str(info.value)


@given(st.integers(min_value=1, max_value=10**7))
def test_format_round_trips_milliseconds(ms: int) -> None:
    assert parse_duration(format_duration(ms / 1000)) == pytest.approx(ms / 1000)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.25, "250ms"), (1.5, "1500ms"), (90, "90s"), (60, "1m"), (600, "10m"), (7200, "2h"),
     (5400, "90m"), (86400, "1d")],
)  # fmt: skip
def test_format_uses_the_largest_whole_unit(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10**9))
def test_milliseconds_are_the_decimal_seconds_exactly_rounded(ms: int) -> None:
    # 8236603ms is 8236.603 s, not 8236603 * 0.001 = 8236.603000000001
    assert parse_duration(f"{ms}ms") == ms / 1000
    assert parse_duration(f"{ms / 1000!r}s") == ms / 1000
