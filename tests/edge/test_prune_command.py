"""The ``prune_readings`` operator command: parsed strictly, one line per mistake."""

from __future__ import annotations

import pytest

from edge.commands import CommandError, parse_command
from edge.ledger.entry import parse_ts


def test_prune_readings_command_parses() -> None:
    cmd = parse_command(
        '{"action": "prune_readings", "before": "2026-11-01T00:00:00Z", "actor": "qa.jane",'
        ' "comment": "disk full"}'
    )
    assert (cmd.action, cmd.actor, cmd.comment) == ("prune_readings", "qa.jane", "disk full")
    assert cmd.before == parse_ts("2026-11-01T00:00:00Z")


def test_prune_readings_needs_no_actor_in_the_payload() -> None:
    """Who prunes is the authenticated sender (edge.commands.authenticate), not a payload key."""
    cmd = parse_command('{"action": "prune_readings", "before": "2026-11-01", "comment": "x"}')
    assert (cmd.action, cmd.actor) == ("prune_readings", "")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ('{"action": "prune_readings", "before": "2026-11-01", "actor": "a"}', "comment: missing"),
        ('{"action": "prune_readings", "actor": "a", "comment": "x"}', "before: ''"),
        ('{"action": "prune_readings", "before": "soon", "actor": "a", "comment": "x"}', "before"),
        ('{"action": "prune_readings", "before": 5, "actor": "a", "comment": "x"}', "before"),
    ],
)
def test_prune_readings_command_mistakes(payload: str, message: str) -> None:
    with pytest.raises(CommandError, match=message) as exc:
        parse_command(payload)
    assert "\n" not in str(exc.value)
