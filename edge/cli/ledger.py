"""``edge ledger ...`` and ``edge keys ...``."""

from __future__ import annotations

import click

from edge.cli.ledger_query import QUERY_COMMANDS


@click.group()
def ledger() -> None:
    """Verify, query, trace and export the ledger."""


for _command in QUERY_COMMANDS:
    ledger.add_command(_command)

COMMANDS: list[click.Command] = [ledger]
