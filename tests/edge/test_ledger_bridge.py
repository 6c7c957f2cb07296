"""What the runtime writes on the ledger: entry bodies of alarm transitions and lot ends."""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.config import load_config, parse_config
from edge.ledger.store import connect
from edge.ledger.verify import verify_db
from edge.ledger_bridge import SIGNIFICANT_DIGITS, LedgerBridge, recorded_decimal
from edge.rules import LotEvent, Transition
from edge.rules.alarms import AlarmState
from edge.rules.lots import Aggregate, LotCheckResult

CONFIG = """
[node]
id = "line1-gw1"
data_dir = "var"

[buses.plc]
kind = "tcp"
address = "127.0.0.1:5020"

[devices.filler]
bus = "plc"

[points.fill_weight]
device = "filler"
register = 0
type = "float32"
unit = "g"
"""


@pytest.fixture
def bridge(tmp_path: Path) -> LedgerBridge:
    source = tmp_path / "node.toml"
    source.write_text(CONFIG)
    return LedgerBridge(parse_config(CONFIG, source))


def _transition(value: float | None) -> Transition:
    return Transition(
        rule="fill-low", kind="limit", point="fill_weight", severity="high",
        from_state=AlarmState.NORMAL, to_state=AlarmState.ACTIVE_UNACK, event="activated",
        value=value, limit=500.0, lot="L1", ts=1_795_000_000.0, message="fill low", unit="g",
    )  # fmt: skip


def test_computed_values_are_recorded_without_binary_noise(bridge: LedgerBridge) -> None:
    assert repr(500.48 - 500.0) == "0.4800000000000182"
    body = bridge.transition_body(_transition(500.48 - 500.0))
    assert body["value"] == "0.48"
    assert body["limit"] == "500.0"
    assert body["unit"] == "g"
    assert bridge.transition_body(_transition(None))["value"] is None


def test_lot_end_aggregates_and_checks_are_rounded_alike(
    bridge: LedgerBridge, monkeypatch: pytest.MonkeyPatch
) -> None:
    mean = (500.48 + 501.2 + 499.9) / 3
    assert repr(mean) == "500.52666666666664"  # the double's digits beyond the twelfth
    aggregate = Aggregate(count=3, mean=mean, min=499.9, max=501.2, std=0.65, unit="g")
    check = LotCheckResult(
        rule="fill-mean", point="fill_weight", stat="mean", op=">=", value=mean,
        limit=500.0, passed=True, text="mean >= 500",
    )  # fmt: skip
    appended: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    async def append(type_: str, body: dict[str, Any], **kw: Any) -> None:
        appended.append((type_, body, kw))

    monkeypatch.setattr(bridge, "append", append)
    asyncio.run(
        bridge.append_lot_event(
            LotEvent("lot_end", "L1", 1.0, {"fill_weight": aggregate}, (check,))
        )
    )
    ((type_, body, kw),) = appended
    assert (type_, kw["lots"]) == ("lot.end", ["L1"])
    assert body["aggregates"]["fill_weight"] == {
        "count": 3, "mean": "500.526666667", "min": "499.9", "max": "501.2", "std": "0.65",
        "unit": "g",
    }  # fmt: skip
    assert body["checks"][0]["value"] == "500.526666667"


@given(st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53))
def test_recorded_value_is_the_double_to_twelve_digits(x: float) -> None:
    text = recorded_decimal(x)
    assert text is not None
    recorded = Decimal(text)
    if isinstance(x, int):
        assert recorded == x  # counts are exact
        return
    assert len(recorded.normalize().as_tuple().digits) <= SIGNIFICANT_DIGITS
    assert float(recorded) == float(f"{x:.12g}")  # reads back as the double to twelve digits
    if abs(x) >= sys.float_info.min:  # normal doubles (a subnormal has fewer digits than 12)
        # within half a unit of the twelfth digit (one unit for the float step on top)
        bound = abs(Decimal(x)) * Decimal(10) ** (1 - SIGNIFICANT_DIGITS)
        assert abs(recorded - Decimal(x)) <= bound


async def _start_once(source: Path) -> dict[str, Any] | None:
    """What the runtime does at start: the config change (if any), then node.start, then stop."""
    bridge = LedgerBridge(load_config(source))
    await bridge.open()
    change = bridge.config_change()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(bridge.run(), name="ledger")
        await bridge.append("node.start", {"config_hash": bridge.config_hash})
        if change is not None:
            await bridge.append("config.change", change)
        await bridge.close()
    return change


async def test_config_change_is_recorded_on_first_start_and_when_the_config_changed(
    tmp_path: Path,
) -> None:
    source = tmp_path / "node.toml"
    source.write_text(CONFIG)
    first = await _start_once(source)
    assert first is not None
    assert first["previous"] is None
    assert first["file"] == str(source)
    assert await _start_once(source) is None  # same config: nothing to record
    source.write_text(CONFIG.replace('unit = "g"', 'unit = "kg"'))
    changed = await _start_once(source)
    assert changed is not None
    assert changed["previous"] == first["hash"] != changed["hash"]
    db = tmp_path / "var" / "ledger.db"
    conn = connect(db, readonly=True)
    try:
        types = [t for (t,) in conn.execute("SELECT type FROM entries ORDER BY seq")]
        assert verify_db(conn).ok
    finally:
        conn.close()
    assert [t for t in types if t != "checkpoint"] == [
        "node.start", "config.change", "node.start", "node.start", "config.change",
    ]  # fmt: skip
