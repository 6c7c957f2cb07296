"""The ``storage:readings`` alarm (pure value) and ``edge readings export`` of a damaged block."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from edge.cli import main
from edge.ledger.keys import NodeKey
from edge.ledger.store import Ledger
from edge.readings import Reading
from edge.rules.alarms import AlarmState
from edge.storage_alarm import STORAGE_RULE, StorageAlarm


def test_the_alarm_follows_the_isa_lifecycle() -> None:
    alarm, change = StorageAlarm().pruned("12 readings in 1 blocks", 10.0)
    assert change is not None
    assert (change.rule, change.event, change.severity, change.kind) == (
        STORAGE_RULE, "activated", "medium", "storage",
    )  # fmt: skip
    assert alarm.state is AlarmState.ACTIVE_UNACK
    again, none = alarm.pruned("24 readings in 2 blocks", 12.0)
    assert none is None  # still active: no new transition, the message names the latest
    assert "24 readings" in again.message
    acked, ack = again.acknowledge("qa.jane", 13.0)
    assert ack is not None
    assert (ack.event, ack.actor, acked.state) == ("acknowledged", "qa.jane", AlarmState.ACTIVE_ACK)
    cleared, clear = acked.within("stored 10 of 100", 20.0)
    assert clear is not None
    assert (clear.event, cleared.state) == ("cleared", AlarmState.NORMAL)
    assert cleared.within("stored 10 of 100", 21.0)[1] is None
    assert cleared.acknowledge("qa.jane", 22.0)[1] is None


def test_export_of_a_damaged_block_is_one_line_and_exit_1(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with Ledger.open(db, NodeKey.generate()) as ledger:
        ledger.append_readings([Reading("t", 1_795_000_000.0 + i, 1.5 * i) for i in range(50)])
        ledger.commit()
        ledger.conn.execute("UPDATE reading_data SET data = X'01deadbeef' WHERE block = 1")
    ok = CliRunner().invoke(main, ["readings", "export", "--db", str(db), "--until", "2020-01-01"])
    assert ok.exit_code == 1  # nothing in that window: the damaged block is not read
    assert "cannot read" not in ok.output
    result = CliRunner().invoke(main, ["readings", "export", "--db", str(db)])
    assert result.exit_code == 1
    assert "cannot read readings: readings block 1:" in result.output
    assert "Traceback" not in result.output
