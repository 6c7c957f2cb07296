"""Operator command payloads: strict parsing, one line naming the field."""

from __future__ import annotations

import pytest

from edge.commands import CommandError, OperatorCommand, parse_command


def test_correct_carries_the_entry_the_reason_and_who() -> None:
    cmd = parse_command(
        b'{"action": "correct", "entry": "7155f822", "actor": "qa.jane", "comment": "scale off"}'
    )
    assert cmd == OperatorCommand("correct", actor="qa.jane", comment="scale off", entry="7155f822")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ('{"action": "correct", "actor": "a", "comment": "c"}', "command: entry: missing"),
        ('{"action": "correct", "entry": "7155f822", "actor": "a"}', "command: comment: missing"),
        (
            '{"action": "correct", "entry": 7155, "actor": "a", "comment": "c"}',
            "entry: expected a string",
        ),
        ('{"action": "ack"}', "command: rule: missing"),
        ('{"action": "shelve", "rule": "r", "actor": "a"}', "duration: missing"),
        ('{"action": "fix"}', "action: 'fix' is not one of"),
        ('{"action": "ack", "who": "a"}', "who: unknown key"),
        ("[1]", "expected a JSON object"),
        ("not json", "not JSON"),
    ],
)
def test_malformed_commands_are_one_line_naming_the_field(payload: str, message: str) -> None:
    with pytest.raises(CommandError, match=message) as info:
        parse_command(payload)
    assert "\n" not in str(info.value)
